"""The rewrite helpers: every rewritten op equals wasm semantics (wasmtime) on edge cases and random pairs.

Every op is rewritten here (native_ops=BASIC_OPS), including those the universal machine
executes itself, so each helper stays tested.
"""

import pytest
from tests.frontend.frontend_oracle import assert_same, lowered, run_wasmtime, _wat_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmformer.frontend import BASIC_OPS, REWRITABLE_OPS, Call, Op
from wasmformer.frontend.helpers import helper_library
from wasmformer.frontend.lower_function import BULK_MEMORY_HELPERS
from wasmformer.oracles import refvm
from wasmformer.vm.ops import spec

pytestmark = pytest.mark.oracle

BINARY = ["mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr"]
UNARY = ["clz", "ctz", "popcnt", "extend8_s", "extend16_s"]
OPS_MODULE = "(module (memory 1) " + " ".join(
    [f'(func (export "{op}") (param i32 i32) (result i32) (i32.{op} (local.get 0) (local.get 1)))' for op in BINARY]
    + [f'(func (export "{op}") (param i32) (result i32) (i32.{op} (local.get 0)))' for op in UNARY]) + ")"
EDGES = [0, 1, -1, 2, -2, 3, 7, -7, 31, 32, 33, 63, 64, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
         0x7FFFFFFF, -0x80000000, -0x7FFFFFFF, 0x12345678, -0x12345678, 0x55555555, -0x55555556]
# ~50 steps per bit at most; an O(value) loop would take billions of steps
WORST_CASE_HELPER_STEPS = 32 * 50
BINARY_EDGES = [0, 1, -1, 2, 7, -7, 31, 32, 33, 0x8000, 0xFFFF, 0x7FFFFFFF, -0x80000000, 0x12345678, -0x55555556]
REWRITE_ALL = BASIC_OPS  # the machine's bitwise ops are rewritten too, to test their helpers
I32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def assert_batch(op: str, argument_lists: list[tuple]) -> None:
    """Many calls in one program (one lowering, one run); compared with wasmtime call by call."""
    wasm = _wat_binary(OPS_MODULE)
    expected = b"".join(run_wasmtime(wasm, op, args).output for args in argument_lists)
    program = lowered(OPS_MODULE, native_ops=REWRITE_ALL, calls=[Call(op, args) for args in argument_lists])
    result = refvm.run(program)
    assert result.trap is None
    for position, args in enumerate(argument_lists):
        window = slice(4 * position, 4 * position + 4)
        assert result.output[window] == expected[window], f"{op}{args}"


def _traps(op: str, a: int, b: int) -> bool:
    return op in ("div_s", "div_u", "rem_s", "rem_u") and (b == 0 or (op == "div_s" and a == -(2**31) and b == -1))


@pytest.mark.parametrize("op", BINARY)
def test_binary_edge_cases(op):
    assert_batch(op, [(a, b) for a in BINARY_EDGES for b in BINARY_EDGES if not _traps(op, a, b)])


@pytest.mark.parametrize("op", UNARY)
def test_unary_edge_cases(op):
    assert_batch(op, [(a,) for a in EDGES + [1 << k for k in range(31)] + [-(1 << k) for k in range(31)]])


@settings(max_examples=100, deadline=None)
@given(op=st.sampled_from(BINARY), a=I32, b=I32 | st.integers(min_value=-40, max_value=40))
def test_binary_random_pairs(op, a, b):
    assert_same(OPS_MODULE, op, (a, b), native_ops=REWRITE_ALL)


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(UNARY), a=I32)
def test_unary_random(op, a):
    assert_same(OPS_MODULE, op, (a,), native_ops=REWRITE_ALL)


def test_traps_of_division():
    for op in ("div_s", "div_u", "rem_s", "rem_u"):
        assert assert_same(OPS_MODULE, op, (5, 0), native_ops=REWRITE_ALL).trap.name == "DIVIDE_BY_ZERO"
    assert assert_same(OPS_MODULE, "div_s", (-(2**31), -1), native_ops=REWRITE_ALL).trap.name == "INTEGER_OVERFLOW"
    assert assert_same(OPS_MODULE, "rem_s", (-(2**31), -1), native_ops=REWRITE_ALL).trap is None


def test_helpers_use_basic_ops_only_and_stay_short():
    program = lowered(OPS_MODULE, native_ops=REWRITE_ALL,
                      calls=[Call(op, (1, 2)) for op in BINARY] + [Call(op, (1,)) for op in UNARY],
                      memory_limit=65536)
    start, end = program.stats["helper_pcs"]
    assert end > start
    helper_ops = {instr.op for instr in program.instrs[start:end]}
    assert helper_ops <= BASIC_OPS, helper_ops - BASIC_OPS
    assert set(program.stats["rewritten_ops"]) == {op.value for op in REWRITABLE_OPS if not spec(op).wide}
    assert program.stats["helper_instructions"] == end - start


@pytest.mark.parametrize("op,a,b", [("mul", -1, -1), ("div_u", -1, 1), ("and", -1, -1), ("shr_u", 1, 1),
                                    ("rotl", -1, 31), ("clz", 1, None), ("ctz", -(2**31), None)])
def test_helpers_cost_o32_steps(op, a, b):
    """Worst-case operands: the helper finishes in a few dozen steps per bit, never O(value)."""
    args = (a,) if b is None else (a, b)
    program = lowered(OPS_MODULE, native_ops=REWRITE_ALL, calls=[Call(op, args)])
    result = refvm.run(program)
    assert result.trap is None and result.helper_steps > 0
    assert result.helper_steps < WORST_CASE_HELPER_STEPS


def test_native_ops_are_not_rewritten():
    native = BASIC_OPS | {Op.MUL, Op.AND}
    program = lowered(OPS_MODULE, calls=[Call("mul", (6, 7)), Call("and", (6, 3)), Call("or", (6, 3))],
                      native_ops=native)
    assert program.stats["rewritten_ops"] == {"or": 1}
    assert Op.MUL in {instr.op for instr in program.instrs}
    result = refvm.run(program)
    assert result.output == bytes([42, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0])


def test_everything_native_links_no_helpers():
    program = lowered(OPS_MODULE, calls=[Call("mul", (6, 7))], native_ops=BASIC_OPS | REWRITABLE_OPS)
    assert program.stats["helper_instructions"] == 0 and program.stats["helpers"] == []
    assert refvm.run(program).output == bytes([42, 0, 0, 0])


def test_helper_library_exports_every_rewritable_op():
    exported = {name for name, (kind, _) in helper_library().exports.items() if kind == "func"}
    wasi = {name for name in exported if name.startswith("wasi:")}  # the WASI functions (frontend/wasi.wat)
    assert {"wasi:fd_write", "wasi:fd_read", "wasi:proc_exit", "wasi:args_get", "wasi:args_sizes_get"} <= wasi
    signs = {f"{kind}.{op}" for kind in ("f32", "f64") for op in ("abs", "neg", "copysign")}  # float sign bits
    assert exported - wasi == {op.value for op in REWRITABLE_OPS} | set(BULK_MEMORY_HELPERS.values()) | signs


def test_wasmtime_oracle_sees_the_same_module():
    assert run_wasmtime(_wat_binary(OPS_MODULE), "mul", (6, 7)).output == bytes([42, 0, 0, 0])
