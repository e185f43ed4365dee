"""What the front end refuses, and how it says so."""

import pytest

from wasmformer.frontend import FrontendError, Instr, Op, TrapReason, load_program

pytest.importorskip("wasmtime")


def refused(wat: str, **options) -> str:
    with pytest.raises(FrontendError) as caught:
        load_program(wat, kind="wat", **options)
    return str(caught.value)


def test_unsupported_instruction_names_function_and_position():
    message = refused("""(module
      (func $helper (param i64) (result i64) (local.get 0))
      (func $foo (export "main") (drop (call $helper (i64.const 2))) (drop (v128.const i32x4 1 2 3 4))))""")
    assert "function 'foo' (index 1), instruction 3: SIMD instructions (prefix 0xfd) are not supported" in message


def test_i64_and_float_bits_are_accepted():
    program = load_program("""(module (global $g (mut f64) (f64.const 1.5))
      (func $bar (param f32) (result i64) (i64.reinterpret_f64 (global.get $g)))
      (func (export "main") (drop (i32.wrap_i64 (i64.mul (call $bar (f32.const 1)) (i64.const 3))))))""",
                           kind="wat")
    assert program.globals == [0, 0x3FF80000]  # 1.5 as f64 bits, low word first
    assert program.stats["unsupported"] == {}


def test_float_arithmetic_becomes_a_call_of_its_helper():
    program = load_program("""(module (func $f (export "main") (param) (result)
      (drop (f64.add (f64.const 1) (f64.const 2)))))""", kind="wat")
    assert program.stats["helper_calls"] == {"f64.add": 1} and program.stats["unsupported"] == {}
    assert Instr(Op.TRAP, TrapReason.UNSUPPORTED) not in program.instrs
    assert "compiler_rt.addf3.add_f64" in program.stats["helpers"]  # zig's soft float, linked in


def test_unreachable_unsupported_function_is_fine():
    program = load_program("""(module
      (func $unused (param f64) (result f64) (f64.add (local.get 0) (local.get 0)))
      (func (export "main")))""", kind="wat")
    assert program.stats["functions"] == 1


def test_simd_refused():
    message = refused("""(module (func $vec (export "main") (drop (v128.const i32x4 1 2 3 4))))""")
    assert "function 'vec' (index 0)" in message and "SIMD" in message


def test_other_imports_refused():
    message = refused('(module (import "env" "puts" (func (param i32))) (func (export "main")))')
    assert "import env.puts (func) is not supported" in message and "putchar" in message


def test_wrongly_typed_io_import_refused():
    message = refused('(module (import "wasmformer" "putchar" (func (param i32) (result i32))) (func (export "main")))')
    assert "must have type" in message


def test_memory_larger_than_the_machine_is_refused_with_the_figures():
    message = refused('(module (memory 19) (func (export "main")))')
    assert "the module's memory starts at 19 pages (1,245,184 bytes), more memory than the machine has: " \
           "18 pages (1,179,648 bytes)" in message
    load_program('(module (memory 18) (data (i32.const 1179647) "x") (func (export "main")))', kind="wat")


def test_data_outside_the_declared_memory():
    message = refused('(module (memory 1) (data (i32.const 65536) "x") (func (export "main")))')
    assert "data segment 0 (65536..65537) lies outside the module's memory of 1 pages" in message


def test_no_entry_and_bad_entry():
    assert "exports no entry function" in refused('(module (func (export "f")))')
    assert "expected () -> () or () -> (i32)" in refused('(module (func (export "main") (param i32)))')


def test_invoke_errors():
    wat = '(module (func (export "f") (param i32) (result i32) (local.get 0)))'
    assert "'f' takes 1 arguments, 0 given" in refused(wat, invoke="f")
    assert "no function named 'g'" in refused(wat, invoke="g", args=(1,))
    assert "does not fit in 32 bits" in refused(wat, invoke="f", args=(2**32,))


def test_invalid_module_and_bad_wat():
    assert "invalid wasm module" in str(pytest.raises(FrontendError, load_program, b"\0asm\1\0\0\0\x05", kind="wasm").value)
    assert "invalid WAT" in refused("(module (func (export \"main\") (i32.bogus)))")
    assert "invalid wasm module: type mismatch" in refused("(module (func (export \"main\") (i32.add)))")


def test_multiple_memories_refused():
    assert "memories" in refused('(module (memory 1) (memory 1) (func (export "main")))')


def test_too_many_instructions():
    body = "(drop (i32.const 1))" * 40000
    assert "at most 65536 are supported" in refused(f'(module (func (export "main") {body}))')


def test_unknown_file_type(tmp_path):
    path = tmp_path / "program.txt"
    path.write_text("x")
    with pytest.raises(FrontendError, match="unknown file type"):
        load_program(path)

