"""Read and validate a wasm binary; decode the sections the lowering needs.

No maintained pure-Python library decodes wasm binaries as a library (the
``wasm`` package on PyPI stopped at 2019; ``pywasm`` is an interpreter whose
parser is not a public API), so this is a small decoder for the binary format
of the 1.0 spec plus the few later encodings that C toolchains emit (element
and data segment flags, typed select, sign extension).

Validation is wasmtime's (``wasmtime.Module.validate``): once a module passes,
the decoder can trust types and stack shapes and only has to *refuse* what the
machine does not support, with a message naming the place. Function bodies are
decoded lazily (``decode_body``) so that functions that are never called do
not have to be supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmformer.frontend.binary import Reader
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.opcodes import PREFIX_MISC, PREFIX_SIMD, PREFIX_THREADS, OpcodeTable, opcode_table

WASM_MAGIC = b"\x00asm"
WASM_VERSION = b"\x01\x00\x00\x00"
PAGE_SIZE = 65536  # bytes in one wasm memory page

VALUE_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
               0x70: "funcref", 0x6F: "externref"}
# Typed references (function-references / GC proposals): 0x64 = (ref ht), 0x63 = (ref null ht), a heap
# type (s33) following. They are decoded as opaque type names, so a module that uses them elsewhere still
# runs its i32 functions; any function, block or call touching them is refused when lowered.
TYPED_REFERENCE = {0x64: "ref", 0x63: "ref null"}
EMPTY_BLOCK_TYPE = 0x40
FUNCTION_TYPE_FORM = 0x60
EXTERNAL_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
ELEM_KIND_FUNCREF = 0x00

SECTION_NAMES = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
                 6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
                 12: "data count", 13: "tag"}
MEMARG_HAS_MEMORY_INDEX = 0x40  # multi-memory: a memory index follows the alignment
NAME_SUBSECTION_FUNCTIONS = 1  # in the "name" custom section

# Limits flags: bit 0 = has a maximum, bit 1 = shared, bit 2 = 64-bit addresses
LIMITS_HAS_MAX, LIMITS_SHARED, LIMITS_64BIT = 1, 2, 4

# Element segment flags (binary format 5.5.12): bit 0 = passive or declarative,
# bit 1 = explicit table index (if active) / declarative (if bit 0), bit 2 = the
# elements are expressions rather than function indices.
ELEM_PASSIVE_OR_DECLARATIVE, ELEM_EXPLICIT_TABLE_OR_DECLARATIVE, ELEM_EXPRESSIONS = 1, 2, 4
# Data segment flags: 0 = active in memory 0, 1 = passive, 2 = active with a memory index
DATA_ACTIVE, DATA_PASSIVE, DATA_ACTIVE_EXPLICIT = 0, 1, 2


@dataclass(frozen=True)
class FuncType:
    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({' '.join(self.params)}) -> ({' '.join(self.results)})"


@dataclass(frozen=True)
class Instruction:
    name: str  # the text-format name, e.g. "i32.add"
    args: tuple = ()  # decoded immediates


@dataclass
class Import:
    module: str
    name: str
    kind: str
    type_index: int = -1  # for functions


@dataclass
class Function:
    index: int  # in the function index space (after imported functions)
    type_index: int
    local_types: list[tuple[int, str]] = field(default_factory=list)  # (count, type) runs
    body_start: int = 0
    body_end: int = 0


@dataclass
class Limits:
    minimum: int
    maximum: int | None
    shared: bool = False
    is64: bool = False


@dataclass
class Global:
    value_type: str
    mutable: bool
    init: list[Instruction]


@dataclass
class ElementSegment:
    mode: str  # "active", "passive" or "declarative"
    table: int
    offset: list[Instruction]
    functions: list[int | None]  # None: a null reference


@dataclass
class DataSegment:
    mode: str  # "active" or "passive"
    memory: int
    offset: list[Instruction]
    data: bytes


@dataclass
class Module:
    binary: bytes
    types: list[FuncType] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)  # defined ones only
    tables: list[Limits] = field(default_factory=list)
    memories: list[Limits] = field(default_factory=list)
    globals: list[Global] = field(default_factory=list)
    exports: dict[str, tuple[str, int]] = field(default_factory=dict)
    start: int | None = None
    elements: list[ElementSegment] = field(default_factory=list)
    data: list[DataSegment] = field(default_factory=list)
    function_names: dict[int, str] = field(default_factory=dict)

    @property
    def imported_functions(self) -> list[Import]:
        return [i for i in self.imports if i.kind == "func"]

    def function_type(self, index: int) -> FuncType:
        imported = self.imported_functions
        if index < len(imported):
            return self.types[imported[index].type_index]
        return self.types[self.defined_function(index).type_index]

    def defined_function(self, index: int) -> Function:
        return self.functions[index - len(self.imported_functions)]

    def function_name(self, index: int) -> str:
        if index in self.function_names:
            return self.function_names[index]
        for name, (kind, exported) in self.exports.items():
            if kind == "func" and exported == index:
                return name
        return f"func{index}"

    def where(self, index: int) -> str:
        return f"function '{self.function_name(index)}' (index {index})"


def validate(binary: bytes) -> None:
    """Refuse a module wasmtime does not accept (this never runs it)."""
    import wasmtime

    try:
        wasmtime.Module.validate(wasmtime.Engine(), binary)
    except wasmtime.WasmtimeError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
        raise FrontendError(f"invalid wasm module: {first_line}") from None


def decode_module(binary: bytes, *, check: bool = True) -> Module:
    """Decode a wasm binary (validated first unless ``check`` is false)."""
    binary = bytes(binary)
    if check:
        validate(binary)
    reader = Reader(binary)
    if reader.bytes(4) != WASM_MAGIC or reader.bytes(4) != WASM_VERSION:
        raise FrontendError("not a wasm binary (bad magic number or version)")
    module = Module(binary=binary)
    function_type_indices: list[int] = []
    while not reader.at_end():
        section_id = reader.byte()
        size = reader.u32()
        section = Reader(binary, reader.pos, reader.pos + size)
        reader.pos += size
        _decode_section(module, section_id, section, function_type_indices)
    return module


def _decode_section(module: Module, section_id: int, reader: Reader, function_type_indices: list[int]) -> None:
    if section_id == 0:
        _decode_custom(module, reader)
    elif section_id == 1:
        module.types = reader.vector(lambda: _function_type(reader))
    elif section_id == 2:
        module.imports = reader.vector(lambda: _import(reader))
    elif section_id == 3:
        function_type_indices.extend(reader.vector(reader.u32))
    elif section_id == 4:
        module.tables = reader.vector(lambda: _table_type(reader))
    elif section_id == 5:
        module.memories = reader.vector(lambda: _limits(reader))
    elif section_id == 6:
        module.globals = reader.vector(lambda: _global(reader))
    elif section_id == 7:
        for name, kind, index in reader.vector(lambda: (reader.name(), reader.byte(), reader.u32())):
            module.exports[name] = (EXTERNAL_KINDS.get(kind, "unknown"), index)
    elif section_id == 8:
        module.start = reader.u32()
    elif section_id == 9:
        module.elements = reader.vector(lambda: _element_segment(reader))
    elif section_id == 10:
        _decode_code(module, reader, function_type_indices)
    elif section_id == 11:
        module.data = reader.vector(lambda: _data_segment(reader))
    elif section_id == 12:
        reader.u32()  # data count: only needed by bulk memory instructions
    else:
        name = SECTION_NAMES.get(section_id, f"id {section_id}")
        raise FrontendError(f"the {name} section is not supported (exception handling and later proposals)")


def value_type(reader: Reader) -> str:
    code = reader.byte()
    if code in TYPED_REFERENCE:
        return _typed_reference(reader, code)
    if code not in VALUE_TYPES:
        raise FrontendError(f"value type 0x{code:02x} is not supported (typed references / GC)")
    return VALUE_TYPES[code]


def _typed_reference(reader: Reader, code: int) -> str:
    """(ref ht) / (ref null ht) after its prefix byte: the name, e.g. "(ref null 3)" (ht: type index or abstract)."""
    return f"({TYPED_REFERENCE[code]} {reader.s33()})"


def _function_type(reader: Reader) -> FuncType:
    form = reader.byte()
    if form != FUNCTION_TYPE_FORM:
        raise FrontendError(f"type form 0x{form:02x} is not supported (only function types, no GC types)")
    params = tuple(reader.vector(lambda: value_type(reader)))
    results = tuple(reader.vector(lambda: value_type(reader)))
    return FuncType(params, results)


def _import(reader: Reader) -> Import:
    module_name, name, kind_code = reader.name(), reader.name(), reader.byte()
    kind = EXTERNAL_KINDS.get(kind_code, "unknown")
    result = Import(module_name, name, kind)
    if kind == "func":
        result.type_index = reader.u32()
    elif kind == "table":
        _table_type(reader)
    elif kind == "memory":
        _limits(reader)
    elif kind == "global":
        value_type(reader)
        reader.byte()
    else:
        raise FrontendError(f"import {module_name}.{name}: import kind 0x{kind_code:02x} is not supported")
    return result


def _limits(reader: Reader) -> Limits:
    flags = reader.byte()
    minimum = reader.u64()
    maximum = reader.u64() if flags & LIMITS_HAS_MAX else None
    return Limits(minimum, maximum, shared=bool(flags & LIMITS_SHARED), is64=bool(flags & LIMITS_64BIT))


def _table_type(reader: Reader) -> Limits:
    value_type(reader)
    return _limits(reader)


def _global(reader: Reader) -> Global:
    kind = value_type(reader)
    mutable = reader.byte() == 1
    return Global(kind, mutable, _expression(reader, opcode_table(), "a global initializer"))


def _element_segment(reader: Reader) -> ElementSegment:
    flags = reader.u32()
    passive_or_declarative = flags & ELEM_PASSIVE_OR_DECLARATIVE
    if passive_or_declarative:
        mode = "declarative" if flags & ELEM_EXPLICIT_TABLE_OR_DECLARATIVE else "passive"
        table, offset = 0, []
    else:
        mode = "active"
        table = reader.u32() if flags & ELEM_EXPLICIT_TABLE_OR_DECLARATIVE else 0
        offset = _expression(reader, opcode_table(), "an element offset")
    has_kind = passive_or_declarative or flags & ELEM_EXPLICIT_TABLE_OR_DECLARATIVE
    if flags & ELEM_EXPRESSIONS:
        if has_kind:
            value_type(reader)
        table_ops = opcode_table()
        functions = reader.vector(lambda: _element_reference(_expression(reader, table_ops, "an element")))
    else:
        if has_kind:
            reader.byte()  # element kind: 0x00 = funcref
        functions = reader.vector(reader.u32)
    return ElementSegment(mode, table, offset, functions)


def _element_reference(expression: list[Instruction]) -> int | None:
    first = expression[0] if expression else Instruction("nop")
    if first.name == "ref.func":
        return first.args[0]
    if first.name == "ref.null":
        return None
    raise FrontendError(f"element expression {first.name} is not supported (only ref.func / ref.null)")


def _data_segment(reader: Reader) -> DataSegment:
    flags = reader.u32()
    if flags == DATA_PASSIVE:
        return DataSegment("passive", 0, [], reader.bytes(reader.u32()))
    memory = reader.u32() if flags == DATA_ACTIVE_EXPLICIT else 0
    offset = _expression(reader, opcode_table(), "a data segment offset")
    return DataSegment("active", memory, offset, reader.bytes(reader.u32()))


def _decode_code(module: Module, reader: Reader, function_type_indices: list[int]) -> None:
    first_index = len(module.imported_functions)
    count = reader.u32()
    for position in range(count):
        size = reader.u32()
        body_end = reader.pos + size
        local_types = reader.vector(lambda: (reader.u32(), value_type(reader)))
        module.functions.append(Function(first_index + position, function_type_indices[position],
                                         local_types, reader.pos, body_end))
        reader.pos = body_end


def _decode_custom(module: Module, reader: Reader) -> None:
    """Only the "name" section matters (function names for messages); a broken one is ignored."""
    try:
        if reader.name() != "name":
            return
        while not reader.at_end():
            subsection, size = reader.byte(), reader.u32()
            end = reader.pos + size
            if subsection == NAME_SUBSECTION_FUNCTIONS:
                for index, name in reader.vector(lambda: (reader.u32(), reader.name())):
                    module.function_names[index] = name
            reader.pos = end
    except FrontendError:
        return


def decode_body(module: Module, function: Function) -> list[Instruction]:
    """The instructions of a function body, the final ``end`` included."""
    reader = Reader(module.binary, function.body_start, function.body_end)
    table = opcode_table()
    instructions: list[Instruction] = []
    depth = 1
    while depth > 0:
        try:
            instruction = _instruction(reader, table)
        except FrontendError as error:
            raise FrontendError(f"{module.where(function.index)}, instruction {len(instructions)}: {error}") from None
        instructions.append(instruction)
        if instruction.name in ("block", "loop", "if"):
            depth += 1
        elif instruction.name == "end":
            depth -= 1
    return instructions


def _expression(reader: Reader, table: OpcodeTable, what: str) -> list[Instruction]:
    """A constant expression, up to and without its ``end``."""
    instructions = []
    while True:
        instruction = _instruction(reader, table)
        if instruction.name == "end":
            return instructions
        instructions.append(instruction)


def _instruction(reader: Reader, table: OpcodeTable) -> Instruction:
    opcode = reader.byte()
    if opcode == PREFIX_MISC:
        sub = reader.u32()
        if sub not in table.misc:
            raise FrontendError(f"unknown instruction 0xfc {sub}")
        name, kind = table.misc[sub]
    elif opcode in (PREFIX_SIMD, PREFIX_THREADS):
        feature = "SIMD" if opcode == PREFIX_SIMD else "threads (atomics)"
        raise FrontendError(f"{feature} instructions (prefix 0x{opcode:02x}) are not supported")
    elif opcode in table.single:
        name, kind = table.single[opcode]
    else:
        raise FrontendError(f"instruction with opcode 0x{opcode:02x} is not supported "
                            "(exception handling, GC or a later proposal)")
    return Instruction(name, _immediates(reader, kind))


def _immediates(reader: Reader, kind: str) -> tuple:
    if kind == "none":
        return ()
    if kind in ("label", "index"):
        return (reader.u32(),)
    if kind == "two":
        return (reader.u32(), reader.u32())
    if kind == "block":
        return (_block_type(reader),)
    if kind == "br_table":
        return (tuple(reader.vector(reader.u32)), reader.u32())
    if kind == "memarg":
        alignment = reader.u32()
        if alignment & MEMARG_HAS_MEMORY_INDEX:
            raise FrontendError("multiple memories are not supported")
        return (alignment, reader.u32())  # alignment exponent, static offset
    if kind == "memory":
        return (reader.u32(),)
    if kind == "i32":
        return (reader.s32(),)
    if kind == "i64":
        return (reader.s64(),)
    if kind == "f32":
        return (reader.bytes(4),)
    if kind == "f64":
        return (reader.bytes(8),)
    if kind == "types":
        return tuple(reader.vector(lambda: value_type(reader)))
    if kind == "reftype":
        return (reader.byte(),)
    raise AssertionError(kind)


def _block_type(reader: Reader):
    """A block type: None (empty), a value type name, or a type index."""
    code = reader.data[reader.pos] if reader.pos < reader.end else None
    if code == EMPTY_BLOCK_TYPE:
        reader.pos += 1
        return None
    if code in VALUE_TYPES:
        reader.pos += 1
        return VALUE_TYPES[code]
    if code in TYPED_REFERENCE:
        reader.pos += 1
        return _typed_reference(reader, code)
    return reader.s33()
