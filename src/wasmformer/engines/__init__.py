"""Engines run a model file; they know embeddings, heads, FFNs and argmax, nothing else.

- ``dense``: the definition in docs/model-format.md, softmax over the whole cache (O(t) per token).
- ``hull``: the same model with a 2-D convex-hull KV cache (O(log t) per token), numpy.
- ``native``: the hull engine in C++ (built by ``pip install ./native``), when available.
"""

from __future__ import annotations

from wasmformer.engines.base import EngineError
from wasmformer.model import Model

ENGINE_NAMES = ("native", "hull", "dense")


def native_available() -> bool:
    try:
        from wasmformer.engines import native
    except ImportError:
        return False
    return native.available()


def hull_available() -> bool:
    try:
        from wasmformer.engines import hull  # noqa: F401
    except ImportError:
        return False
    return True


def default_engine_name() -> str:
    if native_available():
        return "native"
    return "hull" if hull_available() else "dense"


def make_engine(model: Model, name: str | None = None):
    """An engine for ``model``: the named one, or the fastest available."""
    name = name or default_engine_name()
    if name == "dense":
        from wasmformer.engines.dense import DenseEngine

        return DenseEngine(model)
    if name == "hull":
        if not hull_available():
            raise EngineError("the hull engine is not part of this installation")
        from wasmformer.engines.hull import HullEngine

        return HullEngine(model)
    if name == "native":
        if not native_available():
            raise EngineError(
                "the native engine is not built (`pip install ./native` failed or was skipped); "
                "use --engine hull or --engine dense"
            )
        from wasmformer.engines.native import NativeEngine

        return NativeEngine(model)
    raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
