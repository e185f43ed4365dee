"""Every supported instruction, run on the reference VM and on wasmtime: same output, same trap."""

import pytest
from tests.frontend.frontend_oracle import assert_same

pytestmark = pytest.mark.oracle

I32_EDGES = [0, 1, -1, 2, 7, -7, 255, 256, 0x7FFFFFFF, -0x80000000, 0x12345678, -0x12345678]

COMPARES = "(module " + " ".join(
    f'(func (export "{op}") (param i32 i32) (result i32) (i32.{op} (local.get 0) (local.get 1)))'
    for op in ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u", "add", "sub"]
) + ' (func (export "eqz") (param i32) (result i32) (i32.eqz (local.get 0))))'


@pytest.mark.parametrize("op", ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u",
                                "add", "sub"])
def test_compares_and_wraparound(op):
    for a in I32_EDGES:
        for b in (0, 1, -1, 0x7FFFFFFF, -0x80000000, 7):
            assert_same(COMPARES, op, (a, b))


def test_eqz():
    for a in I32_EDGES:
        assert_same(COMPARES, "eqz", (a,))


MEMORY = """(module (memory 1)
  (data (i32.const 16) "\\80\\ff\\7f\\01\\fe\\ff\\ff\\7f")
  (func (export "load8_s") (param i32) (result i32) (i32.load8_s (local.get 0)))
  (func (export "load8_u") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "load16_s") (param i32) (result i32) (i32.load16_s (local.get 0)))
  (func (export "load16_u") (param i32) (result i32) (i32.load16_u (local.get 0)))
  (func (export "load") (param i32) (result i32) (i32.load offset=2 (local.get 0)))
  (func (export "store8") (param i32 i32) (result i32)
    (i32.store8 offset=1 (local.get 0) (local.get 1)) (i32.load (local.get 0)))
  (func (export "store16") (param i32 i32) (result i32)
    (i32.store16 (local.get 0) (local.get 1)) (i32.load (local.get 0)))
  (func (export "store") (param i32 i32) (result i32)
    (i32.store (local.get 0) (local.get 1)) (i32.load8_u offset=3 (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "grow0") (result i32) (memory.grow (i32.const 0))))"""


@pytest.mark.parametrize("op", ["load8_s", "load8_u", "load16_s", "load16_u", "load"])
def test_sign_extending_loads(op):
    for address in range(14, 24):
        assert_same(MEMORY, op, (address,))


@pytest.mark.parametrize("op", ["store8", "store16", "store"])
def test_stores(op):
    for value in (0, 0x1234, -1, 0x80, -0x80000000, 0x7F7F7F7F):
        assert_same(MEMORY, op, (100, value))


def test_out_of_bounds_traps_like_wasm_past_the_page():
    assert_same(MEMORY, "load", (65534,), memory_limit=65536)
    assert_same(MEMORY, "load", (-1,), memory_limit=65536)
    assert_same(MEMORY, "store", (65533, 1), memory_limit=65536)
    assert_same(MEMORY, "load8_u", (65535,), memory_limit=65536)


def test_memory_size_and_grow_by_zero():
    assert_same(MEMORY, "size")
    assert_same(MEMORY, "grow0")


CONTROL = """(module
  (func (export "nested") (param i32) (result i32)
    (block $outer (result i32)
      (block $inner
        (br_if $inner (i32.eqz (local.get 0)))
        (br $outer (i32.const 10)))
      (i32.const 20)))
  (func (export "br_value_discards") (param i32) (result i32)
    ;; extra values below the branch result must be dropped
    (i32.const 100)
    (block $b (result i32)
      (i32.const 1) (i32.const 2) (i32.const 3)
      (br_if $b (i32.const 42) (local.get 0))
      (drop) (drop) (drop) (drop) (i32.const 7))
    (i32.add))
  (func (export "return_nested") (param i32) (result i32)
    (i32.const 5)
    (block (i32.const 6) (block (i32.const 8)
      (if (local.get 0) (then (return (i32.const 99))))
      (drop)) (drop))
    (i32.const 1) (i32.add))
  (func (export "switch") (param i32) (result i32)
    (block $d (block $c (block $b (block $a
      (br_table $a $b $c $b $a $d (local.get 0)))
      (return (i32.const 100)))
      (return (i32.const 101)))
      (return (i32.const 102)))
    (i32.const 103))
  (func (export "br_table_values") (param i32) (result i32)
    (i32.const 1000)
    (block $x (result i32)
      (i32.const 9) (i32.const 8)
      (block $y (result i32)
        (i32.const 7)
        (br_table $x $y $x (i32.const 55) (local.get 0)))
      (i32.add) (i32.add))
    (i32.add))
  (func (export "loop_sum") (param i32) (result i32) (local i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get 0)))
      (local.set 1 (i32.add (local.get 1) (local.get 0)))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br $next)))
    (local.get 1))
  (func (export "if_else") (param i32) (result i32)
    (if (result i32) (local.get 0) (then (i32.const 1)) (else (i32.const 2))))
  (func (export "select") (param i32 i32 i32) (result i32)
    (select (local.get 0) (local.get 1) (local.get 2)))
  (func (export "tee") (param i32) (result i32) (local i32)
    (i32.add (local.tee 1 (i32.const 3)) (local.get 1)))
  (func (export "multi") (param i32) (result i32)
    (local.get 0)
    (block (param i32) (result i32) (i32.const 2) (i32.sub))
    (loop (param i32) (result i32) (i32.const 1) (i32.add)))
  (func (export "unreachable") (param i32) (result i32)
    (if (local.get 0) (then (unreachable))) (i32.const 3)))"""


@pytest.mark.parametrize("name,args_list", [
    ("nested", [(0,), (1,)]),
    ("br_value_discards", [(0,), (1,)]),
    ("return_nested", [(0,), (1,)]),
    ("switch", [(i,) for i in range(-1, 8)] + [(0x7FFFFFFF,), (-0x80000000,)]),
    ("br_table_values", [(i,) for i in range(-1, 4)]),
    ("loop_sum", [(0,), (1,), (100,)]),
    ("if_else", [(0,), (5,), (-1,)]),
    ("select", [(1, 2, 0), (1, 2, 1), (1, 2, -5)]),
    ("tee", [(0,)]),
    ("multi", [(5,)]),
    ("unreachable", [(0,), (1,)]),
])
def test_control_flow(name, args_list):
    for args in args_list:
        assert_same(CONTROL, name, args)


CALLS = """(module
  (type $binary (func (param i32 i32) (result i32)))
  (type $unary (func (param i32) (result i32)))
  (table 5 funcref)
  (elem (i32.const 0) $add $sub $neg)
  (elem (i32.const 4) $add)
  (global $counter (mut i32) (i32.const 40))
  (global $base i32 (i32.const -3))
  (func $add (type $binary) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $binary) (i32.sub (local.get 0) (local.get 1)))
  (func $neg (type $unary) (i32.sub (i32.const 0) (local.get 0)))
  (func (export "indirect") (param i32 i32 i32) (result i32)
    (call_indirect (type $binary) (local.get 0) (local.get 1) (local.get 2)))
  (func (export "indirect_unary") (param i32 i32) (result i32)
    (call_indirect (type $unary) (local.get 0) (local.get 1)))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_s (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $swap (param i32 i32) (result i32 i32) (local.get 1) (local.get 0))
  (func (export "swap_sub") (param i32 i32) (result i32) (call $swap (local.get 0) (local.get 1)) (i32.sub))
  (func (export "pair") (param i32) (result i32 i32) (local.get 0) (i32.const 7))
  (func (export "globals") (result i32)
    (global.set $counter (i32.add (global.get $counter) (global.get $base)))
    (global.get $counter))
  (func $forever (export "forever") (param i32) (result i32) (call $forever (local.get 0))))"""


def test_call_indirect_dispatch():
    for index in range(-1, 7):
        assert_same(CALLS, "indirect", (10, 3, index))
        assert_same(CALLS, "indirect_unary", (10, index))


def test_recursion_multi_value_and_globals():
    for n in range(0, 12):
        assert_same(CALLS, "fib", (n,))
    assert_same(CALLS, "swap_sub", (10, 3))
    assert_same(CALLS, "pair", (-5,))
    assert_same(CALLS, "globals")


def test_call_stack_exhaustion():
    assert_same(CALLS, "forever", (1,))


IO = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (import "wasmformer" "getchar" (func $getchar (result i32)))
  (memory 1)
  (data (i32.const 32) "Hello\\00")
  (global $started (mut i32) (i32.const 0))
  (func $init (global.set $started (i32.const 1)))
  (start $init)
  (func (export "main") (local i32) (local $c i32)
    (if (i32.eqz (global.get $started)) (then (unreachable)))
    (block $end (loop $print
      (br_if $end (i32.eqz (local.tee 0 (i32.load8_u offset=32 (local.get 0)))))
      (call $putchar (i32.load8_u offset=32 (local.get 0)))
      (local.set 0 (i32.sub (local.get 0) (i32.const 0)))
      (local.set 0 (i32.add (i32.const 0) (i32.const 0)))
      (br $end)))
    ;; echo the input upside down in case (one byte at a time), until -1
    (block $done (loop $echo
      (br_if $done (i32.lt_s (local.tee $c (call $getchar)) (i32.const 0)))
      (call $putchar (i32.xor (local.get $c) (i32.const 32)))
      (br $echo)))
    (call $putchar (i32.const 0x10a))))"""


def test_io_start_and_data():
    assert_same(IO, input_bytes=b"abcXYZ")
    assert_same(IO, input_bytes=b"")
    assert_same(IO, input_bytes=bytes(range(256)))
