"""The reference VM's limits and the public API around it."""

import pytest

from wasmformer.frontend import (DEFAULT_MEMORY_LIMIT, FrontendError, Instr, Op, TrapReason, VMProgram,
                                 format_invoke_result, load_program)
from wasmformer.frontend.binary import Reader
from wasmformer.oracles import refvm
from wasmformer.vm.errors import ProgramError

pytest.importorskip("wasmtime")

LOOP_FOREVER = '(module (func (export "main") (loop (br 0))))'
WINDOW = """(module (memory 1)
  (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "far") (result i32) (i32.load offset=70000 (i32.const 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"""


def program(instrs, **fields) -> VMProgram:
    return VMProgram(instrs=[Instr(*i) for i in instrs], entry=0, entry_locals=0, globals=[], memory=b"",
                     memory_limit=16, **fields)


def test_max_steps_stops_without_halting():
    result = refvm.run(load_program(LOOP_FOREVER, kind="wat"), max_steps=1000)
    assert not result.halted and result.steps == 1000 and result.trap is None


def test_memory_window_traps_at_the_limit():
    wat_program = load_program(WINDOW, kind="wat", invoke="peek", args=(DEFAULT_MEMORY_LIMIT - 1,))
    assert refvm.run(wat_program).trap is None
    result = refvm.run(load_program(WINDOW, kind="wat", invoke="peek", args=(DEFAULT_MEMORY_LIMIT,)))
    assert result.trap == TrapReason.OUT_OF_BOUNDS_MEMORY and result.trap_address == DEFAULT_MEMORY_LIMIT


def test_static_offset_beyond_window_always_traps():
    result = refvm.run(load_program(WINDOW, kind="wat", invoke="far", memory_limit=65536))
    assert result.trap == TrapReason.OUT_OF_BOUNDS_MEMORY


def test_memory_grow_fails_except_by_zero():
    assert refvm.run(load_program(WINDOW, kind="wat", invoke="grow", args=(0,))).output == (1).to_bytes(4, "little")
    result = refvm.run(load_program(WINDOW, kind="wat", invoke="grow", args=(1,)))
    assert result.output == b"\xff\xff\xff\xff" and result.failed_grows == 1


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
    assert result.trap == TrapReason.CALL_STACK_EXHAUSTED and result.steps == refvm.MAX_CALL_DEPTH + 1  # a frame of few locals: the depth limit is the reference VM's own


def test_input_limit():
    with pytest.raises(ProgramError, match="at most"):
        refvm.run(program([(Op.HALT,)]), bytes(1 << 17))


def test_entry_stub_layout_and_stats():
    vm = load_program('(module (func (export "main") (result i32) (i32.const 3)))', kind="wat")
    assert [str(i) for i in vm.instrs[:3]] == ["call 3", "drop", "halt"]
    assert vm.instrs[3] == Instr(Op.CONST, 3) and vm.instrs[-1] == Instr(Op.RETURN)
    assert vm.stats["helper_instructions"] == 0 and vm.origins[3] == ("main", 0)


def test_prologue_pops_params_in_reverse():
    vm = load_program('(module (func (export "f") (param i32 i32) (result i32) (i32.sub (local.get 0) (local.get 1))))',
                      kind="wat", invoke="f", args=(10, 3))
    call = next(i for i in vm.instrs if i.op == Op.CALL)
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
