"""Deep recursion through the universal model: 10,000 frames, and the limits where the frames run out.

A frame reserves the local words of its class (docs/machine.md, "Frames"), so a
small recursive function nests MAX_CALL_DEPTH deep beside a function with a
large frame; an 8-word one runs out of local words first. A call past either
limit traps call_stack_exhausted at the same step as the reference VM and the
trace oracle. Every run is compared with the oracle token for token.
"""

from __future__ import annotations

import pytest

from wasmformer.frontend import load_program
from wasmformer.machine import tokens as T
from wasmformer.machine.execute import run_program, trace_tokens, trap_reason
from wasmformer.machine.trace import expected_trace
from wasmformer.machine.prompt import FrameSpace
from wasmformer.oracles import refvm
from wasmformer.vm.ops import is_call
from wasmformer.vm.program import Op, TrapReason

pytest.importorskip("wasmtime")

RECURSION = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (func $depth (param $n i32) (result i32)
    (if (result i32) (local.get $n)
      (then (i32.add (i32.const 1) (call $depth (i32.sub (local.get $n) (i32.const 1)))))
      (else (i32.const 0))))
  (func $wide (result i32)
    (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
           i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (local.set 39 (i32.const 7))
    (local.get 39))
  (func $eight (param $n i32) (result i32)
    (local i32 i32 i32 i32 i32 i32 i32)
    (local.set 7 (local.get $n))
    (if (result i32) (local.get $n)
      (then (i32.add (local.get 7) (call $eight (i32.sub (local.get $n) (i32.const 1)))))
      (else (i32.const 0))))
  (func (export "main")
    (local $d i32)
    (local.set $d (call $depth (i32.const DEPTH)))
    (drop (call $wide))
    (call $putchar (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $d) (i32.const 1000)) (i32.const 10))))
    (call $putchar (i32.const 10))))
"""


def deep(depth: int, eight: int = 0):
    source = RECURSION.replace("DEPTH", str(depth))
    if eight:  # also recurse through the 8-word function
        source = source.replace("(drop (call $wide))", f"(drop (call $wide)) (drop (call $eight (i32.const {eight})))")
    return load_program(source, kind="wat")


def test_each_function_is_called_with_its_frame_class():
    program = deep(3, eight=3)
    calls = {instr.op for instr in program.instrs if is_call(instr.op)}
    assert {Op.CALL1, Op.CALL8} <= calls  # $depth (one word) and $eight (eight)
    assert Op.CALL in calls  # $wide: 40 words, the program's stride
    assert T.MAX_CALL_DEPTH == 16_382 and T.LOCAL_WORDS == 64_216


def test_eight_word_frames_run_out_of_local_words_first():
    program = deep(3, eight=T.LOCAL_WORDS // 8)
    assert refvm.run(program).trap == TrapReason.CALL_STACK_EXHAUSTED
    # live at the trap: the entry frame (the stride: $wide's 40 words), main (one word) and the $eight frames,
    # far fewer than MAX_CALL_DEPTH
    assert FrameSpace(program).stride == 40
    trace = expected_trace(program)
    assert trace.trap == TrapReason.CALL_STACK_EXHAUSTED
    assert trace.tokens.count("c.call8") == (T.LOCAL_WORDS - 40 - 1) // 8 < T.MAX_CALL_DEPTH


@pytest.mark.parametrize("depth,eight,trap", [(10_000, 0, None), (T.MAX_CALL_DEPTH + 5, 0, TrapReason.CALL_STACK_EXHAUSTED),
                                              (3, T.LOCAL_WORDS // 8, TrapReason.CALL_STACK_EXHAUSTED)])
def test_deep_recursion_on_the_model(universal, depth, eight, trap):
    program = deep(depth, eight)
    expected = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(expected.tokens) + 16)
    assert trace_tokens(universal, run) == expected.tokens
    assert trap_reason(run) == trap == expected.trap
    if trap is None:
        assert run.output == f"{depth // 1000 % 10}\n".encode()
