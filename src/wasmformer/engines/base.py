"""What every engine shares: the decoding loop, the precision-horizon guard and the result of a run.

An engine only knows how to run one forward pass for the next token
(``Engine.step``); this module feeds it the prompt, appends argmax tokens,
stops at the halt token or after ``max_new_tokens`` generated tokens, and
refuses to run past the model's ``max_exact_tokens`` so no token is ever
produced outside the exact regime. ``TraceReader`` reads the output bytes and
traps off the tokens as they arrive, for this loop and the native engine's,
and ``RunResult`` is the one result type of a run (``runner.run_prompt``
returns it too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from wasmformer.errors import WasmformerError
from wasmformer.model import Model


class EngineError(WasmformerError, RuntimeError):
    """A run that cannot continue exactly (precision horizon, bad prompt)."""


class PrecisionHorizonError(EngineError):
    """The next position would lie beyond the model's max_exact_tokens."""


class Engine(Protocol):
    name: str
    model: Model

    def step(self, token_id: int) -> int:
        """Feed the token at the next position; return the argmax next-token id."""


# A generated token whose string starts with this ends the program with an error
# (the machine's trap.* tokens); the run reports the first one.
TRAP_PREFIX = "trap."
# Tokens named PREFIX + two hex digits carry a byte of the program's error stream (stderr: e.XX) or its exit
# status (x.XX, generated just before the halt token); docs/token-language.md.
ERROR_PREFIX = "e."
EXIT_PREFIX = "x."

OutputCallback = Callable[[bytes], None]
TokensCallback = Callable[[list[int]], None]


@dataclass
class RunResult:
    """One run: what the model generated, how it stopped, which engine ran it and how fast.

    The one result type of a run, whichever loop decoded it (``generate``,
    ``native.generate_fast``) and whoever asked (``runner.run_prompt``).
    """

    engine: str
    prompt_tokens: int
    trace: list[int]  # generated token ids, halt included when halted
    output: bytes  # the output_bytes values of the trace's output tokens, in order
    halted: bool
    stop_reason: str  # "halt" | "max_new_tokens"
    seconds: float  # the decoding loop only: no model loading, no compiling
    trap: str | None = None  # the first trap token generated ("trap.out_of_bounds_memory"), if any
    engine_note: str | None = None  # why this engine and not a faster one, when that matters
    errors: bytes = b""  # the bytes of the trace's error-stream tokens (e.XX), in order
    exit_status: int | None = None  # the byte of the exit-status token (x.XX), when one was generated

    @property
    def generated_tokens(self) -> int:
        return len(self.trace)

    @property
    def tokens_per_second(self) -> float:
        """Forward passes per second: prompt and generated tokens over the decoding loop's seconds."""
        total = self.prompt_tokens + len(self.trace)
        return total / self.seconds if self.seconds > 0 else float("inf")


class TraceReader:
    """Reads the generated tokens as they arrive: the output bytes (streamed to ``on_output``) and the first trap.

    Both decoding loops hand it every generated token, in order, so the
    output is read once, while the run goes, whichever loop ran.
    """

    def __init__(self, model: Model, on_output: OutputCallback | None = None,
                 on_tokens: TokensCallback | None = None, on_error: OutputCallback | None = None):
        self.byte_of = model.output_bytes_by_id()
        self.trap_ids = {index for index, token in enumerate(model.vocab) if token.startswith(TRAP_PREFIX)}
        self.error_byte_of = _prefixed_bytes(model.vocab, ERROR_PREFIX)
        self.exit_byte_of = _prefixed_bytes(model.vocab, EXIT_PREFIX)
        self.vocab = model.vocab
        self.on_output = on_output
        self.on_tokens = on_tokens
        self.on_error = on_error
        self.output = bytearray()
        self.errors = bytearray()
        self.trap: str | None = None
        self.exit_status: int | None = None

    def __call__(self, token_ids: list[int]) -> None:
        byte_of = self.byte_of
        chunk = bytes([byte_of[token] for token in token_ids if token in byte_of])
        if chunk:
            self.output += chunk
            if self.on_output is not None:
                self.on_output(chunk)
        if self.error_byte_of:
            errors = bytes([self.error_byte_of[token] for token in token_ids if token in self.error_byte_of])
            if errors:
                self.errors += errors
                if self.on_error is not None:
                    self.on_error(errors)
        if self.exit_status is None and not self.exit_byte_of.keys().isdisjoint(token_ids):
            self.exit_status = next(self.exit_byte_of[token] for token in token_ids if token in self.exit_byte_of)
        if self.trap is None and not self.trap_ids.isdisjoint(token_ids):
            self.trap = next(self.vocab[token] for token in token_ids if token in self.trap_ids)
        if self.on_tokens is not None:
            self.on_tokens(token_ids)

    def result(self, engine_name: str, prompt_tokens: int, trace: list[int], stop_reason: str,
               seconds: float) -> RunResult:
        return RunResult(engine=engine_name, prompt_tokens=prompt_tokens, trace=trace, output=bytes(self.output),
                         halted=stop_reason == "halt", stop_reason=stop_reason, seconds=seconds, trap=self.trap,
                         errors=bytes(self.errors), exit_status=self.exit_status)


def _prefixed_bytes(vocab: list[str], prefix: str) -> dict[int, int]:
    """token id -> byte for the tokens named PREFIX + two lowercase hex digits."""
    table = {}
    for index, token in enumerate(vocab):
        digits = token[len(prefix):]
        if token.startswith(prefix) and len(digits) == 2 and all(c in "0123456789abcdef" for c in digits):
            table[index] = int(digits, 16)
    return table


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
    max_new_tokens: int | None = None,
    on_output: OutputCallback | None = None,
    on_tokens: TokensCallback | None = None,
    on_error: OutputCallback | None = None,
) -> RunResult:
    """Run the decoding loop of docs/model-format.md: prompt in, argmax tokens out until halt.

    Stops after ``max_new_tokens`` generated tokens (at least one; None: no
    cap). ``on_output(chunk)`` receives the output bytes and
    ``on_tokens(ids)`` the generated ids as they are produced (here one token
    at a time); ``on_error(chunk)`` the error-stream bytes. Raises PrecisionHorizonError rather than feed a position past
    the model's max_exact_tokens.
    """
    model = engine.model
    if not prompt:
        raise EngineError("the prompt is empty")
    max_exact_tokens = model.max_exact_tokens
    halt_id = model.halt_id
    reader = TraceReader(model, on_output, on_tokens, on_error)
    start = time.perf_counter()
    _check_horizon(len(prompt), max_exact_tokens)
    for token in prompt[:-1]:
        engine.step(token)
    next_id = engine.step(prompt[-1])
    trace: list[int] = []
    while True:
        trace.append(next_id)
        reader([next_id])
        if next_id == halt_id:
            reason = "halt"
            break
        if max_new_tokens is not None and len(trace) >= max_new_tokens:
            reason = "max_new_tokens"
            break
        _check_horizon(len(prompt) + len(trace), max_exact_tokens)
        next_id = engine.step(next_id)
    return reader.result(engine.name, len(prompt), trace, reason, time.perf_counter() - start)


def _check_horizon(positions: int, max_exact_tokens: int) -> None:
    if positions > max_exact_tokens:
        raise PrecisionHorizonError(
            f"position {positions - 1} lies beyond this model's precision horizon "
            f"(max_exact_tokens = {max_exact_tokens}); stopping before any inexact token is produced"
        )
