"""Specialised models: the program in the weights, the input in the prompt, the universal model's trace.

Every example is specialised; its trace (fast engine) must equal the expected
trace, which tests/machine/test_model_traces.py shows is the universal model's
trace token for token. Long examples compare a long prefix here and the whole
trace in `make test-all`. The dense engine checks the first tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wasmformer.cli import EXIT_ERROR, main
from wasmformer.frontend import load_program
from wasmformer.vm.program import Instr, Op, VMProgram
from wasmformer.machine.baked import MAX_TABLE_UNITS, BakedProgram, specialised_prompt
from wasmformer.machine.execute import run_tokens, trace_tokens, trap_in
from wasmformer.machine.specialize import specialise
from wasmformer.machine.trace import expected_trace
from wasmformer.vm.errors import ProgramError

from tests.machine.trace_ids import token_ids

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
# The examples that fit a specialised model: the ones with printf or scanf link the libc's vfprintf / vfscanf,
# 10,000-21,000 instructions, past MAX_TABLE_UNITS (docs/specialize.md); test_printf_programs_are_too_large.
# sudoku's first 100,000 tokens; whole, and sudoku_hard (the same program and specialised model on another
# input), in `make test-all`.
RUNS = [("hello", "hello", None), ("sudoku", "sudoku", 100_000)]
# Tokens compared with the dense engine, which computes every FFN of the specialised model in full (about a
# tenth of a second per token for hello's): a short prefix in `make test`, a longer one in `make test-all`.
DENSE_PREFIX = 250
DENSE_PREFIX_SLOW = 1500


def _input(name: str) -> bytes:
    path = EXAMPLES_DIR / f"{name}.input"
    return path.read_bytes() if path.is_file() else b""


@pytest.fixture(scope="module")
def specialised():
    cache = {}

    def get(source: str):
        if source not in cache:
            program = load_program(EXAMPLES_DIR / f"{source}.c")
            cache[source] = (program, specialise(program))
        return cache[source]
    return get


def run_specialised(model, program, input_bytes, max_new_tokens, engine=None):
    return run_tokens(model, specialised_prompt(program, input_bytes), engine=engine, max_new_tokens=max_new_tokens)


def assert_same_as_expected(model, program, input_bytes, limit, name):
    expected = expected_trace(program, input_bytes, max_new_tokens=limit)
    result = run_specialised(model, program, input_bytes, len(expected.tokens))
    assert len(result.trace) == len(expected.tokens), name
    mismatch = np.flatnonzero(np.asarray(result.trace) != token_ids(model, expected.tokens))
    assert mismatch.size == 0, f"{name}: first differing token at {mismatch[:1]}"
    if limit is None:
        assert result.halted and result.output == (EXAMPLES_DIR / f"{name}.expected").read_bytes()


@pytest.mark.oracle
@pytest.mark.parametrize("name,source,limit", RUNS, ids=[run[0] for run in RUNS])
def test_specialised_trace_equals_the_universal_trace(specialised, name, source, limit):
    program, result = specialised(source)
    assert_same_as_expected(result.model, program, _input(name), limit, name)


@pytest.mark.slow
@pytest.mark.parametrize("name,source", [("sudoku", "sudoku"), ("sudoku_hard", "sudoku")])
def test_specialised_whole_trace_of_long_examples(specialised, name, source):
    program, result = specialised(source)
    assert_same_as_expected(result.model, program, _input(name), None, name)


@pytest.mark.parametrize("prefix", [DENSE_PREFIX, pytest.param(DENSE_PREFIX_SLOW, marks=pytest.mark.slow)])
def test_dense_engine_agrees_with_the_fast_engine(specialised, prefix):
    program, result = specialised("hello")
    fast = run_specialised(result.model, program, b"", prefix)
    dense = run_specialised(result.model, program, b"", prefix, engine="dense")
    assert dense.trace == fast.trace and len(dense.trace) == prefix


def test_input_is_the_whole_prompt_apart_from_constant_slots():
    program = load_program(EXAMPLES_DIR / "sudoku.c")
    prompt = specialised_prompt(program, b"12+34\n")
    assert not any(token.startswith("op.") or token in ("<code>", "<data>", "g") for token in prompt)
    assert [token for token in prompt if token.startswith("i.")][8:] == ["i.31", "i.32", "i.2b", "i.33", "i.34",
                                                                          "i.0a"]


def test_trap_programs_specialise_too():
    wat = '(module (memory 1) (func (export "f") (param i32) (result i32) (i32.load (local.get 0))))'
    program = load_program(wat, kind="wat", invoke="f", args=(1 << 20,))
    result = specialise(program)
    trace = trace_tokens(result.model, run_specialised(result.model, program, b"", 10_000))
    assert trace == expected_trace(program).tokens and trap_in(trace).name == "OUT_OF_BOUNDS_MEMORY"


def test_printf_programs_are_too_large():
    with pytest.raises(ProgramError, match=f"program 'fibonacci' needs .* at most {MAX_TABLE_UNITS} are supported"):
        BakedProgram(load_program(EXAMPLES_DIR / "fibonacci.c"))


def test_a_program_too_large_is_refused_with_the_limit():
    instrs = [Instr(Op.CONST, (pc * 2654435761) & 0xFFFFFFFF) for pc in range(MAX_TABLE_UNITS // 3)]
    program = VMProgram(instrs=instrs + [Instr(Op.HALT)], entry=0, entry_locals=0, globals=[], memory=b"",
                        memory_limit=16, name="big")
    with pytest.raises(ProgramError, match=f"at most {MAX_TABLE_UNITS} are supported"):
        BakedProgram(program)


def test_cli_specialize_compile_for_model_and_run(tmp_path, capsys):
    model_dir = tmp_path / "hello_model"
    assert main(["specialize", str(EXAMPLES_DIR / "hello.c"), "-o", str(model_dir)]) == 0
    assert (model_dir / "config.json").is_file() and (model_dir / "hello.prompt").is_file()
    capsys.readouterr()
    assert main(["run", str(model_dir / "hello.prompt"), "--model", str(model_dir), "--quiet"]) == 0
    assert capsys.readouterr().out.encode() == (EXAMPLES_DIR / "hello.expected").read_bytes()
    prompt = tmp_path / "other.prompt"
    assert main(["compile", str(EXAMPLES_DIR / "hello.c"), "--for-model", str(model_dir), "-o",
                 str(prompt)]) == 0
    assert prompt.read_text() == (model_dir / "hello.prompt").read_text()
    assert main(["compile", str(EXAMPLES_DIR / "sudoku.c"), "--for-model", str(model_dir), "-o",
                 str(prompt)]) == EXIT_ERROR
    assert "specialised for program 'hello'" in capsys.readouterr().err


def test_memory_past_the_data_and_grown_pages_read_zero_when_specialised():
    """The baked initial memory ends at the last data byte: every byte above it, and every byte of a page
    memory.grow added, reads 0 until stored (as in the universal machine and wasm)."""
    wat = """(module (memory 1 2) (data (i32.const 100) "\\07")
      (func (export "f") (result i32)
        (drop (memory.grow (i32.const 1)))
        (i32.store8 (i32.const 70001) (i32.const 5))
        (i32.add (i32.load8_u (i32.const 100))
                 (i32.mul (i32.const 10) (i32.add (i32.add (i32.load8_u (i32.const 101))
                                                           (i32.load8_u (i32.const 70000)))
                                                  (i32.load8_u (i32.const 70001)))))))"""
    program = load_program(wat, kind="wat", invoke="f")
    result = specialise(program)
    run = run_specialised(result.model, program, b"", 10_000)
    assert trace_tokens(result.model, run) == expected_trace(program).tokens
    assert int.from_bytes(run.output, "little") == 7 + 10 * 5
