"""`wasmformer export --format onnx`: onnxruntime runs the one-step graph to the engines' tokens."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'wasmformer[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'wasmformer[onnx]')")

from wasmformer.cli import EXIT_OK, main  # noqa: E402
from wasmformer.export.onnx_graph import OnnxDecoder  # noqa: E402
from tests.exports.conftest import example_case  # noqa: E402

HELLO_PREFIX = 200  # generated tokens of hello compared in `make test` (its first output byte is token 168)


def export(model_dir, output) -> OnnxDecoder:
    assert main(["export", "--format", "onnx", str(model_dir), "-o", str(output)]) == EXIT_OK
    return OnnxDecoder(output, threads=1)


@pytest.fixture(scope="module")
def counter_onnx(counter_case, tmp_path_factory):
    return export(counter_case.directory, tmp_path_factory.mktemp("onnx") / "counter.onnx")


def test_graph_is_float64_with_cache_inputs_and_outputs(counter_case, counter_onnx):
    session = counter_onnx.session
    inputs = {arg.name: arg for arg in session.get_inputs()}
    outputs = {arg.name: arg for arg in session.get_outputs()}
    layers = len(counter_case.model.layers)
    caches = {f"past_{kind}.{index}" for kind in ("key", "value") for index in range(layers)}
    assert set(inputs) == {"input_ids"} | caches
    assert {"logits", "next_token"} | {f"present_key.{index}" for index in range(layers)} <= set(outputs)
    assert inputs["past_key.0"].type == "tensor(double)" and outputs["logits"].type == "tensor(double)"
    assert "past" in inputs["past_key.0"].shape  # the past length is dynamic


def test_counter_machine_whole_trace(counter_case, counter_onnx):
    expected = counter_case.reference()
    assert counter_onnx.generate(counter_case.prompt, len(expected) + 10, counter_case.model.halt_id) == expected


def test_one_call_and_token_by_token_agree(counter_case, counter_onnx):
    _, cache = counter_onnx.step(counter_case.prompt[:-1], counter_onnx.empty_cache())
    stepped, _ = counter_onnx.step(counter_case.prompt[-1:], cache)
    whole, _ = counter_onnx.step(counter_case.prompt, counter_onnx.empty_cache())
    assert stepped == whole == counter_case.reference(1)[0]


def test_precision_horizon_is_refused(counter_case, counter_onnx):
    counter_onnx.max_exact_tokens = len(counter_case.prompt) + 5
    try:
        with pytest.raises(ValueError, match="precision horizon"):
            counter_onnx.generate(counter_case.prompt, 100, counter_case.model.halt_id)
    finally:
        counter_onnx.max_exact_tokens = counter_case.model.max_exact_tokens


@pytest.fixture(scope="module")
def universal_onnx(universal_dir, tmp_path_factory):
    return export(universal_dir[1], tmp_path_factory.mktemp("onnx") / "universal.onnx")


def test_hello_prefix(universal_dir, universal_onnx):
    case = example_case(universal_dir, "hello")
    assert universal_onnx.generate(case.prompt, HELLO_PREFIX, case.model.halt_id) == case.reference(HELLO_PREFIX)


@pytest.mark.slow
def test_hello_whole_run(universal_dir, universal_onnx):
    case = example_case(universal_dir, "hello")
    expected = case.reference()
    assert universal_onnx.generate(case.prompt, len(expected) + 10, case.model.halt_id) == expected
