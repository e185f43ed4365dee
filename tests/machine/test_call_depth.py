"""Deep recursion through the universal model: 10,000 frames, and the limit where the stack runs out.

The machine keys locals by call depth x frame size below 2^14 (docs/machine.md),
so a program whose frames hold one word recurses 15,058 deep; a deeper call
traps call_stack_exhausted at the same step as the reference VM and the trace
oracle. Both runs are compared with the oracle token for token.
"""

from __future__ import annotations

import pytest

from wasmformer.frontend import load_program
from wasmformer.machine import tokens as T
from wasmformer.machine.execute import run_program, trace_tokens, trap_reason
from wasmformer.machine.trace import expected_trace
from wasmformer.vm.program import TrapReason

pytest.importorskip("wasmtime")

RECURSION = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (func $depth (param $n i32) (result i32)
    (if (result i32) (local.get $n)
      (then (i32.add (i32.const 1) (call $depth (i32.sub (local.get $n) (i32.const 1)))))
      (else (i32.const 0))))
  (func (export "main")
    (local $d i32)
    (local.set $d (call $depth (i32.const DEPTH)))
    (call $putchar (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $d) (i32.const 1000)) (i32.const 10))))
    (call $putchar (i32.const 10))))
"""


def deep(depth: int):
    return load_program(RECURSION.replace("DEPTH", str(depth)), kind="wat")


def test_the_limit_for_one_word_frames():
    assert T.call_depth_limit(1) == T.MAX_CALL_DEPTH == 15_058


@pytest.mark.parametrize("depth,trap", [(10_000, None), (T.MAX_CALL_DEPTH + 5, TrapReason.CALL_STACK_EXHAUSTED)])
def test_deep_recursion_on_the_model(universal, depth, trap):
    program = deep(depth)
    expected = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(expected.tokens) + 16)
    assert trace_tokens(universal, run) == expected.tokens
    assert trap_reason(run) == trap == expected.trap
    if trap is None:
        assert run.output == f"{depth // 1000 % 10}\n".encode()
