"""The compiler: a graph (the DSL of ``wasmformer.graph``) becomes a wasmformer/1 model.

Passes, one module each: ``lower`` (graph → ops), ``schedule`` (+ ``milp``:
ops → layers), ``allocate`` (features → residual slots), ``weights`` (→
tensors), ``cache`` (compiled models on disk). docs/compiler.md describes them.

The names below other than COMPILER_VERSION are imported on first use: loading a
cached model (the warm start of ``wasmformer run``) needs only ``cache``, not the
passes and the MILP solver behind them.
"""

from __future__ import annotations

from wasmformer.compiler.version import COMPILER_VERSION

__all__ = ["COMPILER_VERSION", "CompileReport", "build_model", "compile_graph", "graph_hash"]


def __getattr__(name: str):
    if name == "build_model":
        from wasmformer.compiler.cache import build_model

        return build_model
    if name == "graph_hash":
        from wasmformer.compiler.graph_key import graph_hash

        return graph_hash
    if name in ("CompileReport", "compile_graph"):
        from wasmformer.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
