"""Run a VM program through a model: prompt in, trace out, and what the trace says.

The output and the trap come from the generated tokens only (``o.XX`` bytes
and ``trap.*``); nothing here executes the program another way.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmformer.engines import make_engine
from wasmformer.engines.base import RunResult, encode, generate
from wasmformer.frontend.program import TrapReason, VMProgram
from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import encode_prompt
from wasmformer.model import Model

_TRAP_OF_TOKEN = {token: reason for token, reason in zip(T.TRAPS, TrapReason)}


@dataclass
class MachineRun:
    output: bytes
    trap: TrapReason | None
    halted: bool
    trace: list[str]  # generated tokens
    prompt_tokens: int
    engine: str
    seconds: float


def trap_in(trace: list[str]) -> TrapReason | None:
    """The trap a trace ends with (``trap.X halt``), if any."""
    return _TRAP_OF_TOKEN.get(trace[-2]) if len(trace) >= 2 else None


def run_program(model: Model, program: VMProgram, input_bytes: bytes = b"", *, engine: str | None = None,
                max_tokens: int | None = None) -> MachineRun:
    """Generate the program's trace with a fresh engine (one engine holds one sequence)."""
    prompt = encode(model, encode_prompt(program, input_bytes))
    runner = make_engine(model, engine)
    result = _generate(runner, prompt, max_tokens)
    trace = [model.vocab[token] for token in result.trace]
    return MachineRun(output=result.output, trap=trap_in(trace) if result.halted else None, halted=result.halted,
                      trace=trace, prompt_tokens=len(prompt), engine=type(runner).__name__, seconds=result.seconds)


def _generate(runner, prompt: list[int], max_tokens: int | None) -> RunResult:
    from wasmformer.engines import native

    if isinstance(runner, native.NativeEngine):
        return native.generate_fast(runner, prompt, max_tokens)
    return generate(runner, prompt, max_tokens)
