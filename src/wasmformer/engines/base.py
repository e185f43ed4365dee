"""What every engine shares: the decoding loop and the precision-horizon guard.

An engine only knows how to run one forward pass for the next token
(``Engine.step``); this module feeds it the prompt, appends argmax tokens,
stops at the halt token or a token limit, and refuses to run past the model's
``max_exact_tokens`` so no token is ever produced outside the exact regime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from wasmformer.model import Model


class EngineError(RuntimeError):
    """A run that cannot continue exactly (precision horizon, bad prompt)."""


class PrecisionHorizonError(EngineError):
    """The next position would lie beyond the model's max_exact_tokens."""


class Engine(Protocol):
    name: str
    model: Model

    def step(self, token_id: int) -> int:
        """Feed the token at the next position; return the argmax next-token id."""


@dataclass
class RunResult:
    trace: list[int]  # generated token ids, halt included when halted
    halted: bool
    stop_reason: str  # "halt" | "max_tokens"
    seconds: float
    prompt_tokens: int
    output: bytes = b""
    extra: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        total = self.prompt_tokens + len(self.trace)
        return total / self.seconds if self.seconds > 0 else float("inf")


def encode(model: Model, tokens: Iterable[str]) -> list[int]:
    ids = model.token_ids
    encoded = []
    for index, token in enumerate(tokens):
        if token not in ids:
            raise EngineError(f"prompt token {index} ({token!r}) is not in the model's vocabulary")
        encoded.append(ids[token])
    return encoded


def generate(
    engine: Engine,
    prompt: list[int],
    max_tokens: int | None = None,
    on_token: Callable[[int], None] | None = None,
) -> RunResult:
    """Run the decoding loop of MODEL_FORMAT.md: prompt in, argmax tokens out until halt."""
    model = engine.model
    if not prompt:
        raise EngineError("the prompt is empty")
    horizon = model.max_exact_tokens
    halt_id = model.halt_id
    start = time.perf_counter()
    _check_horizon(len(prompt), horizon)
    for token in prompt[:-1]:
        engine.step(token)
    next_id = engine.step(prompt[-1])
    trace: list[int] = []
    byte_of = {model.token_ids[token]: value for token, value in model.output_bytes.items()}
    output = bytearray()
    while True:
        trace.append(next_id)
        if next_id in byte_of:
            output.append(byte_of[next_id])
        if on_token is not None:
            on_token(next_id)
        if next_id == halt_id:
            reason = "halt"
            break
        if max_tokens is not None and len(trace) >= max_tokens:
            reason = "max_tokens"
            break
        _check_horizon(len(prompt) + len(trace), horizon)
        next_id = engine.step(next_id)
    return RunResult(
        trace=trace,
        halted=reason == "halt",
        stop_reason=reason,
        seconds=time.perf_counter() - start,
        prompt_tokens=len(prompt),
        output=bytes(output),
    )


def _check_horizon(positions: int, horizon: int) -> None:
    if positions > horizon:
        raise PrecisionHorizonError(
            f"position {positions - 1} lies beyond this model's precision horizon "
            f"(max_exact_tokens = {horizon}); stopping before any inexact token is produced"
        )
