"""i64 and float bits as words: every i64 instruction on the reference VM equals wasmtime.

Each op runs twice: with the machine's op set (the universal machine; an i64
op it lacks is a helper call) and with basic ops only (every helper, and the
i32 helpers they call, exercised). Edge rows (0, 1, -1, INT64_MIN/MAX, word
boundaries, shifts by 0/31/32/63/64+) in one batch per op, then hypothesis pairs.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.frontend.frontend_oracle import _wat_binary, assert_same, lowered, run_wasmtime
from wasmformer.frontend import BASIC_OPS, Call
from wasmformer.oracles import refvm

pytestmark = pytest.mark.oracle

BINARY = ["add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor", "shl", "shr_s", "shr_u",
          "rotl", "rotr"]
COMPARE = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]
UNARY = ["clz", "ctz", "popcnt", "extend8_s", "extend16_s", "extend32_s"]
OPS_MODULE = "(module (memory 1) " + " ".join(
    [f'(func (export "{op}") (param i64 i64) (result i64) (i64.{op} (local.get 0) (local.get 1)))' for op in BINARY]
    + [f'(func (export "{op}") (param i64 i64) (result i32) (i64.{op} (local.get 0) (local.get 1)))' for op in COMPARE]
    + [f'(func (export "{op}") (param i64) (result i64) (i64.{op} (local.get 0)))' for op in UNARY]
    + ['(func (export "eqz") (param i64) (result i32) (i64.eqz (local.get 0)))',
       '(func (export "wrap") (param i64) (result i32) (i32.wrap_i64 (local.get 0)))',
       '(func (export "extend_s") (param i32) (result i64) (i64.extend_i32_s (local.get 0)))',
       '(func (export "extend_u") (param i32) (result i64) (i64.extend_i32_u (local.get 0)))']) + ")"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
EDGES = [0, 1, -1, 2, -2, 7, -7, 31, 32, 33, 63, 64, 65, 127, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
         0x100000000, 0x1FFFFFFFF, -0x100000000, INT64_MIN, INT64_MAX, INT64_MIN + 1, 0x123456789ABCDEF0,
         -0x5555555555555556]
I64 = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
OP_SETS = {"machine": None, "basic": BASIC_OPS}


def _traps(op: str, a: int, b: int) -> bool:
    return op in ("div_s", "div_u", "rem_s", "rem_u") and (b == 0 or (op == "div_s" and a == INT64_MIN and b == -1))


def assert_batch(op: str, argument_lists: list[tuple], native_ops) -> None:
    """Many calls in one program, compared with wasmtime call by call."""
    wasm = _wat_binary(OPS_MODULE)
    expected = [run_wasmtime(wasm, op, args).output for args in argument_lists]
    program = lowered(OPS_MODULE, native_ops=native_ops, calls=[Call(op, args) for args in argument_lists])
    result = refvm.run(program, max_steps=20_000_000)
    assert result.trap is None and result.halted
    start = 0
    for args, row in zip(argument_lists, expected):
        assert result.output[start:start + len(row)] == row, f"{op}{args}"
        start += len(row)
    assert len(result.output) == start


@pytest.mark.parametrize("ops", OP_SETS)
@pytest.mark.parametrize("op", BINARY + COMPARE)
def test_binary_edge_cases(op, ops):
    edges = EDGES if ops == "machine" else EDGES[::3]  # with basic ops only, every i32 op is a helper call too
    assert_batch(op, [(a, b) for a in edges for b in edges if not _traps(op, a, b)], OP_SETS[ops])


@pytest.mark.parametrize("ops", OP_SETS)
@pytest.mark.parametrize("op", UNARY + ["eqz", "wrap"])
def test_unary_edge_cases(op, ops):
    values = EDGES + [1 << k for k in range(64)] + [-(1 << k) for k in range(64)]
    assert_batch(op, [(a,) for a in values], OP_SETS[ops])


@pytest.mark.parametrize("op", ["extend_s", "extend_u"])
def test_extensions_from_i32(op):
    assert_batch(op, [(a,) for a in [0, 1, -1, 0x7FFFFFFF, -0x80000000, 0x12345678, -2]], None)


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(BINARY + COMPARE), a=I64,
       b=I64 | st.integers(min_value=-70, max_value=70) | st.integers(min_value=1 << 16, max_value=(1 << 32) - 1)
       | st.integers(min_value=1 << 32, max_value=1 << 40),
       ops=st.sampled_from(sorted(OP_SETS)))
def test_random_pairs(op, a, b, ops):
    assert_same(OPS_MODULE, op, (a, b), native_ops=OP_SETS[ops])


def test_division_traps():
    for op in ("div_s", "div_u", "rem_s", "rem_u"):
        assert assert_same(OPS_MODULE, op, (5, 0)).trap.name == "DIVIDE_BY_ZERO"
    assert assert_same(OPS_MODULE, "div_s", (INT64_MIN, -1)).trap.name == "INTEGER_OVERFLOW"
    assert assert_same(OPS_MODULE, "rem_s", (INT64_MIN, -1)).trap is None


MEMORY_MODULE = """(module (memory 1)
  (global $g (mut i64) (i64.const -81985529216486896))
  (global $f (mut f64) (f64.const -2.5))
  (func (export "round_trip") (param $address i32) (param $value i64) (result i64)
    (i64.store offset=3 (local.get $address) (local.get $value))
    (i64.add (i64.load offset=3 (local.get $address)) (i64.load32_u offset=7 (local.get $address))))
  (func (export "narrow") (param $address i32) (param $value i64) (result i64)
    (i64.store8 (local.get $address) (local.get $value))
    (i64.store16 offset=2 (local.get $address) (local.get $value))
    (i64.store32 offset=4 (local.get $address) (local.get $value))
    (i64.add (i64.add (i64.load8_s (local.get $address)) (i64.load16_s offset=2 (local.get $address)))
             (i64.add (i64.load32_s offset=4 (local.get $address)) (i64.load16_u offset=2 (local.get $address)))))
  (func (export "globals") (param $value i64) (result i64)
    (global.set $g (i64.xor (global.get $g) (local.get $value)))
    (f64.store (i32.const 16) (global.get $f))
    (global.set $f (f64.load (i32.const 16)))
    (i64.add (global.get $g) (i64.reinterpret_f64 (global.get $f))))
  (func (export "select") (param $a i64) (param $b i64) (param $c i32) (result i64)
    (local $t i64)
    (local.set $t (select (local.get $a) (local.get $b) (local.get $c)))
    (i64.sub (local.tee $t (local.get $t)) (i64.const 1)))
  (func (export "block") (param $a i64) (result i64 i64)
    (block (result i64 i64) (local.get $a) (i64.const 5) (br_if 0 (i32.wrap_i64 (local.get $a))) (i64.add) (i64.const 9))
    ))
"""


WHOLE_PAGE = {"memory_limit": 65536}  # the reference VM addresses the module's whole page


@pytest.mark.parametrize("value", [0, 1, -1, INT64_MIN, INT64_MAX, 0x123456789ABCDEF0, -0x80, 0x80008000800080])
def test_memory_globals_select_and_blocks(value):
    for address in (0, 1, 100, 65536 - 11):
        assert_same(MEMORY_MODULE, "round_trip", (address, value), **WHOLE_PAGE)
        assert_same(MEMORY_MODULE, "narrow", (address, value), **WHOLE_PAGE)
    for address in (65536 - 10, 65536 - 7, -1):  # the high word, or both, out of bounds
        assert assert_same(MEMORY_MODULE, "round_trip", (address, value), **WHOLE_PAGE).trap is not None
    assert_same(MEMORY_MODULE, "globals", (value,))
    assert_same(MEMORY_MODULE, "block", (value,))
    for condition in (0, 1, -1):
        assert_same(MEMORY_MODULE, "select", (value, value ^ 0x5555, condition))


def test_an_i64_store_is_one_step_that_traps_before_writing():
    """store64 checks all 8 bytes at its first token, like every store of the machine."""
    program = lowered("""(module (memory 1)
      (func (export "f") (i64.store (i32.const 65530) (i64.const -1))))""", calls=[Call("f")], **WHOLE_PAGE)
    stores = [instr for pc, instr in enumerate(program.instrs)
              if instr.op.value.startswith("store") and program.origins.get(pc, ("",))[0] == "f"]
    assert [(instr.op.value, instr.arg) for instr in stores] == [("store64", 0)]
    assert refvm.run(program).trap.name == "OUT_OF_BOUNDS_MEMORY"


DIVISOR_CLASSES = {"below 2^16": (1, 1 << 16), "one word": (1 << 16, 1 << 32), "two words": (1 << 32, 1 << 64)}


@pytest.mark.parametrize("divisors", DIVISOR_CLASSES)
@pytest.mark.parametrize("op", ["div_u", "rem_u", "div_s", "rem_s"])
def test_division_by_every_class_of_divisor(op, divisors):
    """Each path of the division helper (docs/vm-program.md) on 120 seeded random pairs, signs mixed."""
    import random

    rng, (low, high) = random.Random(f"{op} {divisors}"), DIVISOR_CLASSES[divisors]
    rows = []
    for _ in range(120):
        a = rng.getrandbits(rng.choice([16, 33, 48, 64]))
        b = rng.randrange(low, high)
        rows.append((a - (1 << 64) if a >> 63 else a, b - (1 << 64) if b >> 63 else b))
    assert_batch(op, [(a, b) for a, b in rows if not _traps(op, a, b)], None)


def test_a_dropped_or_branched_over_i64_load_moves_both_words():
    """Every i64 load pushes two words: drop and br discard both (the lowering once counted one)."""
    wat = """(module (memory 1) (data (i32.const 0) "\\01\\02\\03\\04\\05\\06\\07\\08")
      (func (export "f") (param i32) (result i32)
        (drop (i64.load32_u (i32.const 0))) (drop (i64.load8_s (i32.const 1))) (drop (i64.load (i32.const 0)))
        (block (result i32)
          (drop (br_if 0 (i32.const 7) (i64.load16_u (i32.const 0)) (drop) (local.get 0)))
          (i32.const 9))))"""
    for argument in (0, 1):
        assert_same(wat, "f", (argument,))


SHIFT_COUNTS = [0, 1, 5, 31, 32, 33, 40, 63, 64, 65, 127, -2]


def test_shifts_by_a_constant_are_inline_word_shifts():
    """i64 shifts right after an i64.const run as i32 shifts of the words (no helper call), as wasmtime."""
    functions = " ".join(f'(func (export "{op}_{count % 128}") (param i64) (result i64) '
                         f'(i64.{op} (local.get 0) (i64.const {count})))'
                         for op in ("shl", "shr_u", "shr_s") for count in SHIFT_COUNTS)
    wat = f"(module {functions})"
    program = lowered(wat, calls=[Call("shl_5", (1,))])
    assert program.stats["rewritten_ops"] == {}  # no shl64 helper
    wasm = _wat_binary(wat)
    for op in ("shl", "shr_u", "shr_s"):
        for count in SHIFT_COUNTS:
            name = f"{op}_{count % 128}"
            for value in EDGES[::2]:
                result = refvm.run(lowered(wat, calls=[Call(name, (value,))]))
                assert result.output == run_wasmtime(wasm, name, (value,)).output, (name, value)
