"""memory.fill and memory.copy (bulk memory) on the reference VM against wasmtime, and data.drop.

Each export runs the bulk instruction and returns a digest of the bytes in
[lo, hi), so a wrong byte anywhere in the range shows. The bounds checks must
agree with wasmtime's exactly, also after memory.grow has added a page
(``BULK_GROWN``: the range is checked against the memory's current size).
"""

import importlib.util
from pathlib import Path

import pytest

from tests.frontend.frontend_oracle import assert_same, lowered, run_reference, run_wasmtime, _wat_binary
from wasmformer.frontend import Call, TrapReason
from wasmformer.oracles import refvm
from wasmformer.vm.program import Op

pytestmark = pytest.mark.oracle

PAGE = 65536
C_PROGRAM = Path(__file__).with_name("bulk_memory.c")
C_INPUT = b"5"
CLANG_DEFAULT_CPU = "-mcpu=generic"  # clang's default wasm CPU: bulk memory, sign extension, ...


def compile_for_clangs_default_cpu(source: Path) -> bytes:
    """The toolchain's flags with clang's default CPU instead of the MVP one (a later -mcpu wins)."""
    from wasmformer.frontend.toolchain import compile_c

    return compile_c(source, extra_flags=[CLANG_DEFAULT_CPU])
PATTERN = "".join(f"\\{byte:02x}" for byte in range(1, 33))  # 32 distinct nonzero bytes


def bulk_module(pattern_ends: tuple[int, ...], grow_first: bool = False) -> str:
    """The test module, with the pattern at 0 and ending at each of ``pattern_ends``; with ``grow_first``
    fill and copy first grow the memory by a page (to its maximum: two pages)."""
    data = " ".join(f'(data (i32.const {end - 32}) "{PATTERN}")' for end in pattern_ends)
    grow = "(drop (memory.grow (i32.const 1)))" if grow_first else ""
    return BULK_TEMPLATE.replace("DATA", f'(data (i32.const 0) "{PATTERN}") {data}').replace("GROW", grow)


BULK_TEMPLATE = """(module (memory 1 2)
  DATA
  (func $digest (param $lo i32) (param $hi i32) (result i32)
    (local $h i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $lo) (local.get $hi)))
        (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 33)) (i32.load8_u (local.get $lo))))
        (local.set $lo (i32.add (local.get $lo) (i32.const 1)))
        (br $next)))
    (local.get $h))
  (func (export "fill") (param $d i32) (param $v i32) (param $n i32) (param $lo i32) (param $hi i32) (result i32)
    GROW
    (memory.fill (local.get $d) (local.get $v) (local.get $n))
    (call $digest (local.get $lo) (local.get $hi)))
  (func (export "copy") (param $d i32) (param $s i32) (param $n i32) (param $lo i32) (param $hi i32) (result i32)
    GROW
    (memory.copy (local.get $d) (local.get $s) (local.get $n))
    (call $digest (local.get $lo) (local.get $hi)))
  (func (export "dropped") (result i32)
    (data.drop 0)
    (call $digest (i32.const 0) (i32.const 32))))"""
QUARTER = PAGE // 4
BULK = bulk_module((PAGE, QUARTER))
BULK_GROWN = bulk_module((QUARTER, PAGE), grow_first=True)  # two pages when fill or copy runs

END = PAGE - 32  # the pattern at the end of the page
FILL_CASES = [  # (d, value, n, lo, hi)
    (0, 0x1AB, 0, 0, 40), (0, 0x1AB, 1, 0, 40), (3, -1, 17, 0, 40), (3, 0x100, 5, 0, 40), (5, 0x7F, 4, 0, 40),
    (2, 0x55, 21, 0, 40), (1, 0x80, 33, 0, 40), (100, 0xC3, 1000, 96, 1110),
    (PAGE - 1, 7, 1, END, PAGE), (PAGE, 7, 0, END, PAGE), (PAGE - 5, 9, 5, END, PAGE),
    (PAGE - 1, 7, 2, END, PAGE), (PAGE + 1, 7, 0, END, PAGE), (PAGE - 3, 7, 4, END, PAGE),
    (-1, 0, 1, 0, 4), (1, 0, -1, 0, 4), (0, 0, -1, 0, 4), (0, 0xEE, PAGE, END, PAGE),
]
COPY_CASES = [  # (d, s, n, lo, hi)
    (40, 0, 0, 0, 80), (40, 0, 1, 0, 80), (40, 0, 32, 0, 80), (0, 0, 32, 0, 40),
    (5, 0, 27, 0, 40), (1, 0, 31, 0, 40), (4, 0, 20, 0, 40), (17, 3, 19, 0, 40),  # overlapping, d > s: backwards
    (0, 5, 27, 0, 40), (0, 1, 31, 0, 40), (0, 4, 20, 0, 40), (3, 17, 15, 0, 40),  # overlapping, d < s: forwards
    (END - 3, END, 32, END - 8, PAGE), (PAGE - 32, 0, 32, END, PAGE), (0, PAGE - 32, 32, 0, 40),
    (PAGE, 0, 0, 0, 40), (0, PAGE, 0, 0, 40), (PAGE - 31, 0, 32, END, PAGE), (0, PAGE - 31, 32, 0, 40),
    (PAGE + 1, 0, 0, 0, 40), (0, PAGE + 1, 0, 0, 40), (-1, 0, 1, 0, 4), (0, 1, -1, 0, 4),
    (1, 0, PAGE - 1, END, PAGE), (0, 1, PAGE - 1, 0, 40),
]


@pytest.mark.parametrize("args", FILL_CASES, ids=str)
def test_memory_fill_agrees_with_wasmtime(args):
    assert_same(BULK, "fill", args)


@pytest.mark.parametrize("args", COPY_CASES, ids=str)
def test_memory_copy_agrees_with_wasmtime(args):
    assert_same(BULK, "copy", args)


def test_the_cases_cover_traps_and_writes():
    """The cases above must include traps and real changes (a digest that did not move proves nothing)."""
    outcomes = [run_wasmtime(_wat_binary(BULK), name, args) for name, cases in (("fill", FILL_CASES),
                                                                               ("copy", COPY_CASES)) for args in cases]
    assert sum(outcome.trap is not None for outcome in outcomes) >= 10
    assert len({outcome.output for outcome in outcomes if outcome.trap is None}) >= 25


GROWN_CASES = [  # across the first page's end, to the grown memory's end, one past it
    ("fill", (PAGE - 4, 9, 8, PAGE - 8, PAGE + 8)), ("fill", (2 * PAGE - 4, 9, 4, 2 * PAGE - 8, 2 * PAGE)),
    ("fill", (2 * PAGE - 3, 9, 4, 0, 4)), ("fill", (2 * PAGE + 1, 9, 0, 0, 4)),
    ("copy", (PAGE + 5, PAGE - 32, 32, PAGE, PAGE + 40)), ("copy", (0, 2 * PAGE - 32, 32, 0, 32)),
    ("copy", (0, 2 * PAGE - 31, 32, 0, 4)), ("copy", (2 * PAGE - 31, 0, 32, 0, 4)),
]


@pytest.mark.parametrize("name,args", GROWN_CASES, ids=str)
def test_bulk_memory_bounds_follow_memory_grow(name, args):
    assert_same(BULK_GROWN, name, args)


@pytest.mark.parametrize("name,args", [("fill", (PAGE - 3, 9, 4, 0, 4)), ("copy", (PAGE - 3, 0, 4, 0, 4)),
                                       ("copy", (0, PAGE - 3, 4, 0, 4))])
def test_an_out_of_bounds_range_traps_before_any_byte_is_written(name, args):
    """The trap comes from the range check (a TRAP op), not from a store that ran off the end."""
    program = lowered(BULK, calls=[Call(name, args)])
    result = refvm.run(program)
    assert result.trap == TrapReason.OUT_OF_BOUNDS_MEMORY
    assert program.instrs[result.trap_pc].op is Op.TRAP
    assert program.stats["helper_pcs"][0] <= result.trap_pc < program.stats["helper_pcs"][1]


def test_data_drop_is_accepted_and_changes_nothing():
    assert_same(BULK, "dropped")


def test_bulk_memory_calls_the_helpers_and_reports_them():
    program = lowered(BULK, calls=[Call("fill", (0, 1, 2, 0, 4)), Call("copy", (0, 1, 2, 0, 4))])
    assert program.stats["helper_calls"] == {"memory_copy": 1, "memory_fill": 1}
    assert {"memory_fill", "memory_copy", "check_range"} <= set(program.stats["helpers"])
    assert program.stats["rewritten_ops"] == {}


SEGMENTS = """(module (memory 1)
  (data $passive "hello, passive world")
  (data (i32.const 100) "active")
  (func (export "init") (param $d i32) (param $s i32) (param $n i32) (result i32)
    (memory.init $passive (local.get $d) (local.get $s) (local.get $n))
    (i32.load8_u (i32.and (local.get $d) (i32.const 0x3fff))))
  (func (export "drop_then_init") (param $n i32) (result i32)
    (data.drop $passive)
    (memory.init $passive (i32.const 0) (i32.const 0) (local.get $n))
    (i32.const 7))
  (func (export "active") (param $n i32) (result i32)
    (memory.init 1 (i32.const 0) (i32.const 0) (local.get $n))
    (i32.load8_u (i32.const 100))))
"""
INIT_CASES = [(0, 0, 5), (10, 7, 13), (0, 19, 1), (0, 20, 0), (0, 21, 0), (0, 15, 6), (PAGE - 6, 0, 6),
              (PAGE - 5, 0, 6), (PAGE, 0, 0), (PAGE + 1, 0, 0), (-1, 0, 1), (0, -1, 1)]


@pytest.mark.parametrize("args", INIT_CASES)
def test_memory_init_agrees_with_wasmtime(args):
    assert_same(SEGMENTS, "init", args)


@pytest.mark.parametrize("n", [0, 1])
def test_a_dropped_or_active_segment_has_no_bytes_left(n):
    assert_same(SEGMENTS, "drop_then_init", (n,))
    assert_same(SEGMENTS, "active", (n,))


def test_only_segments_that_are_used_get_a_length_global():
    assert len(lowered(SEGMENTS, calls=[Call("active", (0,))]).globals) == 1
    assert len(lowered(SEGMENTS, calls=[Call("init", (0, 0, 1))]).globals) == 1


@pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="needs the ziglang package")
def test_a_c_program_for_clangs_default_cpu_runs_unchanged():
    """memset/memcpy/memmove on arrays and structs; struct copies compile to memory.copy."""
    from wasmformer.frontend import load_program
    from wasmformer.frontend.decode import decode_body, decode_module

    wasm = compile_for_clangs_default_cpu(C_PROGRAM)
    module = decode_module(wasm)
    names = {instruction.name for function in module.functions
             for instruction in decode_body(module, module.defined_function(function.index))}
    assert "memory.copy" in names
    program = load_program(wasm, kind="wasm")
    assert program.stats["helper_calls"].get("memory_copy", 0) >= 1
    result = refvm.run(program, C_INPUT)
    expected = run_wasmtime(wasm, input_bytes=C_INPUT)
    assert (result.output, result.trap) == (expected.output, expected.trap)
    assert expected.output.endswith(b"memory.copy.\n")
