"""One module's lowering context: its functions reachable from some roots, lowered in order.

A ``ModuleUnit`` holds what is decided about a module before its functions
are lowered (the op set the target executes, the memory reach, globals,
the immutable tables); ``lower_reachable`` lowers every defined function reachable from the
roots. Both the user's program (frontend/lower.py) and the helper library
(frontend/helpers.py) go through here, each as a unit of its own, so that
their symbols never clash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmformer.frontend.assemble import Symbol
from wasmformer.frontend.decode import FuncType, Instruction, Module
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.lower_function import Environment, LoweredFunction, lower_function, to_i32, type_reason
from wasmformer.frontend.words import const_bits, is_float_arithmetic, words_of
from wasmformer.vm.ops import BASIC_OPS, WORD_BITS
from wasmformer.vm.program import Instr, Op, TrapReason

IO_MODULE = "wasmformer"
IO_IMPORTS = {  # name -> (required signature, the VM instruction that replaces the call)
    "putchar": (FuncType(("i32",), ()), Instr(Op.PUTCHAR)),
    "getchar": (FuncType((), ("i32",)), Instr(Op.GETCHAR)),
    "putchar_err": (FuncType(("i32",), ()), Instr(Op.PUTCHAR_ERR)),
    "exit": (FuncType(("i32",), ()), Instr(Op.EXIT)),
}
# WASI preview1: a call of an import from this module becomes a call of the helper library's export
# "wasi:NAME" (frontend/wasi.wat); check_imports is given the types those exports have.
WASI_MODULE = "wasi_snapshot_preview1"
WASI_EXPORT_PREFIX = "wasi:"
# Only the helper library (helpers.wat) may import these: a call becomes TRAP <reason>.
HELPER_TRAP_MODULE = "wasmformer_helpers"
HELPER_TRAP_IMPORTS = {
    "trap_divide_by_zero": TrapReason.DIVIDE_BY_ZERO,
    "trap_integer_overflow": TrapReason.INTEGER_OVERFLOW,
    "trap_out_of_bounds_memory": TrapReason.OUT_OF_BOUNDS_MEMORY,
    "trap_invalid_conversion": TrapReason.INVALID_CONVERSION,
}


@dataclass
class ModuleUnit:
    """Everything decided about the module before its functions are lowered."""
    module: Module
    unit: str
    native_ops: frozenset[Op]
    memory_limit: int
    memory_pages: int
    global_slots: dict[int, tuple[int, int]]  # wasm global -> (first VM global, words)
    tables: list[list[int | None]]  # initial_tables: each table's function per slot (None: null)
    rewritten: dict[Op, int] = field(default_factory=dict)  # op -> call sites of its helper
    helper_calls: dict[str, int] = field(default_factory=dict)  # wasm instructions lowered to helper calls
    dispatch_types: dict[tuple[FuncType, int], int] = field(default_factory=dict)  # (signature, table) -> type
    # data segments that memory.init or data.drop use -> the VM global of their remaining length (allocated
    # on first use from segment_global_base, after the module's own globals)
    segment_globals: dict[int, int] = field(default_factory=dict)
    segment_global_base: int = 0
    allow_helper_traps: bool = False  # true only for the helper library


def check_imports(module: Module, *, allow_helper_traps: bool, wasi: dict[str, FuncType] | None = None) -> None:
    """Refuse, before running, every import the machine does not provide (``wasi``: the WASI functions it
    provides and their types)."""
    for item in module.imports:
        if item.kind == "func" and item.module == IO_MODULE and item.name in IO_IMPORTS:
            expected = IO_IMPORTS[item.name][0]
            if module.types[item.type_index] != expected:
                raise FrontendError(f"import {item.module}.{item.name} must have type {expected}, "
                                    f"not {module.types[item.type_index]}")
        elif item.kind == "func" and item.module == WASI_MODULE and not allow_helper_traps:
            wasi = wasi or {}
            if item.name not in wasi:
                provided = ", ".join(sorted(wasi))
                raise FrontendError(f"import {item.module}.{item.name} is not supported: the machine provides "
                                    f"these WASI functions only: {provided}")
            if module.types[item.type_index] != wasi[item.name]:
                raise FrontendError(f"import {item.module}.{item.name} must have type {wasi[item.name]}, "
                                    f"not {module.types[item.type_index]}")
        elif allow_helper_traps and item.module == HELPER_TRAP_MODULE and item.name in HELPER_TRAP_IMPORTS:
            continue
        elif item.kind == "table":
            raise FrontendError(
                f"import {item.module}.{item.name} (table) is not supported: imported tables are not supported, the "
                "machine needs a table's contents when the program is compiled (define the table in the module, "
                "filled by element segments)")
        else:
            raise FrontendError(
                f"import {item.module}.{item.name} ({item.kind}) is not supported: a program may only import WASI "
                f"preview1 functions from \"{WASI_MODULE}\" and the functions putchar: (i32) -> (), getchar: () -> "
                f"(i32), putchar_err: (i32) -> () and exit: (i32) -> () from \"{IO_MODULE}\"")


CONSTANT_OPERATIONS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


def constant_value(expression: list[Instruction], known_globals: dict[int, int], what: str) -> int:
    """Evaluate a constant expression (consts, global.get, extended-const add/sub/mul) to its bits:
    an i32 as a signed value, an i64 or a float as its unsigned bits (frontend/words.py)."""
    stack: list[int] = []
    for instruction in expression:
        kind, _, operation = instruction.name.partition(".")
        if operation == "const" and words_of(kind) is not None:
            value = const_bits(kind, instruction.args[0])
            stack.append(to_i32(value) if kind == "i32" else value)
        elif instruction.name == "global.get" and instruction.args[0] in known_globals:
            stack.append(known_globals[instruction.args[0]])
        elif kind in ("i32", "i64") and operation in CONSTANT_OPERATIONS and len(stack) >= 2:
            right, left = stack.pop(), stack.pop()
            value = CONSTANT_OPERATIONS[operation](left, right)
            stack.append(to_i32(value) if kind == "i32" else value % (1 << 2 * WORD_BITS))
        else:
            raise FrontendError(f"{what}: constant expression with {instruction.name} is not supported")
    if len(stack) != 1:
        raise FrontendError(f"{what}: not a single constant")
    return stack[0]


def global_slots(module: Module) -> dict[int, tuple[int, int]]:
    """wasm global index -> (its first VM global, words), for globals the machine can hold (one VM global
    per word, frontend/words.py; the others are refused when used)."""
    slots: dict[int, tuple[int, int]] = {}
    next_slot = 0
    for index, item in enumerate(module.globals):
        words = words_of(item.value_type)
        if words is not None:
            slots[index] = (next_slot, words)
            next_slot += words
    return slots


def initial_tables(module: Module) -> list[list[int | None]]:
    """Every table after the active element segments: a function index per slot, None = null.

    Tables are immutable here (table.set/grow/init and elem.drop are refused as
    reference types), so this is their content for the whole run. Trailing null
    slots are left out: call_indirect traps on a null slot and past the end alike,
    so a table declared with a huge minimum costs nothing.
    """
    filled: list[dict[int, int | None]] = [{} for _ in module.tables]
    for number, segment in enumerate(module.elements):
        if segment.mode != "active":
            continue  # passive segments are only read by table.init, declarative ones never
        if segment.table >= len(module.tables):
            raise FrontendError(f"element segment {number} fills table {segment.table}, which is not defined "
                                "(imported tables are not supported)")
        start = constant_value(segment.offset, {}, f"element segment {number}") % (1 << 32)
        if start + len(segment.functions) > module.tables[segment.table].minimum:
            raise FrontendError(f"element segment {number} lies outside table {segment.table} "
                                "(instantiation would trap: out of bounds table access)")
        for offset, function in enumerate(segment.functions):
            filled[segment.table][start + offset] = function
    tables = []
    for slots in filled:
        length = 1 + max((slot for slot, function in slots.items() if function is not None), default=-1)
        tables.append([slots.get(slot) for slot in range(length)])
    return tables


def symbol_of_function(unit: str, index: int) -> Symbol:
    return Symbol(("func", unit, index))


def symbol_of_segment(program: ModuleUnit, index: int) -> Symbol:
    return Symbol(("segment", program.unit, index))


def symbol_of_dispatcher(program: ModuleUnit, signature: FuncType, table: int) -> Symbol:
    return Symbol(("dispatch", program.unit, str(signature), table))


def make_environment(program: ModuleUnit, name_prefix: str = "") -> Environment:
    module = program.module

    def function_symbol(index: int) -> Symbol | Instr:
        imported = module.imported_functions
        if index >= len(imported):
            return symbol_of_function(program.unit, index)
        item = imported[index]
        if item.module == IO_MODULE:
            return IO_IMPORTS[item.name][1]
        if item.module == WASI_MODULE:
            name = WASI_EXPORT_PREFIX + item.name
            program.helper_calls[name] = program.helper_calls.get(name, 0) + 1
            return Symbol(("helper", name))
        return Instr(Op.TRAP, HELPER_TRAP_IMPORTS[item.name])

    def global_slot(index: int, fail) -> int:
        if index not in program.global_slots:
            kind = module.globals[index].value_type
            raise fail(f"global {index} has type {kind}, which the machine cannot hold ({type_reason(kind)})")
        return program.global_slots[index]

    def op_target(op: Op) -> Symbol | None:
        if op in program.native_ops:
            return None
        program.rewritten[op] = program.rewritten.get(op, 0) + 1
        return Symbol(("helper", op.value))

    def helper_symbol(name: str) -> Symbol:
        if program.allow_helper_traps and not is_float_arithmetic(name):
            raise FrontendError(f"helper code uses the helper {name} through a wasm instruction; call it instead")
        program.helper_calls[name] = program.helper_calls.get(name, 0) + 1
        return Symbol(("helper", name))

    def dispatch_symbol(type_index: int, table: int) -> Symbol:
        signature = module.types[type_index]  # types are compared structurally: FuncType equality
        program.dispatch_types.setdefault((signature, table), type_index)
        return symbol_of_dispatcher(program, signature, table)

    def data_segment(index: int) -> tuple[Symbol, int]:
        if index not in program.segment_globals:
            program.segment_globals[index] = program.segment_global_base + len(program.segment_globals)
        return symbol_of_segment(program, index), program.segment_globals[index]

    return Environment(module, program.memory_limit, program.memory_pages, function_symbol,
                       global_slot, op_target, dispatch_symbol, helper_symbol, name_prefix,
                       frozenset(program.native_ops), data_segment if module.data and not program.allow_helper_traps else None)


def lower_reachable(program: ModuleUnit, roots: list[int], name_prefix: str = "") -> dict[int, LoweredFunction]:
    """Lower the defined functions reachable from ``roots`` (calls, and the table for call_indirect)."""
    module = program.module
    environment = make_environment(program, name_prefix)
    imported = len(module.imported_functions)
    lowered: dict[int, LoweredFunction] = {}
    pending = list(roots)
    while pending:
        index = pending.pop()
        if index in lowered or index < imported:
            continue
        function = lower_function(environment, index)
        lowered[index] = function
        pending += sorted(function.calls)
        for type_index, table in sorted(function.indirect_types):
            pending += [f for f in table_functions(program, module.types[type_index], table) if f is not None]
    return lowered


def table_functions(program: ModuleUnit, signature: FuncType, table: int) -> list[int | None]:
    """The table's slots, keeping only the functions of this signature (a call_indirect's valid targets)."""
    module = program.module
    return [f if f is not None and module.function_type(f) == signature else None for f in program.tables[table]]


def helper_program(module: Module, memory_limit: int, memory_pages: int,
                   native_ops: frozenset[Op] = BASIC_OPS, unit: str = "helpers",
                   slots: dict[int, tuple[int, int]] | None = None) -> ModuleUnit:
    """The ModuleUnit for the helper library: trap imports allowed, the machine's native ops.

    The helpers run on the user program's memory, so they get its reach
    (``memory_limit``) and declared size (``memory_pages``), not their own
    module's placeholder memory. An op the machine lacks in helper code becomes
    a call of that op's helper, like in the user's code (the i32 helpers use
    basic ops only, so this never recurses). ``unit`` names the library (its symbols' namespace);
    ``slots``: its globals' VM globals (default: its own, from 0).
    """
    check_imports(module, allow_helper_traps=True)
    return ModuleUnit(module, unit, native_ops, memory_limit, memory_pages,
                      global_slots(module) if slots is None else slots, initial_tables(module),
                      allow_helper_traps=True)
