"""Floats through the universal model: f32/f64 instructions are helper calls (the float library), so the
model runs them with nothing new; its trace must equal the trace oracle's token for token, its output
wasmtime's (with NaN canonicalisation: tests/frontend/test_float_oracle.py).

A few rows per instruction family (f64 arithmetic, comparisons, conversions, f32, a trapping truncation)
and one C program (printf %f of math.h results) against wasmtime.
"""

from __future__ import annotations

import pytest

from tests.frontend.frontend_oracle import lowered
from tests.frontend.test_float_oracle import _bits, _module, expected
from wasmformer.frontend import Call, load_program, module_bytes
from wasmformer.machine.execute import run_program, trace_tokens, trap_reason
from wasmformer.machine.trace import expected_trace
from wasmformer.oracles.wasmtime_runner import run_program as run_wasmtime
from wasmformer.vm.program import TrapReason

pytestmark = [pytest.mark.oracle, pytest.mark.wasmtime]
pytest.importorskip("wasmtime")

F64 = {"one": _bits("f64", 1.0), "third": _bits("f64", 1 / 3), "big": _bits("f64", 1e300), "tiny": 1,
       "minus_zero": 1 << 63, "nan": 0x7FF4000000000001, "inf": 0x7FF0000000000000, "half": _bits("f64", -2.5)}
ROWS = {
    "f64.add": [(F64["one"], F64["third"]), (F64["inf"], F64["inf"] | 1 << 63), (F64["tiny"], F64["tiny"])],
    "f64.mul": [(F64["third"], F64["big"]), (F64["big"], F64["big"]), (F64["nan"], F64["one"])],
    "f64.div": [(F64["one"], F64["third"]), (F64["tiny"] * 2, _bits("f64", 2.5)), (F64["one"], F64["minus_zero"])],
    "f64.lt": [(F64["one"], F64["third"]), (F64["minus_zero"], 0), (F64["nan"], F64["one"])],
    "f64.nearest": [(F64["half"],), (_bits("f64", 3.5),)],
    "i32.trunc_f64_s": [(F64["half"],), (_bits("f64", 2147483647.9),)],
    "f64.convert_i64_u": [((1 << 64) - 1,), (12345,)],
    "f32.mul": [(_bits("f32", 1.1), _bits("f32", 3.0)), (0x7F7FFFFF, 0x40000000)],
    "f32.demote_f64": [(F64["third"],), (F64["big"],)],
}


def assert_model_matches(universal, name: str, argument_lists: list[tuple[int, ...]]) -> None:
    program = lowered(_module(name), calls=[Call("op", args) for args in argument_lists])
    trace = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(trace.tokens) + 16)
    assert trace_tokens(universal, run) == trace.tokens
    assert run.output == b"".join(expected(name, args)[0] for args in argument_lists)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_float_instructions_on_the_model(universal, name):
    assert_model_matches(universal, name, ROWS[name])


def test_a_truncation_of_nan_traps_on_the_model(universal):
    program = lowered(_module("i32.trunc_f64_s"), calls=[Call("op", (F64["nan"],))])
    trace = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(trace.tokens) + 16)
    assert trace_tokens(universal, run) == trace.tokens
    assert trap_reason(run) is TrapReason.INVALID_CONVERSION


MATH = """#include <math.h>
#include <stdio.h>
int main(void) {
    double x = 0.75;
    printf("%f %.3e %g\\n", x * 3.1, sqrt(x), floor(-x));
    return 0;
}
"""


@pytest.mark.slow
def test_printf_of_doubles_on_the_model(universal):
    program = load_program(MATH, kind="c")
    trace = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(trace.tokens) + 16)
    assert trace_tokens(universal, run) == trace.tokens
    assert run.output == run_wasmtime(module_bytes(MATH, kind="c"), b"").output
