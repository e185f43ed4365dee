"""Values as 32-bit words: how i64, f32 and f64 live on the machine's i32 stack.

The machine's stack, locals, globals and memory hold 32-bit words. An i32 or
f32 is one word; an i64 or f64 is two, the low word deeper on the stack (and
in the lower-numbered local or global). Floats are moved as raw bits: their
consts, loads, stores, locals, globals, params, results and reinterpretations
are word moves; their arithmetic (and comparisons and numeric conversions) is
a call of the helper exported under the instruction's name (the float library,
frontend/softfloat.c, and the sign operations of helpers.wat), whose type
``float_instruction_type`` gives.

This module holds the facts: words per type, and the wasm instructions that
are pure word moves (float loads and stores as integer ones, narrow i64
stores, conversions between i32 and i64). lower_function emits them.
"""

from __future__ import annotations

import struct

from wasmformer.frontend.decode import FuncType
from wasmformer.vm.ops import WORD_BITS, value_to_words
from wasmformer.vm.program import Op

WORDS = {"i32": 1, "f32": 1, "i64": 2, "f64": 2}  # words per value type the machine moves


def words_of(kind: str) -> int | None:
    """Words per value of this type, or None for a type the machine has no words for (v128, references)."""
    return WORDS.get(kind)


FLOAT_FORMATS = {"f32": "<I", "f64": "<Q"}  # a float const's immediate is its little-endian bytes


def const_bits(kind: str, immediate) -> int:
    """A const instruction's immediate as unsigned bits (floats: their raw bits)."""
    if kind in FLOAT_FORMATS:
        return struct.unpack(FLOAT_FORMATS[kind], immediate)[0]
    return immediate % (1 << WORD_BITS * WORDS[kind])


def const_words(kind: str, immediate) -> list[int]:
    """The words of a const instruction's immediate, low first."""
    return value_to_words(const_bits(kind, immediate), WORDS[kind])


# Float loads and stores move the same bytes as the integer ones of their size (i64 loads and i64.store are
# ops of their own: vm/ops.py).
FLOAT_MEMORY = {"f32.load": "i32.load", "f64.load": "i64.load", "f32.store": "i32.store", "f64.store": "i64.store"}
# Narrow i64 stores: the low word's low bytes, by the i32 store of that width (the high word dropped).
NARROW_I64_STORES = {"i64.store8": Op.STORE8, "i64.store16": Op.STORE16, "i64.store32": Op.STORE}

# Conversions that only change how words are read.
REINTERPRETATIONS = frozenset(["i32.reinterpret_f32", "f32.reinterpret_i32", "i64.reinterpret_f64",
                               "f64.reinterpret_i64"])
# i64.extendN_s: the i32 op that sign-extends the low word first (None: the low word as it is).
I64_SIGN_EXTENSIONS = {"i64.extend8_s": Op.EXTEND8_S, "i64.extend16_s": Op.EXTEND16_S, "i64.extend32_s": None}

FLOAT_TYPES = ("f32", "f64")


def is_float_arithmetic(name: str) -> bool:
    """A float instruction that computes (not a move): arithmetic, comparison or numeric conversion."""
    if name in REINTERPRETATIONS or name in FLOAT_MEMORY or name.endswith(".const"):
        return False
    return name.startswith(FLOAT_TYPES) or "_f32" in name or "_f64" in name


FLOAT_UNARY = frozenset(["abs", "neg", "sqrt", "ceil", "floor", "trunc", "nearest"])
FLOAT_BINARY = frozenset(["add", "sub", "mul", "div", "min", "max", "copysign"])
FLOAT_COMPARISONS = frozenset(["eq", "ne", "lt", "gt", "le", "ge"])


def float_instruction_type(name: str) -> FuncType:
    """The stack effect of a float instruction that computes, as a function type: ``f64.add`` (f64 f64) ->
    (f64), ``f32.lt`` (f32 f32) -> (i32), ``i64.trunc_sat_f32_u`` (f32) -> (i64), ``f64.promote_f32`` (f32)
    -> (f64)."""
    result, _, operation = name.partition(".")
    if operation in FLOAT_UNARY:
        return FuncType((result,), (result,))
    if operation in FLOAT_BINARY:
        return FuncType((result, result), (result,))
    if operation in FLOAT_COMPARISONS:
        return FuncType((result, result), ("i32",))
    sources = [part for part in operation.split("_") if part in WORDS]
    if len(sources) != 1:
        raise ValueError(f"{name} is not a float instruction that computes")
    return FuncType((sources[0],), (result,))
