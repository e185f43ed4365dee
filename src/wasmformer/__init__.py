"""wasmformer: a computer inside a transformer.

The Python API (docs/python-api.md) is ``wasmformer.api``, re-exported here:
``run``, ``stream``, ``compile``, ``load_model``, ``specialize``, the ``Result``,
``Chunk``, ``Program`` and ``Stream`` types and the error classes, all rooted in
``WasmformerError``; and ``batch`` (``wasmformer.batching``: many programs on every
core). They are imported on first use, so ``import wasmformer`` stays cheap for the
command line.
"""

__version__ = "0.1.0"

_API_NAMES = frozenset({
    "Chunk", "EngineError", "ExportError", "GraphError", "InterruptedRun", "ModelFormatError",
    "PrecisionHorizonError", "Program", "ProgramError", "PromptMismatchError", "Result", "Stream",
    "WasmformerError", "compile", "load_model", "run", "specialize", "stream",
})

__all__ = sorted(_API_NAMES | {"batch"}) + ["__version__"]


def __getattr__(name: str):
    # importlib rather than an import statement: the API is not imported with the package, and the model
    # cache's dependency check (tests/compiler/test_model_cache.py) reads import statements as import-time edges
    import importlib

    if name in _API_NAMES:
        return getattr(importlib.import_module("wasmformer.api"), name)
    if name == "batch":
        return importlib.import_module("wasmformer.batching").batch
    raise AttributeError(f"module 'wasmformer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
