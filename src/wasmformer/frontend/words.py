"""Values as 32-bit words: how i64, f32 and f64 live on the machine's i32 stack.

The machine's stack, locals, globals and memory hold 32-bit words. An i32 or
f32 is one word; an i64 or f64 is two, the low word deeper on the stack (and
in the lower-numbered local or global). Floats are moved as raw bits: their
consts, loads, stores, locals, globals, params, results and reinterpretations
are word moves; their arithmetic is not executed (a reached instruction stops
the run with TRAP UNSUPPORTED, naming it: lower_function).

This module holds the facts: words per type, and the wasm instructions that
are pure word moves (loads and stores by width, conversions between i32 and
i64). lower_function emits them; i64.extend_i32_s is an op of its own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wasmformer.vm.ops import WORD_BITS
from wasmformer.vm.program import Op

WORDS = {"i32": 1, "f32": 1, "i64": 2, "f64": 2}  # words per value type the machine moves
WORD_BYTES = WORD_BITS // 8


def words_of(kind: str) -> int | None:
    """Words per value of this type, or None for a type the machine has no words for (v128, references)."""
    return WORDS.get(kind)


def const_words(kind: str, immediate) -> list[int]:
    """The words of a const instruction's immediate, low first (floats: their raw bits)."""
    if kind == "f32":
        return [struct.unpack("<I", immediate)[0]]
    if kind == "f64":
        bits = struct.unpack("<Q", immediate)[0]
        return [bits & 0xFFFFFFFF, bits >> WORD_BITS]
    if kind == "i64":
        bits = immediate % (1 << 64)
        return [bits & 0xFFFFFFFF, bits >> WORD_BITS]
    return [immediate % (1 << WORD_BITS)]


@dataclass(frozen=True)
class WideMemoryOp:
    """A load or store of a non-i32 type, as i32 memory ops on words.

    ``op``: the i32 op that reads or writes the bytes; ``words``: the value's
    words; ``extend``: how a narrow load fills the high word ("zero", "sign");
    a full 8-byte access uses two i32 ops, the high word first for stores so
    that an out-of-bounds store traps before writing anything.
    """
    op: Op
    words: int
    extend: str | None = None


WIDE_LOADS = {
    "f32.load": WideMemoryOp(Op.LOAD, 1),
    "i64.load": WideMemoryOp(Op.LOAD, 2), "f64.load": WideMemoryOp(Op.LOAD, 2),
    "i64.load8_s": WideMemoryOp(Op.LOAD8_S, 2, "sign"), "i64.load8_u": WideMemoryOp(Op.LOAD8_U, 2, "zero"),
    "i64.load16_s": WideMemoryOp(Op.LOAD16_S, 2, "sign"), "i64.load16_u": WideMemoryOp(Op.LOAD16_U, 2, "zero"),
    "i64.load32_s": WideMemoryOp(Op.LOAD, 2, "sign"), "i64.load32_u": WideMemoryOp(Op.LOAD, 2, "zero"),
}
WIDE_STORES = {
    "f32.store": WideMemoryOp(Op.STORE, 1),
    "i64.store": WideMemoryOp(Op.STORE, 2), "f64.store": WideMemoryOp(Op.STORE, 2),
    "i64.store8": WideMemoryOp(Op.STORE8, 2), "i64.store16": WideMemoryOp(Op.STORE16, 2),
    "i64.store32": WideMemoryOp(Op.STORE, 2),
}

# Conversions that only change how words are read: (operand words, result words).
REINTERPRETATIONS = {"i32.reinterpret_f32": 1, "f32.reinterpret_i32": 1,
                     "i64.reinterpret_f64": 2, "f64.reinterpret_i64": 2}
# i64.extendN_s: the i32 op that sign-extends the low word first (None: the low word as it is).
I64_SIGN_EXTENSIONS = {"i64.extend8_s": Op.EXTEND8_S, "i64.extend16_s": Op.EXTEND16_S, "i64.extend32_s": None}

FLOAT_TYPES = ("f32", "f64")


def is_float_arithmetic(name: str) -> bool:
    """A float instruction that computes (not a move): arithmetic, comparison or numeric conversion."""
    if name in REINTERPRETATIONS or name in WIDE_LOADS or name in WIDE_STORES or name.endswith(".const"):
        return False
    return name.startswith(FLOAT_TYPES) or "_f32" in name or "_f64" in name
