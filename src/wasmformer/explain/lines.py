"""C source lines for VM pcs (``explain --debug``): clang's DWARF line table, read back through the front end.

The front end compiles C with ``-g`` and drops the DWARF sections after
linking (frontend/toolchain.py). Here the same source is compiled once more
with the same flags and the sections kept; the ``.debug_line`` program
(DWARF 4 or 5) maps code addresses (offsets into the Code section's
contents, the convention for wasm) to file and line. Each pc's origin in the
``VMProgram`` (function, index of the wasm instruction) gives that
instruction's offset, so every attributed pc gets the line its instruction
came from. Only the lines of the user's file are kept (the C library has
none of its own here).

This reads the toolchain's private helpers (``_flags``, ``_compiler_command``,
``_run_compiler``, ``_source_file``) and the decoder's instruction reader to
stay out of the front end's code.
"""

from __future__ import annotations

import bisect
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wasmformer.frontend.binary import Reader
from wasmformer.frontend.errors import FrontendError

WASM_HEADER_BYTES = 8
CUSTOM_SECTION, CODE_SECTION = 0, 10
DEBUG_LINE, DEBUG_LINE_STR, DEBUG_STR = ".debug_line", ".debug_line_str", ".debug_str"
# DWARF constants (DWARF 5 standard, section 6.2 and 7.5.6)
DW_LNS_COPY, DW_LNS_ADVANCE_PC, DW_LNS_ADVANCE_LINE, DW_LNS_SET_FILE = 1, 2, 3, 4
DW_LNS_CONST_ADD_PC, DW_LNS_FIXED_ADVANCE_PC = 8, 9
DW_LNE_END_SEQUENCE, DW_LNE_SET_ADDRESS = 1, 2
DW_LNCT_PATH = 1
DW_FORM_STRING, DW_FORM_LINE_STRP, DW_FORM_STRP, DW_FORM_UDATA, DW_FORM_DATA16 = 0x08, 0x1F, 0x0E, 0x0F, 0x1E
DW_FORM_DATA1, DW_FORM_DATA2, DW_FORM_DATA4, DW_FORM_DATA8, DW_FORM_BLOCK = 0x0B, 0x05, 0x06, 0x07, 0x09
FIXED_FORM_BYTES = {DW_FORM_DATA1: 1, DW_FORM_DATA2: 2, DW_FORM_DATA4: 4, DW_FORM_DATA8: 8, DW_FORM_DATA16: 16,
                    DW_FORM_LINE_STRP: 4, DW_FORM_STRP: 4}
DWARF5 = 5


class LineTableError(ValueError):
    """A line table this reader does not understand."""


@dataclass(frozen=True)
class SourceLine:
    file: str
    line: int
    text: str  # the line's text (stripped), when the file is the source given

    def label(self) -> str:
        return f"{Path(self.file).name}:{self.line}" + (f"  {self.text}" if self.text else "")


def source_lines(source: Path, program, clang: str | None = None) -> dict[int, SourceLine]:
    """pc -> the C line its instruction came from, for the pcs of ``source``'s own functions."""
    wasm = compile_with_debug_info(source, clang)
    sections, code_start = _sections(wasm)
    if DEBUG_LINE not in sections:
        return {}
    rows = parse_line_table(sections[DEBUG_LINE], sections.get(DEBUG_LINE_STR, b""), sections.get(DEBUG_STR, b""))
    addresses = [row[0] for row in rows]
    offsets = _instruction_offsets(wasm)
    text = source.read_text(encoding="utf-8", errors="replace").splitlines()
    lines = {}
    for pc, (function, position) in program.origins.items():
        if function not in offsets or position >= len(offsets[function]):
            continue
        address = offsets[function][position] - code_start
        at = bisect.bisect_right(addresses, address) - 1
        if at < 0 or rows[at][3]:  # before every row, or past the end of a sequence
            continue
        _, file, line, _ = rows[at]
        if line and Path(file).name == source.name:
            lines[pc] = SourceLine(file, line, text[line - 1].strip() if line <= len(text) else "")
    return lines


def compile_with_debug_info(source: Path, clang: str | None = None) -> bytes:
    """The module ``load_program`` compiles from ``source`` (same flags), its DWARF sections kept."""
    from wasmformer.frontend import toolchain

    with tempfile.TemporaryDirectory(prefix="wasmformer-explain-") as work_dir:
        work = Path(work_dir)
        c_file, compile_dir = toolchain._source_file(source, work)
        flags = toolchain._flags(toolchain.DEFAULT_OPT, clang is not None, toolchain.DEFAULT_STACK_SIZE, ())
        output = work / "module.wasm"
        toolchain._run_compiler(toolchain._compiler_command(clang) + flags + ["-o", str(output), str(c_file)],
                                compile_dir, work)
        return output.read_bytes()


def _sections(wasm: bytes) -> tuple[dict[str, bytes], int]:
    """The custom sections by name, and where the Code section's contents start."""
    reader = Reader(wasm, WASM_HEADER_BYTES)
    sections, code_start = {}, -1
    while not reader.at_end():
        section_id, size = reader.byte(), reader.u32()
        end = reader.pos + size
        if section_id == CUSTOM_SECTION:
            name = reader.name()
            sections[name] = wasm[reader.pos:end]
        elif section_id == CODE_SECTION:
            code_start = reader.pos
        reader.pos = end
    return sections, code_start


def _instruction_offsets(wasm: bytes) -> dict[str, list[int]]:
    """Per defined function (by the name the front end gives it), the byte offset of each instruction."""
    from wasmformer.frontend.decode import _instruction, decode_module, opcode_table

    module = decode_module(wasm)
    table = opcode_table()
    imported = len(module.imported_functions)
    offsets = {}
    for number, function in enumerate(module.functions):
        reader = Reader(wasm, function.body_start, function.body_end)
        starts, depth = [], 1
        try:
            while depth > 0:
                starts.append(reader.pos)
                name = _instruction(reader, table).name
                depth += 1 if name in ("block", "loop", "if") else -1 if name == "end" else 0
        except FrontendError:
            continue
        offsets[module.function_name(imported + number)] = starts
    return offsets


# --- the DWARF line program --------------------------------------------------------------------


class _Bytes:
    def __init__(self, data: bytes, position: int = 0):
        self.data, self.position = data, position

    def fixed(self, count: int) -> int:
        if self.position + count > len(self.data):
            raise LineTableError("the line table ends early")
        value = int.from_bytes(self.data[self.position:self.position + count], "little")
        self.position += count
        return value

    def signed_fixed(self, count: int) -> int:
        value = self.fixed(count)
        return value - (1 << (8 * count)) if value >> (8 * count - 1) else value

    def _leb(self) -> tuple[int, int, int]:
        """A LEB128 number's 7-bit groups: (value read unsigned, bits read, its last byte)."""
        result = shift = 0
        while True:
            byte = self.fixed(1)
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result, shift, byte

    def uleb(self) -> int:
        return self._leb()[0]

    def sleb(self) -> int:
        result, shift, last = self._leb()
        return result - (1 << shift) if last & 0x40 else result

    def cstring(self) -> str:
        end = self.data.index(b"\0", self.position)
        text = self.data[self.position:end].decode("utf-8", errors="replace")
        self.position = end + 1
        return text


def _string_at(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset:end if end >= 0 else len(table)].decode("utf-8", errors="replace")


def parse_line_table(data: bytes, line_strings: bytes = b"", strings: bytes = b"") -> list[tuple[int, str, int, bool]]:
    """Every row of every unit's line program: (address, file, line, end of sequence), sorted by address."""
    rows: list[tuple[int, str, int, bool]] = []
    reader = _Bytes(data)
    while reader.position < len(data):
        unit_length = reader.fixed(4)
        unit_end = reader.position + unit_length
        version = reader.fixed(2)
        if version >= DWARF5:
            reader.fixed(2)  # address size, segment selector size
        header_length = reader.fixed(4)
        program_start = reader.position + header_length
        minimum_instruction_length = reader.fixed(1)
        if version >= 4:
            reader.fixed(1)  # maximum operations per instruction
        reader.fixed(1)  # default is_stmt
        line_base, line_range, opcode_base = reader.signed_fixed(1), reader.fixed(1), reader.fixed(1)
        lengths = [reader.fixed(1) for _ in range(opcode_base - 1)]
        files = (_files_v5(reader, line_strings, strings) if version >= DWARF5 else _files_v4(reader))
        reader.position = program_start
        _run_program(reader, unit_end, files, lengths, minimum_instruction_length, line_base, line_range,
                     opcode_base, version, rows)
        reader.position = unit_end
    return sorted(rows, key=lambda row: (row[0], row[3]))


def _files_v4(reader: _Bytes) -> list[str]:
    while reader.cstring():  # include directories
        pass
    files = [""]  # DWARF 4 numbers files from 1
    while True:
        name = reader.cstring()
        if not name:
            return files
        reader.uleb(), reader.uleb(), reader.uleb()  # directory, time, length
        files.append(name)


def _files_v5(reader: _Bytes, line_strings: bytes, strings: bytes) -> list[str]:
    def entries() -> list[str]:
        formats = [(reader.uleb(), reader.uleb()) for _ in range(reader.fixed(1))]
        names = []
        for _ in range(reader.uleb()):
            name = ""
            for content, form in formats:
                value = _form_value(reader, form, line_strings, strings)
                if content == DW_LNCT_PATH:
                    name = value
            names.append(name)
        return names

    entries()  # directories
    return entries()


def _form_value(reader: _Bytes, form: int, line_strings: bytes, strings: bytes):
    if form == DW_FORM_STRING:
        return reader.cstring()
    if form == DW_FORM_LINE_STRP:
        return _string_at(line_strings, reader.fixed(4))
    if form == DW_FORM_STRP:
        return _string_at(strings, reader.fixed(4))
    if form == DW_FORM_UDATA:
        return reader.uleb()
    if form == DW_FORM_BLOCK:
        reader.position += reader.uleb()
        return None
    if form in FIXED_FORM_BYTES:
        reader.position += FIXED_FORM_BYTES[form]
        return None
    raise LineTableError(f"unknown DWARF form {form:#x} in the line table header")


def _run_program(reader: _Bytes, end: int, files: list[str], lengths: list[int], step: int, line_base: int,
                 line_range: int, opcode_base: int, version: int, rows: list) -> None:
    first_file = 0 if version >= DWARF5 else 1

    def reset():
        return 0, first_file + (0 if version >= DWARF5 else 0), 1

    address, file, line = 0, 1, 1

    def emit(end_sequence: bool = False) -> None:
        name = files[file] if 0 <= file < len(files) else ""
        rows.append((address, name, line, end_sequence))

    while reader.position < end:
        opcode = reader.fixed(1)
        if opcode >= opcode_base:
            adjusted = opcode - opcode_base
            address += (adjusted // line_range) * step
            line += line_base + adjusted % line_range
            emit()
        elif opcode == 0:
            length = reader.uleb()
            next_position = reader.position + length
            sub = reader.fixed(1)
            if sub == DW_LNE_END_SEQUENCE:
                emit(end_sequence=True)
                address, file, line = 0, 1, 1
            elif sub == DW_LNE_SET_ADDRESS:
                address = reader.fixed(length - 1)
            reader.position = next_position
        elif opcode == DW_LNS_COPY:
            emit()
        elif opcode == DW_LNS_ADVANCE_PC:
            address += reader.uleb() * step
        elif opcode == DW_LNS_ADVANCE_LINE:
            line += reader.sleb()
        elif opcode == DW_LNS_SET_FILE:
            file = reader.uleb()
        elif opcode == DW_LNS_CONST_ADD_PC:
            address += ((255 - opcode_base) // line_range) * step
        elif opcode == DW_LNS_FIXED_ADVANCE_PC:
            address += reader.fixed(2)
        else:  # set_column takes one operand; the others a known count (standard_opcode_lengths)
            for _ in range(lengths[opcode - 1]):
                reader.uleb()
