"""The universal model's traces: token for token the expected trace, output equal to wasmtime's.

For every bundled example (the first EXAMPLE_PREFIX tokens of the longest in
`make test`) and every WAT edge-case program of the front-end tests, the model
(fastest engine available) generates the whole trace, which
must equal ``expected_trace`` (the reference VM's token language) and whose
output must equal wasmtime's (the examples' .expected files are checked against
wasmtime in tests/test_examples_wasmtime.py). The dense engine, the definition,
agrees with the fast engine on the first tokens of one call of each WAT module
in `make test`, and on the first call of every export and over the first
DENSE_PREFIX tokens of every example in `make test-all`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wasmformer.engines import default_engine_name
from wasmformer.frontend import load_program
from wasmformer.machine.execute import run_program, trace_tokens, trap_reason
from wasmformer.machine.trace import expected_trace
from wasmformer.oracles import refvm

from tests.machine.trace_ids import token_ids

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(path.stem for path in EXAMPLES_DIR.glob("*.c"))
INPUTS = {"sudoku_hard": "sudoku_hard.input"}  # examples sharing a source with another input
DENSE_PREFIX = 1500  # generated tokens compared with the dense engine in `make test-all` (20-75 ms a token)
DENSE_PREFIX_QUICK = 400  # in `make test`


def example_runs():
    """(name, source, input file) for every example input, sudoku_hard included."""
    runs = [(name, name, EXAMPLES_DIR / f"{name}.input") for name in EXAMPLES]
    runs += [(name, "sudoku", EXAMPLES_DIR / file) for name, file in INPUTS.items()]
    return runs


@pytest.fixture(scope="module")
def programs():
    cache = {}

    def get(source: str):
        if source not in cache:
            cache[source] = load_program(EXAMPLES_DIR / f"{source}.c")
        return cache[source]
    return get


def _input(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


# `make test` runs every example through the model for up to EXAMPLE_PREFIX tokens: the whole trace of most, the
# first 400,000 tokens of the million-token ones (sudoku_hard, integrate, big_memory, deep_recursion, hungarian:
# 0.9 to 2.8 million tokens, about 20 s a million here). `make test-all` runs every example whole.
EXAMPLE_PREFIX = 400_000


@pytest.mark.oracle
@pytest.mark.parametrize("name,source,input_path,limit", [
    pytest.param(*run, EXAMPLE_PREFIX, id=run[0]) for run in example_runs()] + [
    pytest.param(*run, None, marks=[pytest.mark.slow], id=f"{run[0]}-whole") for run in example_runs()])
def test_example_trace_equals_the_expected_trace(universal, programs, name, source, input_path, limit):
    """The expected trace token for token; the output equal to the .expected file (a prefix of it when the
    run is cut at ``limit`` tokens)."""
    program, input_bytes = programs(source), _input(input_path)
    expected = expected_trace(program, input_bytes, max_new_tokens=limit)
    assert expected.trap is None and (expected.halted or len(expected.tokens) == limit)
    run = run_program(universal, program, input_bytes, max_new_tokens=len(expected.tokens) + 16 * expected.halted)
    assert run.halted == expected.halted, f"{name}: stopped after {len(run.trace)} tokens"
    assert len(run.trace) == len(expected.tokens)
    mismatch = np.flatnonzero(np.asarray(run.trace) != token_ids(universal, expected.tokens))
    assert mismatch.size == 0, f"{name}: first differing token at {mismatch[:1]}"
    expected_output = (EXAMPLES_DIR / f"{name}.expected").read_bytes()
    assert run.output == expected_output if run.halted else expected_output.startswith(run.output)


def _wat_calls():
    from tests.machine import test_trace

    for module, source, export, argument_tuples in test_trace.WAT_CASES:
        for args in argument_tuples:
            yield pytest.param(module, source, export, args, id=f"{source}.{export}{args}")


def _dense_calls():
    """The first call of each export on the dense engine, which takes 20-75 ms a token here: in `make test` the
    first DENSE_PREFIX_QUICK tokens of each module's first export, in `make test-all` DENSE_PREFIX of every one."""
    from tests.machine import test_trace

    modules_seen = set()
    for module, source, export, argument_tuples in test_trace.WAT_CASES:
        call = f"{source}.{export}{argument_tuples[0]}"
        if source not in modules_seen:
            yield pytest.param(module, source, export, argument_tuples[0], DENSE_PREFIX_QUICK, id=f"{call}-quick")
        modules_seen.add(source)
        yield pytest.param(module, source, export, argument_tuples[0], DENSE_PREFIX, marks=[pytest.mark.slow], id=call)


@pytest.mark.wasmtime
@pytest.mark.parametrize("module,source,export,args", list(_wat_calls()))
def test_wat_edge_case_on_the_model(universal, module, source, export, args):
    """Every call on the fast engine: the reference VM's tokens, and wasmtime's output and trap."""
    from tests.frontend import frontend_oracle
    from tests.machine import test_trace

    wat = test_trace.wat_module(module, source)
    program = load_program(wat, kind="wat", invoke=export, args=args)
    expected = expected_trace(program, max_new_tokens=200_000)
    run = run_program(universal, program, max_new_tokens=200_000)
    assert trace_tokens(universal, run) == expected.tokens
    oracle = frontend_oracle.run_wasmtime(frontend_oracle._wat_binary(wat), export, args)
    reference = refvm.run(program, max_steps=200_000)
    # past the machine's memory, memory.grow fails where wasm may still grow (docs/vm-program.md)
    machine_limited = reference.failed_grows and program.stats.get("grow_limited_by_machine")
    if expected.halted and not machine_limited:
        assert (run.output, trap_reason(run)) == (oracle.output, oracle.trap)


@pytest.mark.parametrize("module,source,export,args,prefix", list(_dense_calls()))
def test_wat_edge_case_on_the_dense_engine(universal, module, source, export, args, prefix):
    """The dense engine (the definition) generates the fast engine's first ``prefix`` tokens."""
    from tests.machine import test_trace

    if default_engine_name() == "dense":
        pytest.skip("the fast engine is the dense engine here: test_wat_edge_case_on_the_model ran on it")
    program = load_program(test_trace.wat_module(module, source), kind="wat", invoke=export, args=args)
    run = run_program(universal, program, max_new_tokens=200_000)
    dense = run_program(universal, program, engine="dense", max_new_tokens=min(len(run.trace), prefix))
    assert len(dense.trace) == min(len(run.trace), prefix)
    assert dense.trace == run.trace[:len(dense.trace)]


@pytest.mark.slow
@pytest.mark.parametrize("name,source,input_path", example_runs(), ids=[run[0] for run in example_runs()])
def test_dense_engine_agrees_on_the_first_tokens_of_each_example(universal, programs, name, source, input_path):
    program, input_bytes = programs(source), _input(input_path)
    fast = run_program(universal, program, input_bytes, max_new_tokens=DENSE_PREFIX)
    dense = run_program(universal, program, input_bytes, engine="dense", max_new_tokens=DENSE_PREFIX)
    assert len(dense.trace) == DENSE_PREFIX
    assert dense.trace == fast.trace


# Every example's prompt holds the libc's printf (about 66,000 tokens), half a minute of the Python hull engine
# before its first token: `make test-all`. In `make test` the hull engine runs a C program without stdio
# (tests/test_api.py, test_the_trace_is_the_same_on_every_engine) and its own tests (tests/engines/).
HULL_PREFIX = 20_000


@pytest.mark.slow
@pytest.mark.parametrize("name,source,input_path", example_runs(), ids=[run[0] for run in example_runs()])
def test_hull_engine_agrees_with_the_fast_engine(universal, programs, name, source, input_path):
    """The Python hull engine (exact, readable) and the native engine: the same tokens (hello whole)."""
    program, input_bytes = programs(source), _input(input_path)
    fast = run_program(universal, program, input_bytes, max_new_tokens=HULL_PREFIX)
    hull = run_program(universal, program, input_bytes, engine="hull", max_new_tokens=HULL_PREFIX)
    assert hull.trace == fast.trace
    assert fast.halted or len(fast.trace) == HULL_PREFIX


@pytest.mark.oracle
def test_c_bulk_memory_program_on_the_model(universal):
    """A C program compiled for clang's default CPU (memory.copy through the helpers): trace and output."""
    pytest.importorskip("ziglang")
    from tests.frontend import frontend_oracle, test_bulk_memory_oracle as bulk

    wasm = bulk.compile_for_clangs_default_cpu(bulk.C_PROGRAM)
    program = load_program(wasm, kind="wasm")
    expected = expected_trace(program, bulk.C_INPUT)
    run = run_program(universal, program, bulk.C_INPUT, max_new_tokens=len(expected.tokens) + 16)
    assert trace_tokens(universal, run) == expected.tokens
    assert run.output == frontend_oracle.run_wasmtime(wasm, input_bytes=bulk.C_INPUT).output


MEGABYTE_OF_ARRAYS = r"""
#include <stdio.h>
/* 1 MiB of static arrays beside the 64 KiB C stack: written at both ends and in every 64 KiB, read back.
 * Reached through volatile pointers, so that the compiler cannot fold the arrays away. */
#define BYTES (512 * 1024)
#define WORDS (128 * 1024)
static unsigned char first[BYTES];
static unsigned int second[WORDS];
static unsigned char *volatile bytes = first;
static unsigned int *volatile words = second;

int main(void) {
    unsigned sum = 0;
    for (unsigned i = 0; i < BYTES; i += 65536) bytes[i] = (unsigned char)(i >> 16) + 1;
    bytes[BYTES - 1] = 200;
    for (unsigned i = 0; i < WORDS; i += 16384) words[i] = i * 3 + 1;
    words[WORDS - 1] = 0xabcdef;
    for (unsigned i = 0; i < BYTES; i += 65536) sum += bytes[i];
    for (unsigned i = 0; i < WORDS; i += 16384) sum += words[i];
    printf("%u %u %u %u %u\n", sum, bytes[BYTES - 1], words[WORDS - 1], (unsigned)(bytes + BYTES),
           (unsigned)(words + WORDS));
    return 0;
}
"""


@pytest.mark.oracle
def test_a_megabyte_of_static_arrays_on_the_model(universal, tmp_path):
    """Item 3 of the memory issue: 1 MiB of static arrays runs, beside the 64 KiB stack, as wasmtime runs it."""
    pytest.importorskip("ziglang")
    from tests.frontend import frontend_oracle
    from wasmformer.frontend.toolchain import compile_c

    source = tmp_path / "megabyte.c"
    source.write_text(MEGABYTE_OF_ARRAYS)
    wasm = compile_c(source)
    program = load_program(wasm, kind="wasm")
    assert program.memory_limit > 1024 * 1024 + 65536  # the arrays and the stack, in the initial pages
    expected = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(expected.tokens) + 16)
    assert trace_tokens(universal, run) == expected.tokens
    assert run.output == frontend_oracle.run_wasmtime(wasm).output
