"""wasmformer.torch: the model directory as a torch.nn.Module decoder generates the engines' very tokens."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'wasmformer[torch]')")

import wasmformer.torch as wasmformer_torch  # noqa: E402
from wasmformer import runner  # noqa: E402
from wasmformer.export.decoder import WasmformerDecoder  # noqa: E402
from tests.exports.conftest import example_case  # noqa: E402

FAST_PREFIX = 300  # generated tokens compared on a couple of examples in `make test`
SLOW_PREFIX = 3_000  # generated tokens compared on every example in `make test-all`


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def universal_decoder(universal_dir):
    return wasmformer_torch.load(universal_dir[1])


def test_load_gives_an_ordinary_float64_module(counter_case):
    decoder = wasmformer_torch.load(counter_case.directory)
    assert isinstance(decoder, torch.nn.Module) and isinstance(decoder, WasmformerDecoder)
    linears = [module for module in decoder.modules() if isinstance(module, torch.nn.Linear)]
    assert linears and all(module.bias is None for module in linears)
    assert {parameter.dtype for parameter in decoder.parameters()} == {torch.float64}


@pytest.mark.parametrize("prune", [True, False])
def test_counter_machine_whole_trace(counter_case, prune):
    decoder = wasmformer_torch.load(counter_case.directory, prune=prune)
    expected = counter_case.reference()
    assert expected[-1] == counter_case.model.halt_id
    assert decoder.generate(counter_case.prompt, len(expected) + 10, counter_case.model.halt_id) == expected


def test_prompt_fed_token_by_token_gives_the_same_logits_as_one_call(counter_case):
    decoder = wasmformer_torch.load(counter_case.directory)
    prompt = torch.tensor([counter_case.prompt])
    whole = decoder(prompt, decoder.new_cache())
    cache = decoder.new_cache()
    stepped = torch.cat([decoder(prompt[:, index:index + 1], cache) for index in range(prompt.shape[1])], dim=1)
    assert torch.equal(whole.argmax(dim=-1), stepped.argmax(dim=-1))


def test_hello_whole_run(universal_dir, universal_decoder):
    case = example_case(universal_dir, "hello")
    expected = case.reference()
    assert expected[-1] == case.model.halt_id
    generated = universal_decoder.generate(case.prompt, len(expected) + 10, case.model.halt_id)
    assert generated == expected
    byte_of = case.model.output_bytes_by_id()
    output = bytes(byte_of[token] for token in generated if token in byte_of)
    assert output == runner.bundled_examples(["hello"])[0].expected_file.read_bytes()


@pytest.mark.parametrize("name", ["collatz", "fibonacci"])
def test_example_prefix(universal_dir, universal_decoder, name):
    case = example_case(universal_dir, name)
    assert universal_decoder.generate(case.prompt, FAST_PREFIX, case.model.halt_id) == case.reference(FAST_PREFIX)


@pytest.mark.slow
@pytest.mark.parametrize("name", [example.name for example in runner.bundled_examples()])
def test_every_example_prefix(universal_dir, universal_decoder, name):
    case = example_case(universal_dir, name)
    assert universal_decoder.generate(case.prompt, SLOW_PREFIX, case.model.halt_id) == case.reference(SLOW_PREFIX)


def test_precision_horizon_is_refused(counter_case):
    decoder = wasmformer_torch.load(counter_case.directory)
    decoder.max_exact_tokens = len(counter_case.prompt) + 5
    with pytest.raises(ValueError, match="precision horizon"):
        decoder.generate(counter_case.prompt, 100, counter_case.model.halt_id)
