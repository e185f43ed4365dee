"""mul by a constant becomes shifts and adds/subs on a target that shifts natively but lacks mul: same values as
wasmtime. The universal machine executes mul itself, and then the rewrite is never cheaper in tokens."""

import random

import pytest
from tests.frontend.frontend_oracle import _wat_binary, lowered, run_wasmtime

from wasmformer.frontend import BASIC_OPS, Call, Op
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.machine.trace import decode_output, expected_trace
from wasmformer.frontend.lower_function import non_adjacent_form
from wasmformer.oracles import refvm

pytestmark = pytest.mark.oracle

CONSTANTS = [0, 1, 2, 3, 5, 7, 10, 81, 255, 0x01000193, 0x5BD1E995, 0xCC9E2D51, 0x7FFFFFFF, 0x80000000,
             0xFFFFFFFF, -3, -10]
VALUES = [0, 1, -1, 2, 7, 0x7FFFFFFF, -0x80000000, 0x12345678, -0x55555556]


def module(constant: int) -> str:
    return (f'(module (memory 1) (func (export "f") (param i32) (result i32) '
            f'(i32.mul (local.get 0) (i32.const {constant}))))')


# A target that shifts natively but lacks mul (the universal machine executes mul itself, so it keeps it)
SHIFTS_WITHOUT_MUL = MACHINE_OPS - {Op.MUL}


@pytest.mark.parametrize("constant", CONSTANTS)
def test_multiplication_by_a_constant_matches_wasmtime(constant):
    wat = module(constant)
    program = lowered(wat, calls=[Call("f", (value,)) for value in VALUES], native_ops=SHIFTS_WITHOUT_MUL)
    assert Op.MUL not in {instr.op for instr in program.instrs} and "mul" not in program.stats["rewritten_ops"]
    expected = b"".join(run_wasmtime(_wat_binary(wat), "f", (value,)).output for value in VALUES)
    assert refvm.run(program).output == expected


def test_without_native_shifts_the_helper_is_kept():
    program = lowered(module(10), calls=[Call("f", (7,))], native_ops=BASIC_OPS)
    assert program.stats["rewritten_ops"] == {"mul": 1}
    assert refvm.run(program).output == (70).to_bytes(4, "little")


def test_native_mul_is_left_alone_and_is_cheaper_in_tokens():
    """With the machine's own mul, const + mul is two steps of 5 tokens; the rewrite never beats that."""
    for constant in (1, 2, 10, 0x5BD1E995):
        calls = [Call("f", (7,))]
        native = lowered(module(constant), calls=calls)
        assert Op.MUL in {instr.op for instr in native.instrs}
        rewritten = lowered(module(constant), calls=calls, native_ops=SHIFTS_WITHOUT_MUL)
        native_tokens = len(expected_trace(native).tokens)
        assert native_tokens < len(expected_trace(rewritten).tokens)
        assert decode_output(expected_trace(native).tokens) == (7 * constant % 2**32).to_bytes(4, "little")


def test_non_adjacent_form_sums_to_the_constant():
    rng = random.Random(5)
    for constant in CONSTANTS + [rng.getrandbits(32) for _ in range(2000)]:
        digits = non_adjacent_form(constant)
        assert sum(digit << shift for shift, digit in digits) % 2**32 == constant % 2**32
        shifts = [shift for shift, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))  # no two adjacent nonzero digits
