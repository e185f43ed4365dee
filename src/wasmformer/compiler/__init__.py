"""The compiler: a graph (the DSL of ``wasmformer.graph``) becomes a wasmformer/1 model.

Passes, one module each: ``lower`` (graph → ops), ``schedule`` (+ ``milp``:
ops → layers), ``allocate`` (features → residual slots), ``weights`` (→
tensors), ``cache`` (compiled models on disk). docs/compiler.md describes them.
"""

from wasmformer.compiler.cache import build_model, graph_hash
from wasmformer.compiler.pipeline import COMPILER_VERSION, CompileReport, compile_graph

__all__ = ["COMPILER_VERSION", "CompileReport", "build_model", "compile_graph", "graph_hash"]
