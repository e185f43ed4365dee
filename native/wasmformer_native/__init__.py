"""wasmformer-native: the C++ engine. Use it through wasmformer.engines.native."""

from wasmformer_native._engine import Engine, EngineError, Hull, PrecisionHorizonError

__all__ = ["Engine", "EngineError", "Hull", "PrecisionHorizonError"]
