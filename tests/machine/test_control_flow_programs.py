"""C programs built on switch statements and function pointers: br_table and call_indirect end to end.

tests/programs/switch_machine.c (dense switches clang turns into br_table,
sparse ones, defaults, fallthrough) and tests/programs/function_pointers.c (an
array of functions, a struct with a callback, a qsort-shaped sort with
comparators, a returned function pointer) must print their .expected output
under wasmtime, and the universal model must generate exactly the expected
trace and print the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wasmformer.frontend import load_program
from wasmformer.frontend.decode import decode_body, decode_module
from wasmformer.frontend.toolchain import compile_c
from wasmformer.machine.execute import run_program
from wasmformer.machine.trace import expected_trace

from tests.machine.trace_ids import token_ids

pytestmark = pytest.mark.oracle

PROGRAMS_DIR = Path(__file__).resolve().parents[1] / "programs"
PROGRAMS = ["switch_machine", "function_pointers"]
# The shapes each program exists to exercise: wasm instruction -> the fewest occurrences in its module.
REQUIRED = {"switch_machine": {"br_table": 5}, "function_pointers": {"call_indirect": 5}}
TABLE_SLOTS = 8  # function_pointers stores at least this many functions in its table


def expected_output(name: str) -> bytes:
    return (PROGRAMS_DIR / f"{name}.expected").read_bytes()


def instruction_counts(wasm: bytes) -> dict[str, int]:
    module = decode_module(wasm)
    counts: dict[str, int] = {}
    for function in module.functions:
        for instruction in decode_body(module, function):
            counts[instruction.name] = counts.get(instruction.name, 0) + 1
    return counts


@pytest.mark.wasmtime
@pytest.mark.parametrize("name", PROGRAMS)
def test_wasmtime_prints_the_expected_output(name):
    from wasmformer.oracles.wasmtime_runner import run_wasm

    wasm = compile_c(PROGRAMS_DIR / f"{name}.c")
    assert run_wasm(wasm) == expected_output(name)
    counts = instruction_counts(wasm)
    for instruction, minimum in REQUIRED[name].items():
        assert counts.get(instruction, 0) >= minimum, f"{name}: {instruction} x{counts.get(instruction, 0)}"


def test_function_pointers_fill_the_table():
    module = decode_module(compile_c(PROGRAMS_DIR / "function_pointers.c"))
    slots = sum(len(segment.functions) for segment in module.elements if segment.mode == "active")
    assert slots >= TABLE_SLOTS


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_model_generates_the_expected_trace(universal, name):
    program = load_program(PROGRAMS_DIR / f"{name}.c")
    expected = expected_trace(program)
    assert expected.halted and expected.trap is None
    run = run_program(universal, program, max_new_tokens=len(expected.tokens) + 16)
    assert run.halted and len(run.trace) == len(expected.tokens)
    mismatch = np.flatnonzero(np.asarray(run.trace) != token_ids(universal, expected.tokens))
    assert mismatch.size == 0, f"{name}: first differing token at {mismatch[:1]}"
    assert run.output == expected_output(name)
