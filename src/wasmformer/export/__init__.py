"""Exports of a wasmformer/1 model to other runtimes: PyTorch, ONNX and Hugging Face transformers.

``decoder`` is the PyTorch module (imports only torch), ``onnx_graph`` writes and
runs the ONNX graph, ``hf`` writes a Hugging Face model directory, and
``common`` holds what they share: loading a model they can represent exactly
or refusing it with the reason. Every target needs an optional extra
(``pip install 'wasmformer[torch]'``, ``[onnx]``, ``[hf]``);
docs/model-format.md, "Exports", gives each one's precision argument.
"""

from __future__ import annotations

from wasmformer.export.common import ExportError, MissingDependencyError

EXPORT_FORMATS = ("onnx", "hf")  # what `wasmformer export --format` writes

__all__ = ["EXPORT_FORMATS", "ExportError", "MissingDependencyError", "export_model"]


def export_model(model_dir, export_format: str, output) -> None:
    """Write the model in ``model_dir`` as ``export_format`` ("onnx": a file, "hf": a directory) to ``output``."""
    if export_format == "onnx":
        from wasmformer.export.onnx_graph import export_onnx

        export_onnx(model_dir, output)
    elif export_format == "hf":
        from wasmformer.export.hf import export_hf

        export_hf(model_dir, output)
    else:
        raise ExportError(f"unknown export format {export_format!r} (known: {', '.join(EXPORT_FORMATS)})")
