"""`wasmformer export --format hf`: AutoModelForCausalLM and AutoTokenizer load the directory, and plain
greedy `generate` reproduces the engines' tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'wasmformer[hf]')")
transformers = pytest.importorskip("transformers",
                                   reason="transformers is not installed (pip install 'wasmformer[hf]')")

from wasmformer.cli import EXIT_OK, main  # noqa: E402
from wasmformer.export.hf import WRITTEN_FILES  # noqa: E402
from tests.exports.conftest import example_case  # noqa: E402

HELLO_PREFIX = 200  # generated tokens of hello compared in `make test` (its first output byte is token 168)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def export(model_dir, output) -> None:
    assert main(["export", "--format", "hf", str(model_dir), "-o", str(output)]) == EXIT_OK


def load(directory):
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True,
                                                              dtype=torch.float64)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    return model, tokenizer


def greedy(model, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    input_ids = torch.tensor([prompt_ids])
    output = model.generate(input_ids, do_sample=False, max_new_tokens=max_new_tokens)
    return output[0, input_ids.shape[1]:].tolist()


@pytest.fixture(scope="module")
def counter_hf(counter_case, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf") / "counter"
    export(counter_case.directory, directory)
    return load(directory)


def test_config_maps_the_auto_classes_and_float64(counter_hf):
    model, _ = counter_hf
    directory = Path(model.name_or_path)
    assert {path.name for path in directory.iterdir()} == set(WRITTEN_FILES)
    config = json.loads((directory / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_wasmformer.WasmformerForCausalLM"
    assert config["dtype"] == "float64"
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float64}


def test_tokenizer_is_the_token_language(counter_case, counter_hf):
    _, tokenizer = counter_hf
    tokens = [counter_case.model.vocab[token] for token in counter_case.prompt]
    assert tokenizer(" ".join(tokens)).input_ids == counter_case.prompt
    assert tokenizer.decode(counter_case.prompt).split() == tokens
    assert tokenizer.eos_token == counter_case.model.halt_token


def test_counter_machine_whole_trace(counter_case, counter_hf):
    model, tokenizer = counter_hf
    expected = counter_case.reference()
    prompt = tokenizer(" ".join(counter_case.model.vocab[token] for token in counter_case.prompt)).input_ids
    assert greedy(model, prompt, len(expected) + 10) == expected  # stops at the halt token (eos)


def test_weights_stay_float64_and_a_cast_model_is_refused(counter_case, tmp_path):
    export(counter_case.directory, tmp_path / "hf")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", trust_remote_code=True,
                                                              dtype=torch.float32)
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float64}
    model.to(torch.float32)
    with pytest.raises(ValueError, match="float64"):
        model(torch.tensor([counter_case.prompt]))


@pytest.fixture(scope="module")
def universal_hf(universal_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf") / "universal"
    export(universal_dir[1], directory)
    return load(directory)[0]


def test_hello_prefix(universal_dir, universal_hf):
    case = example_case(universal_dir, "hello")
    assert greedy(universal_hf, case.prompt, HELLO_PREFIX) == case.reference(HELLO_PREFIX)


@pytest.mark.slow
def test_hello_whole_run(universal_dir, universal_hf):
    case = example_case(universal_dir, "hello")
    expected = case.reference()
    assert greedy(universal_hf, case.prompt, len(expected) + 10) == expected
