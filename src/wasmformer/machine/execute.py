"""A VM program through a model, for tests and tools: its prompt, ``runner.run_prompt``, the trace read back.

The run itself is ``runner.run_prompt`` and its result the one ``RunResult``;
this module only builds the prompt and reads the trace in the machine's terms
(token strings, ``TrapReason``). ``runner`` does not import it. The output and
the trap come from the generated tokens only (``o.XX`` bytes and ``trap.*``);
nothing here executes the program another way.
"""

from __future__ import annotations

from wasmformer import runner
from wasmformer.engines.base import RunResult, encode
from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import encode_prompt
from wasmformer.model import Model
from wasmformer.vm.program import TrapReason, VMProgram

_TRAP_OF_TOKEN = {token: reason for token, reason in zip(T.TRAPS, TrapReason)}


def run_program(model: Model, program: VMProgram, input_bytes: bytes = b"", *, engine: str | None = None,
                max_new_tokens: int | None = None) -> RunResult:
    """The program's run on the universal model (its prompt holds the program and the input)."""
    return run_tokens(model, encode_prompt(program, input_bytes), engine=engine, max_new_tokens=max_new_tokens)


def run_tokens(model: Model, prompt_tokens: list[str], *, engine: str | None = None,
               max_new_tokens: int | None = None) -> RunResult:
    """A run from prompt token strings on the named engine (default: the fastest), up to the horizon by default."""
    return runner.run_prompt(model, encode(model, prompt_tokens), engine_name=engine, max_new_tokens=max_new_tokens)


def trace_tokens(model: Model, result: RunResult) -> list[str]:
    """The generated tokens as strings."""
    vocab = model.vocab
    return [vocab[token] for token in result.trace]


def trap_reason(result: RunResult) -> TrapReason | None:
    """The trap a halted run ended with, as the VM names it (the machine halts right after a trap token)."""
    return _TRAP_OF_TOKEN.get(result.trap) if result.halted and result.trap else None


def trap_in(trace: list[str]) -> TrapReason | None:
    """The trap a trace of token strings ends with (``trap.X halt``), if any."""
    return _TRAP_OF_TOKEN.get(trace[-2]) if len(trace) >= 2 else None


def last_step_pc(tokens: list[str]) -> int:
    """The pc of the last step of a run, read from its tokens (the prompt's end and the trace) alone.

    The newest transfer commit (or ``<run>``) holds its target in the two tokens
    before it; every other commit moves to the next instruction.
    """
    pc = 0
    for position, token in enumerate(tokens):
        if token in T.TRANSFER_COMMITS:
            pc = 256 * int(tokens[position - 2].split(".")[1], 16) + int(tokens[position - 1].split(".")[1], 16)
        elif token in T.COMMITS:
            pc += 1
    return pc


def unsupported_instruction(program: VMProgram, prompt_tokens: list[str], trace: list[str]) -> str | None:
    """For a run that stopped at ``trap.unsupported``: the wasm instruction it reached and where, e.g.
    ``f64.add in function main (instruction 12)``."""
    if trap_in(trace) is not TrapReason.UNSUPPORTED:
        return None
    run_at = max(position for position, token in enumerate(prompt_tokens) if token == T.RUN)
    return program.unsupported_at(last_step_pc(prompt_tokens[run_at - 2:] + trace))
