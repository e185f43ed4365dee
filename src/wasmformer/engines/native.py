"""The native engine: the hull engine in C++ (package ``wasmformer-native``, built by ``pip install ./native``).

Same model, same trace as the dense definition: attention is the exact hard max
of q . k over a 2-D convex hull per head (ties averaged), projections are sparse,
and the whole decoding loop can run in C++ (``generate_fast``). When the
extension is missing this module still imports; ``available()`` says False and
building a ``NativeEngine`` raises an ``EngineError`` with ``MISSING_MESSAGE``.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from wasmformer.engines.base import (EngineError, OutputCallback, PrecisionHorizonError, RunResult, TokensCallback,
                                    TraceReader)
from wasmformer.model import Model

try:
    from wasmformer_native import _engine
except ImportError as error:  # the optional C++ build failed or was skipped
    _engine = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

MISSING_MESSAGE = (
    "the native engine is not built: `pip install ./native` failed or was skipped; using the Python engines"
)

# How many generated tokens the C++ loop produces between two visits to Python
# (streaming callback, Ctrl-C check).
DEFAULT_BATCH = 4096


def available() -> bool:
    """True when the C++ extension imports."""
    return _engine is not None


def unavailable_reason() -> str:
    return MISSING_MESSAGE if _IMPORT_ERROR is None else f"{MISSING_MESSAGE} ({_IMPORT_ERROR})"


class NativeEngine:
    """The Engine protocol (``name``, ``model``, ``step``) over the C++ engine, plus ``run``."""

    name = "native"

    def __init__(self, model: Model):
        if _engine is None:
            raise EngineError(unavailable_reason())
        self.model = model
        layers = [
            [_float64(getattr(layer, name)) for name in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")]
            for layer in model.layers
        ]
        try:
            self._native = _engine.Engine(
                _float64(model.embed),
                _float64(model.unembed),
                layers,
                t_slot=model.positional["t"],
                t2_slot=model.positional["t2"],
                recency_slot=model.positional["recency"],
                halt_id=model.halt_id,
                max_exact_tokens=model.max_exact_tokens,
            )
        except _engine.EngineError as error:
            raise EngineError(f"the native engine cannot run this model: {error}") from None

    @property
    def position(self) -> int:
        return self._native.position

    def step(self, token_id: int) -> int:
        """Feed the token at the next position; return the argmax next-token id."""
        try:
            return self._native.step(int(token_id))
        except _engine.PrecisionHorizonError as error:
            raise PrecisionHorizonError(str(error)) from None
        except _engine.EngineError as error:
            raise EngineError(str(error)) from None

    def run(
        self,
        prompt: Sequence[int],
        max_new_tokens: int | None = None,
        callback_every: int = DEFAULT_BATCH,
        callback: Callable[[list[int]], None] | None = None,
    ) -> tuple[list[int], str]:
        """The decoding loop of base.generate in C++: returns (trace, stop_reason).

        ``callback(ids)`` receives the new token ids every ``callback_every``
        tokens (and the rest at the end, or before a precision-horizon error).
        The trace is a new list.
        """
        try:
            return self._native.run([int(token) for token in prompt], max_new_tokens, callback_every, callback)
        except _engine.PrecisionHorizonError as error:
            raise PrecisionHorizonError(str(error)) from None
        except _engine.EngineError as error:
            raise EngineError(str(error)) from None

    def head_kinds(self, chains: bool = False) -> list[list[str]]:
        """Per layer and head: "hull", "positional", "mean" or "unused", as HullEngine.head_kinds.

        With ``chains``, a hull head whose query y has a fixed sign (read from the
        weights) says which chain it keeps: "hull-upper", "hull-lower" or
        "hull-extremes" (query y always 0); plain "hull" keeps both.
        """
        kinds = self._native.head_kinds()
        if chains:
            return kinds
        return [[kind.split("-")[0] for kind in layer] for layer in kinds]

    def stats(self) -> dict:
        """Position, hull points kept, heads that left the exact integer regime, attention state bytes."""
        return self._native.stats()


def generate_fast(
    engine: NativeEngine,
    prompt: list[int],
    max_new_tokens: int | None = None,
    on_output: OutputCallback | None = None,
    on_tokens: TokensCallback | None = None,
    batch: int = DEFAULT_BATCH,
    on_error: OutputCallback | None = None,
) -> RunResult:
    """base.generate with the loop in C++: same stop rules, same horizon refusal, same RunResult.

    ``on_output``, ``on_tokens`` and ``on_error`` are called as in base.generate, once per
    ``batch`` generated tokens instead of once per token.
    """
    model = engine.model
    if not prompt:
        raise EngineError("the prompt is empty")
    reader = TraceReader(model, on_output, on_tokens, on_error)
    bounded = _bounded_max_new_tokens(max_new_tokens, model.max_exact_tokens, len(prompt))
    start = time.perf_counter()
    trace, reason = engine.run(prompt, bounded, batch, reader)
    # the trace is already a fresh list: a copy would double its memory for a moment
    return reader.result(engine.name, len(prompt), trace, reason, time.perf_counter() - start)


def _bounded_max_new_tokens(max_new_tokens: int | None, max_exact_tokens: int, prompt_tokens: int) -> int | None:
    """The same max_new_tokens, small enough for the C++ loop's 64-bit count.

    The loop refuses to feed a position past the horizon, so no run reaches
    ``max_exact_tokens - prompt_tokens + 2`` generated tokens: any larger
    value ends the same way (a PrecisionHorizonError) and is replaced by that number.
    """
    if max_new_tokens is None:
        return None
    return min(max_new_tokens, max(1, max_exact_tokens - prompt_tokens + 2))


def _float64(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float64)
