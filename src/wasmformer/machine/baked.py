"""A VM program as the tables a specialised machine bakes into its FFN weights.

The specialised prompt keeps only what is not the program: the sentinel, the
zero and ones slots, the input and the entry (docs/specialize.md).
"""

from __future__ import annotations

from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import check_input, check_program, max_frame_locals, packed_argument, slot_tokens
from wasmformer.vm.errors import ProgramError
from wasmformer.vm.ops import spec
from wasmformer.vm.program import VMProgram

SPECIALISED_INPUT_START = 1 + 2 * T.SLOT + 1  # <s>, the zero and ones slots, <input_bytes>
# Table units (one per change of slope) of all tables together. Every unit is a
# column of an FFN that the model format pads to the same width in all layers,
# so this bounds the file size and the per-token work.
MAX_TABLE_UNITS = 12_000


class BakedProgram:
    """Per-pc opcode and immediate bytes, initial memory and globals, as lists of small integers."""

    def __init__(self, program: VMProgram):
        check_program(program)
        self.name = program.name
        self.opcodes = [spec(instr.op).opcode for instr in program.instrs] or [0]
        arguments = [packed_argument(pc, instr) for pc, instr in enumerate(program.instrs)] or [0]
        self.immediate_bytes = [[(argument >> (8 * k)) & 0xFF for argument in arguments] for k in range(4)]
        # the initial bytes, then 0: a table reads its last value above its end, and memory past the last
        # data byte (the heap, pages memory.grow adds) starts as zeros
        self.memory = list(program.memory[:program.memory_limit]) + [0]
        globals_ = [value & 0xFFFFFFFF for value in program.globals] or [0]
        self.global_bytes = [[(value >> (8 * k)) & 0xFF for value in globals_] for k in range(4)]
        self.memory_limit = program.memory_limit
        self.growable_pages = program.growable_pages
        frame_locals = max_frame_locals(program)
        self.stride = T.locals_stride(frame_locals)
        self.entry = program.entry
        units = self.table_units()
        if units > MAX_TABLE_UNITS:
            raise ProgramError(f"program '{program.name}' needs {units} table units to specialise "
                                f"({len(program.instrs)} instructions, {sum(1 for b in self.memory if b)} nonzero "
                                f"data bytes); at most {MAX_TABLE_UNITS} are supported (each unit is an FFN column "
                                f"in every layer); run it on the universal model instead")

    def tables(self) -> list[list[int]]:
        return [self.opcodes, *self.immediate_bytes, self.memory, *self.global_bytes]

    def table_units(self) -> int:
        return sum(_slope_changes(values) for values in self.tables())


def _slope_changes(values: list[int]) -> int:
    changes, slope = 0, 0
    for point in range(len(values) - 1):
        new_slope = values[point + 1] - values[point]
        changes += new_slope != slope
        slope = new_slope
    return changes + (slope != 0)


def specialised_prompt(program: VMProgram, input_bytes: bytes = b"") -> list[str]:
    """The prompt of a specialised model: no program, only the constant slots, the input and the entry."""
    check_input(input_bytes)
    prompt = [T.START, *slot_tokens(T.ZERO, 0), *slot_tokens(T.ONES, 0xFFFFFFFF), T.INPUT_BYTES]
    assert len(prompt) == SPECIALISED_INPUT_START
    prompt += [T.byte_token("i", b) for b in input_bytes]
    return prompt + [T.byte_token("ph", program.entry >> 8), T.byte_token("pl", program.entry & 0xFF), T.RUN]
