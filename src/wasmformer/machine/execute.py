"""Run a VM program through a model: prompt in, trace out, and what the trace says.

The output and the trap come from the generated tokens only (``o.XX`` bytes
and ``trap.*``); nothing here executes the program another way.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmformer import runner
from wasmformer.engines import make_engine
from wasmformer.engines.base import encode
from wasmformer.vm.program import TrapReason, VMProgram
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

    @property
    def tokens_per_second(self) -> float:
        """Forward passes per second, the prompt included (as RunResult counts them)."""
        total = self.prompt_tokens + len(self.trace)
        return total / self.seconds if self.seconds > 0 else float("inf")


def trap_in(trace: list[str]) -> TrapReason | None:
    """The trap a trace ends with (``trap.X halt``), if any."""
    return _TRAP_OF_TOKEN.get(trace[-2]) if len(trace) >= 2 else None


def run_program(model: Model, program: VMProgram, input_bytes: bytes = b"", *, engine: str | None = None,
                max_tokens: int | None = None) -> MachineRun:
    """The program's trace on the universal model (its prompt holds the program and the input)."""
    return run_tokens(model, encode_prompt(program, input_bytes), engine=engine, max_tokens=max_tokens)


def run_tokens(model: Model, prompt_tokens: list[str], *, engine: str | None = None,
               max_tokens: int | None = None) -> MachineRun:
    """Generate from a prompt with a fresh engine (one engine holds one sequence), by ``runner.run_prompt``."""
    prompt = encode(model, prompt_tokens)
    limit = runner.default_max_tokens(model, len(prompt)) if max_tokens is None else max_tokens
    outcome = runner.run_prompt(model, prompt, engine=make_engine(model, engine), max_tokens=limit)
    trace = [model.vocab[token] for token in outcome.trace]
    return MachineRun(output=outcome.output, trap=trap_in(trace) if outcome.halted else None,
                      halted=outcome.halted, trace=trace, prompt_tokens=len(prompt), engine=outcome.engine,
                      seconds=outcome.seconds)
