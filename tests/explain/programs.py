"""Small programs the explain tests run: quick to trace on any engine, and touching every kind of effect."""

from __future__ import annotations

# locals, a call with a parameter, a store and a load, a global read and written, both sides of a branch
# decided by a comparison, a division's scratch bytes, and two output bytes ("Y4").
TINY_WAT = """
(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (memory 1)
  (global $count (mut i32) (i32.const 5))
  (func $square (param $x i32) (result i32)
    (i32.mul (local.get $x) (local.get $x)))
  (func (export "main")
    (local $i i32)
    (local.set $i (i32.const 3))
    (i32.store (i32.const 16) (call $square (local.get $i)))
    (global.set $count (i32.add (global.get $count) (i32.load (i32.const 16))))
    (if (i32.gt_s (global.get $count) (i32.const 10))
      (then (call $putchar (i32.const 89)))
      (else (call $putchar (i32.const 78))))
    (call $putchar (i32.add (i32.const 48) (i32.rem_u (global.get $count) (i32.const 10))))))
"""
TINY_OUTPUT = b"Y4"

# i64 arithmetic, an i64 store and load (written high word first), a byte store, a loop, and a trap at the end
WIDE_WAT = """
(module
  (memory 1)
  (func (export "main")
    (local $n i32) (local $acc i64)
    (local.set $acc (i64.const 0x100000001))
    (loop $again
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (local.get $n))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $again (i32.lt_s (local.get $n) (i32.const 3))))
    (i64.store (i32.const 8) (local.get $acc))
    (i32.store8 (i32.const 3) (i32.const 0x1ff))
    (drop (i64.load (i32.const 8)))
    (drop (i32.div_u (i32.const 1) (i32.sub (local.get $n) (i32.const 3))))))
"""
