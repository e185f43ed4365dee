"""`wasmformer export`: models an export cannot represent exactly are refused with the reason, a missing optional
package names its extra, and every error is one line with exit status 1 (no optional package needed here)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from wasmformer.cli import EXIT_ERROR, main
from wasmformer.export.common import ExportError, load_representable
from wasmformer.model import Model, load_model, save_model


def run_export(capsys, *argv) -> tuple[int, str]:
    status = main(["export", *[str(arg) for arg in argv]])
    return status, capsys.readouterr().err


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wasmformer: error: "), stderr
    return lines[0]


@pytest.fixture
def model_copy(counter_case, tmp_path):
    return shutil.copytree(counter_case.directory, tmp_path / "model")


@pytest.mark.parametrize("export_format", ["onnx", "hf"])
def test_a_format_version_it_was_not_written_for_is_refused(model_copy, tmp_path, capsys, export_format):
    config = json.loads((model_copy / "config.json").read_text())
    config["format"] = "wasmformer/2"
    (model_copy / "config.json").write_text(json.dumps(config))
    status, err = run_export(capsys, "--format", export_format, model_copy, "-o", tmp_path / "out")
    assert status == EXIT_ERROR
    line = one_error_line(err)
    assert "'wasmformer/2'" in line and "written for wasmformer/1" in line
    assert not (tmp_path / "out").exists()


def test_a_non_finite_weight_is_refused(model_copy, tmp_path, capsys):
    model = load_model(model_copy)
    model.layers[0].w_up[0, 0] = np.nan
    tensors = {name: tensor for name, tensor in model.tensors().items()}
    from safetensors.numpy import save_file

    save_file(tensors, str(model_copy / "model.safetensors"))
    status, err = run_export(capsys, "--format", "onnx", model_copy, "-o", tmp_path / "out.onnx")
    assert status == EXIT_ERROR
    assert "blocks.0.ffn.w_up has non-finite entries" in one_error_line(err)


def test_a_model_without_heads_is_refused(counter_case, tmp_path):
    model = counter_case.model
    headless = Model(vocab=model.vocab, halt_token=model.halt_token, positional=model.positional,
                     output_bytes=model.output_bytes, max_exact_tokens=model.max_exact_tokens,
                     embed=model.embed, unembed=model.unembed, layers=[])
    save_model(headless, tmp_path / "headless")
    with pytest.raises(ExportError, match="0 layers of 0 heads.*layer-0 KV cache"):
        load_representable(tmp_path / "headless")


@pytest.mark.parametrize("export_format, module, extra", [("onnx", "onnx", "onnx"), ("hf", "tokenizers", "hf")])
def test_a_missing_optional_package_names_its_extra(counter_case, tmp_path, capsys, monkeypatch,
                                                    export_format, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    status, err = run_export(capsys, "--format", export_format, counter_case.directory, "-o", tmp_path / "out")
    assert status == EXIT_ERROR
    assert f"pip install 'wasmformer[{extra}]'" in one_error_line(err)


def test_an_existing_output_is_not_overwritten(counter_case, tmp_path, capsys):
    (tmp_path / "out.onnx").write_text("keep me")
    status, err = run_export(capsys, "--format", "onnx", counter_case.directory, "-o", tmp_path / "out.onnx")
    assert status == EXIT_ERROR and "--force" in one_error_line(err)
    assert (tmp_path / "out.onnx").read_text() == "keep me"


def test_a_missing_model_directory_and_an_unknown_format(tmp_path, capsys):
    status, err = run_export(capsys, "--format", "onnx", tmp_path / "nothing", "-o", tmp_path / "out.onnx")
    assert status == EXIT_ERROR and "no such model directory" in one_error_line(err)
    status, err = run_export(capsys, "--format", "tflite", tmp_path, "-o", tmp_path / "out")
    assert status == EXIT_ERROR and "invalid choice" in one_error_line(err)


def test_wasmformer_torch_without_torch_names_the_extra(counter_case, monkeypatch):
    import wasmformer.torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ExportError, match=r"pip install 'wasmformer\[torch\]'"):
        wasmformer.torch.load(counter_case.directory)


def test_wasmformer_torch_does_not_shadow_pytorch():
    """Inside the package, ``import torch`` is still PyTorch (absolute imports), and the module imports it lazily."""
    import importlib

    module = importlib.import_module("wasmformer.torch")
    assert module.__name__ == "wasmformer.torch" and callable(module.load)
    assert "torch" not in vars(module)  # imported inside from_model only: loading the module needs no PyTorch
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'wasmformer[torch]')")
    assert torch.__name__ == "torch" and hasattr(torch, "nn")


def test_onnx_refuses_a_model_whose_weights_read_the_recency_slot(counter_case, tmp_path, capsys):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'wasmformer[onnx]')")
    model = load_model(counter_case.directory)
    model.layers[0].wk[0, model.positional["recency"]] = 0.5
    save_model(model, tmp_path / "reads_recency")
    status, err = run_export(capsys, "--format", "onnx", tmp_path / "reads_recency", "-o", tmp_path / "out.onnx")
    assert status == EXIT_ERROR
    assert "weights read r(t)" in one_error_line(err) and not (tmp_path / "out.onnx").exists()
