"""The wasm instruction encoding: opcode byte -> text-format name and immediate kind.

Covers the whole 1.0 ("MVP") instruction set plus sign extension, typed select,
reference instructions and the 0xFC prefix, so that even an instruction we do
not support gets its proper name in error messages. Immediate kinds:

    none       no immediate
    block      a block type (empty, one value type, or a type index)
    label      a label depth
    br_table   a vector of label depths and a default depth
    index      one u32 index (function, local, global, table, data, element...)
    two        two u32 indices (call_indirect: type then table; table.copy...)
    memarg     alignment exponent and static offset
    memory     a memory index (memory.size / memory.grow)
    i32/i64    a signed LEB128 constant
    f32/f64    a 4- or 8-byte float constant
    types      a vector of value types (typed select)
    reftype    one reference type byte (ref.null)
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX_MISC = 0xFC  # saturating truncation, bulk memory, table instructions
PREFIX_SIMD = 0xFD
PREFIX_THREADS = 0xFE

_CONTROL = {
    0x00: ("unreachable", "none"), 0x01: ("nop", "none"),
    0x02: ("block", "block"), 0x03: ("loop", "block"), 0x04: ("if", "block"),
    0x05: ("else", "none"), 0x0B: ("end", "none"),
    0x0C: ("br", "label"), 0x0D: ("br_if", "label"), 0x0E: ("br_table", "br_table"),
    0x0F: ("return", "none"), 0x10: ("call", "index"), 0x11: ("call_indirect", "two"),
    0x12: ("return_call", "index"), 0x13: ("return_call_indirect", "two"),
    0x1A: ("drop", "none"), 0x1B: ("select", "none"), 0x1C: ("select", "types"),
    0x20: ("local.get", "index"), 0x21: ("local.set", "index"), 0x22: ("local.tee", "index"),
    0x23: ("global.get", "index"), 0x24: ("global.set", "index"),
    0x25: ("table.get", "index"), 0x26: ("table.set", "index"),
    0x3F: ("memory.size", "memory"), 0x40: ("memory.grow", "memory"),
    0x41: ("i32.const", "i32"), 0x42: ("i64.const", "i64"),
    0x43: ("f32.const", "f32"), 0x44: ("f64.const", "f64"),
    0xD0: ("ref.null", "reftype"), 0xD1: ("ref.is_null", "none"), 0xD2: ("ref.func", "index"),
}

_MEMORY_NAMES = [  # 0x28 .. 0x3E, all with a memarg
    "i32.load", "i64.load", "f32.load", "f64.load",
    "i32.load8_s", "i32.load8_u", "i32.load16_s", "i32.load16_u",
    "i64.load8_s", "i64.load8_u", "i64.load16_s", "i64.load16_u", "i64.load32_s", "i64.load32_u",
    "i32.store", "i64.store", "f32.store", "f64.store",
    "i32.store8", "i32.store16", "i64.store8", "i64.store16", "i64.store32",
]
_FIRST_MEMORY_OPCODE = 0x28

_COMPARE = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]
_FLOAT_COMPARE = ["eq", "ne", "lt", "gt", "le", "ge"]
_INT_ARITH = ["clz", "ctz", "popcnt", "add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u",
              "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr"]
_FLOAT_ARITH = ["abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt",
                "add", "sub", "mul", "div", "min", "max", "copysign"]
_CONVERSIONS = [
    "i32.wrap_i64", "i32.trunc_f32_s", "i32.trunc_f32_u", "i32.trunc_f64_s", "i32.trunc_f64_u",
    "i64.extend_i32_s", "i64.extend_i32_u", "i64.trunc_f32_s", "i64.trunc_f32_u",
    "i64.trunc_f64_s", "i64.trunc_f64_u", "f32.convert_i32_s", "f32.convert_i32_u",
    "f32.convert_i64_s", "f32.convert_i64_u", "f32.demote_f64", "f64.convert_i32_s",
    "f64.convert_i32_u", "f64.convert_i64_s", "f64.convert_i64_u", "f64.promote_f32",
    "i32.reinterpret_f32", "i64.reinterpret_f64", "f32.reinterpret_i32", "f64.reinterpret_i64",
    "i32.extend8_s", "i32.extend16_s", "i64.extend8_s", "i64.extend16_s", "i64.extend32_s",
]
_FIRST_NUMERIC_OPCODE = 0x45  # i32.eqz; the numeric opcodes run in this order to 0xC4


def _numeric_names() -> list[str]:
    return (["i32.eqz"] + [f"i32.{n}" for n in _COMPARE]
            + ["i64.eqz"] + [f"i64.{n}" for n in _COMPARE]
            + [f"f32.{n}" for n in _FLOAT_COMPARE] + [f"f64.{n}" for n in _FLOAT_COMPARE]
            + [f"i32.{n}" for n in _INT_ARITH] + [f"i64.{n}" for n in _INT_ARITH]
            + [f"f32.{n}" for n in _FLOAT_ARITH] + [f"f64.{n}" for n in _FLOAT_ARITH]
            + _CONVERSIONS)


_MISC = {  # after the 0xFC prefix, a u32 sub-opcode
    0: ("i32.trunc_sat_f32_s", "none"), 1: ("i32.trunc_sat_f32_u", "none"),
    2: ("i32.trunc_sat_f64_s", "none"), 3: ("i32.trunc_sat_f64_u", "none"),
    4: ("i64.trunc_sat_f32_s", "none"), 5: ("i64.trunc_sat_f32_u", "none"),
    6: ("i64.trunc_sat_f64_s", "none"), 7: ("i64.trunc_sat_f64_u", "none"),
    8: ("memory.init", "two"), 9: ("data.drop", "index"), 10: ("memory.copy", "two"),
    11: ("memory.fill", "index"), 12: ("table.init", "two"), 13: ("elem.drop", "index"),
    14: ("table.copy", "two"), 15: ("table.grow", "index"), 16: ("table.size", "index"),
    17: ("table.fill", "index"),
}


def _single_byte_table() -> dict[int, tuple[str, str]]:
    table = dict(_CONTROL)
    for offset, name in enumerate(_MEMORY_NAMES):
        table[_FIRST_MEMORY_OPCODE + offset] = (name, "memarg")
    for offset, name in enumerate(_numeric_names()):
        table[_FIRST_NUMERIC_OPCODE + offset] = (name, "none")
    return table


@dataclass(frozen=True)
class OpcodeTable:
    single: dict[int, tuple[str, str]]
    misc: dict[int, tuple[str, str]]


def opcode_table() -> OpcodeTable:
    """The opcode tables (built on each call: no module-level mutable state)."""
    return OpcodeTable(single=_single_byte_table(), misc=dict(_MISC))
