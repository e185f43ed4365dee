"""The reference VM's limits and the public API around it."""

import pytest

from wasmformer.frontend import (DEFAULT_MEMORY_LIMIT, FrontendError, Instr, Op, TrapReason, VMProgram,
                                 format_invoke_result, load_program)
from tests.frontend.frontend_oracle import lowered
from wasmformer.frontend import Call
from wasmformer.frontend.binary import Reader
from wasmformer.oracles import refvm
from wasmformer.machine import tokens as T
from wasmformer.vm.errors import ProgramError
from wasmformer.vm.ops import is_call

pytest.importorskip("wasmtime")

LOOP_FOREVER = '(module (func (export "main") (loop (br 0))))'
PAGE = 65536
MEMORY = """(module (memory 1 3)
  (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "far") (result i32) (i32.load offset=70000 (i32.const 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"""


def program(instrs, **fields) -> VMProgram:
    return VMProgram(instrs=[Instr(*i) for i in instrs], entry=0, entry_locals=0, globals=[], memory=b"",
                     memory_limit=16, **fields)


def test_max_steps_stops_without_halting():
    result = refvm.run(load_program(LOOP_FOREVER, kind="wat"), max_steps=1000)
    assert not result.halted and result.steps == 1000 and result.trap is None


def test_memory_traps_at_its_end():
    assert refvm.run(load_program(MEMORY, kind="wat", invoke="peek", args=(PAGE - 1,))).trap is None
    result = refvm.run(load_program(MEMORY, kind="wat", invoke="peek", args=(PAGE,)))
    assert result.trap == TrapReason.OUT_OF_BOUNDS_MEMORY and result.trap_address == PAGE


def test_static_offset_beyond_the_largest_memory_always_traps():
    program = load_program(MEMORY, kind="wat", invoke="far", memory_limit=PAGE)  # the memory can never grow
    assert program.growable_pages == 0
    assert any(instr.op is Op.TRAP for instr in program.instrs)
    assert refvm.run(program).trap == TrapReason.OUT_OF_BOUNDS_MEMORY


def test_memory_grow_to_the_declared_maximum_then_fails():
    def grow(*deltas):
        return refvm.run(lowered(MEMORY, calls=[Call("grow", (delta,)) for delta in deltas]))
    sizes = grow(0, 1, 0, 1, 1, 0)  # the declared maximum is 3 pages
    assert [int.from_bytes(sizes.output[i:i + 4], "little", signed=True) for i in range(0, 24, 4)] == [
        1, 1, 2, 2, -1, 3]
    assert sizes.failed_grows == 1
    past_machine = load_program('(module (memory 1) (func (export "main")))', kind="wat")
    assert past_machine.growable_pages == DEFAULT_MEMORY_LIMIT // PAGE - 1
    assert past_machine.stats["grow_limited_by_machine"]



def test_fresh_frames_read_zero_and_getchar_eof():
    vm = program([(Op.LOCAL_GET, 3), (Op.PUTCHAR,), (Op.GETCHAR,), (Op.PUTCHAR,), (Op.GETCHAR,), (Op.HALT,)])
    result = refvm.run(vm, b"A")
    assert result.output == b"\x00A" and result.stack == [-1] and result.halted


def test_traps_are_results_not_exceptions():
    vm = program([(Op.CONST, 1), (Op.CONST, 0), (Op.DIV_U,), (Op.HALT,)])
    result = refvm.run(vm)
    assert result.trap == TrapReason.DIVIDE_BY_ZERO and result.trap_pc == 2 and result.halted


def test_call_depth_limit():
    vm = program([(Op.CALL, 0)])
    result = refvm.run(vm)
    # a frame of one word: the depth limit, not the local words, stops it (the machine's limits: tokens.py)
    assert result.trap == TrapReason.CALL_STACK_EXHAUSTED and result.steps == T.MAX_CALL_DEPTH + 1


def test_input_limit():
    with pytest.raises(ProgramError, match="at most"):
        refvm.run(program([(Op.HALT,)]), bytes(1 << 17))


def test_entry_stub_layout_and_stats():
    vm = load_program('(module (func (export "main") (result i32) (i32.const 3)))', kind="wat")
    # main's value is the exit status; main uses no locals: it is called and returns as a frame of the smallest class
    assert [str(i) for i in vm.instrs[:3]] == ["call1 3", "exit", "halt"]
    assert vm.instrs[3] == Instr(Op.CONST, 3) and vm.instrs[-1] == Instr(Op.RETURN1)
    assert vm.stats["helper_instructions"] == 0 and vm.origins[3] == ("main", 0)


def test_prologue_pops_params_in_reverse():
    vm = load_program('(module (func (export "f") (param i32 i32) (result i32) (i32.sub (local.get 0) (local.get 1))))',
                      kind="wat", invoke="f", args=(10, 3))
    call = next(i for i in vm.instrs if is_call(i.op))
    assert vm.instrs[call.arg:call.arg + 2] == [Instr(Op.LOCAL_SET, 1), Instr(Op.LOCAL_SET, 0)]
    assert format_invoke_result(refvm.run(vm).output, ["i32"]) == "7\n"


def test_invoke_without_memory_outputs_results_too():
    vm = load_program('(module (func (export "f") (result i32 i32) (i32.const -2) (i32.const 300)))',
                      kind="wat", invoke="f")
    assert format_invoke_result(refvm.run(vm).output, ["i32", "i32"]) == "-2\n300\n"


def test_format_invoke_result():
    assert format_invoke_result(b"\xff\xff\xff\xff\x01\x00\x00\x00", ["i32", "i32"]) == "-1\n1\n"
    assert format_invoke_result(b"", []) == ""
    with pytest.raises(FrontendError):
        format_invoke_result(b"\x01", ["i32"])


def test_sources_by_path_and_bytes(tmp_path):
    wat = '(module (import "wasmformer" "putchar" (func $p (param i32))) (func (export "main") (call $p (i32.const 33))))'
    (tmp_path / "bang.wat").write_text(wat)
    from wasmformer.frontend import module_bytes

    (tmp_path / "bang.wasm").write_bytes(module_bytes(wat, kind="wat"))
    for source in (tmp_path / "bang.wat", str(tmp_path / "bang.wasm"), (tmp_path / "bang.wasm").read_bytes(), wat):
        assert refvm.run(load_program(source)).output == b"!"


def test_leb128():
    assert Reader(bytes([0xE5, 0x8E, 0x26])).u32() == 624485
    assert Reader(bytes([0xC0, 0xBB, 0x78])).s32() == -123456
    assert Reader(bytes([0x7F])).s32() == -1
    with pytest.raises(FrontendError):
        Reader(bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x00])).u32()
