"""A decoded wasm module -> a VMProgram (docs/vm-program.md describes the result).

Layout of the program:

    pc 0       the entry stub: [CALL start]; CALL main; [DROP]; HALT
               (or, with ``calls``: push the arguments, CALL the export, output
               each i32 result as 4 little-endian bytes, ...; HALT)
    then       every function reachable from the entry, in index order
    then       one dispatcher per call_indirect signature
    last       the helper subroutines replacing ops the machine lacks

Only functions reachable from the entry (directly, or through the table for a
call_indirect of their signature) are lowered, so a module may contain code
the machine cannot run as long as it is never called.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmformer.frontend.assemble import Code, Label, Symbol, emit_index_search, index_runs, link
from wasmformer.frontend.decode import PAGE_SIZE, FuncType, Instruction, Module
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.lower_function import Environment, LoweredFunction, lower_function, to_i32, type_reason
from wasmformer.frontend.ops import BASIC_OPS, DEFAULT_NATIVE_OPS
from wasmformer.frontend.program import Instr, Op, TrapReason, VMProgram

# The machine addresses memory bytes through attention lookups keyed by address
# and every byte a program touches costs trace tokens, so it supports only a low
# window of linear memory: 16 KiB holds the C stack, data and a small heap.
# (toolchain.py repeats this value; this one is authoritative.)
DEFAULT_MEMORY_LIMIT = 16384

# Instructions are fetched by prompt position (5 tokens each); 65536 keeps the
# code part of a prompt within ~330K tokens and every pc within 16 bits.
MAX_INSTRUCTIONS = 65536

IO_MODULE = "wasmformer"
IO_IMPORTS = {  # name -> (required signature, the VM instruction that replaces the call)
    "putchar": (FuncType(("i32",), ()), Instr(Op.PUTCHAR)),
    "getchar": (FuncType((), ("i32",)), Instr(Op.GETCHAR)),
}
# Only the helper library (helpers.wat) may import these: a call becomes TRAP <reason>.
HELPER_TRAP_MODULE = "wasmformer_helpers"
HELPER_TRAP_IMPORTS = {
    "trap_divide_by_zero": TrapReason.DIVIDE_BY_ZERO,
    "trap_integer_overflow": TrapReason.INTEGER_OVERFLOW,
}

ENTRY_EXPORTS = ("main", "_start")  # the first one exported is the program's entry
RESULT_BYTES = 4  # an i32 result is output as 4 little-endian bytes
RESULT_SCRATCH_ADDRESS = 0  # where the invoke stub stores a result to read its bytes (restored after)
BITS_PER_BYTE = 8


@dataclass(frozen=True)
class Call:
    """One call made by the entry stub: an exported function with i32 arguments."""
    name: str
    args: tuple[int, ...] = ()
    output: bool = True  # output the results (4 bytes each); otherwise drop them


@dataclass
class _Program:
    """Everything decided about the module before its functions are lowered."""
    module: Module
    unit: str
    native_ops: frozenset[Op]
    memory_limit: int
    memory_pages: int
    global_slots: dict[int, int]
    table: list[int | None]
    rewritten: dict[Op, int] = field(default_factory=dict)
    dispatch_types: dict[FuncType, int] = field(default_factory=dict)
    allow_helper_traps: bool = False  # true only for the helper library


def lower(module: Module, *, native_ops=DEFAULT_NATIVE_OPS, memory_limit: int = DEFAULT_MEMORY_LIMIT,
          calls: list[Call] | None = None, name: str = "program") -> VMProgram:
    """Lower a decoded module; ``calls`` replaces the default entry (main) with explicit calls."""
    native_ops = frozenset(native_ops)
    if not BASIC_OPS <= native_ops:
        missing = ", ".join(sorted(op.value for op in BASIC_OPS - native_ops))
        raise FrontendError(f"the native op set must contain every basic op (missing: {missing})")
    check_imports(module, allow_helper_traps=False)
    pages, window = memory_window(module, memory_limit)
    program = _Program(module, "user", native_ops, window, pages, global_slots(module), initial_table(module))
    globals_ = global_values(module, program.global_slots)
    memory = initial_memory(module, pages, window)
    entry = entry_stub(program, calls)
    lowered = lower_reachable(program, _entry_roots(module, calls))
    pieces = [(Symbol(("entry",)), entry.code)]
    pieces += [(_function_symbol(program.unit, index), lowered[index].code) for index in sorted(lowered)]
    pieces += [(_dispatch_symbol(program, signature), dispatcher(program, signature))
               for signature in program.dispatch_types]
    helper_pieces, helper_aliases, helper_names = helper_code(program)
    linked = link(pieces + helper_pieces, helper_aliases)
    if len(linked.instrs) > MAX_INSTRUCTIONS:
        raise FrontendError(f"the program has {len(linked.instrs)} VM instructions; at most {MAX_INSTRUCTIONS} are supported")
    helper_start = len(linked.instrs) - sum(len(code) for _, code in helper_pieces)
    frame_sizes = [entry.frame_size] + [f.frame_size for f in lowered.values()]
    stats = {
        "functions": len(lowered),
        "rewritten_ops": {op.value: count for op, count in sorted(program.rewritten.items(), key=lambda i: i[0].value)},
        "helpers": helper_names,
        "helper_instructions": len(linked.instrs) - helper_start,
        "helper_pcs": [helper_start, len(linked.instrs)],
        "max_frame_locals": max(frame_sizes),
        "memory_pages": pages,
        "declared_memory_bytes": pages * PAGE_SIZE,
        # i32 results the entry writes to the output (4 bytes each, little-endian): see format_invoke_result
        "output_results": sum(len(module.function_type(_exported_function(module, call.name)).results)
                              for call in calls or () if call.output),
    }
    return VMProgram(instrs=linked.instrs, entry=0, entry_locals=entry.frame_size, globals=globals_,
                     memory=memory, memory_limit=window, name=name, origins=linked.origins, stats=stats)


# --- imports, memory, globals, table --------------------------------------------------------


def check_imports(module: Module, *, allow_helper_traps: bool) -> None:
    for item in module.imports:
        if item.kind == "func" and item.module == IO_MODULE and item.name in IO_IMPORTS:
            expected = IO_IMPORTS[item.name][0]
            if module.types[item.type_index] != expected:
                raise FrontendError(f"import {item.module}.{item.name} must have type {expected}, "
                                    f"not {module.types[item.type_index]}")
        elif allow_helper_traps and item.module == HELPER_TRAP_MODULE and item.name in HELPER_TRAP_IMPORTS:
            continue
        else:
            raise FrontendError(
                f"import {item.module}.{item.name} ({item.kind}) is not supported: a program may only import "
                f"the functions putchar: (i32) -> () and getchar: () -> (i32) from module \"{IO_MODULE}\"")


def memory_window(module: Module, memory_limit: int) -> tuple[int, int]:
    """(declared pages, addressable bytes): the window is the declared memory, capped by the limit."""
    if memory_limit < 0:
        raise FrontendError(f"memory_limit must not be negative (got {memory_limit})")
    if len(module.memories) > 1:
        raise FrontendError(f"the module has {len(module.memories)} memories; multiple memories are not supported")
    if not module.memories:
        return 0, 0
    memory = module.memories[0]
    if memory.is64:
        raise FrontendError("64-bit memories (memory64) are not supported")
    return memory.minimum, min(memory_limit, memory.minimum * PAGE_SIZE)


def constant_value(expression: list[Instruction], known_globals: dict[int, int], what: str) -> int:
    """Evaluate a constant expression (i32.const, global.get, extended-const add/sub/mul)."""
    stack: list[int] = []
    for instruction in expression:
        if instruction.name == "i32.const":
            stack.append(to_i32(instruction.args[0]))
        elif instruction.name == "global.get" and instruction.args[0] in known_globals:
            stack.append(known_globals[instruction.args[0]])
        elif instruction.name in ("i32.add", "i32.sub", "i32.mul") and len(stack) >= 2:
            right, left = stack.pop(), stack.pop()
            combine = {"i32.add": left + right, "i32.sub": left - right, "i32.mul": left * right}
            stack.append(to_i32(combine[instruction.name]))
        else:
            raise FrontendError(f"{what}: constant expression with {instruction.name} is not supported")
    if len(stack) != 1:
        raise FrontendError(f"{what}: not a single i32 constant")
    return stack[0]


def global_slots(module: Module) -> dict[int, int]:
    """wasm global index -> VM global index, for the i32 globals (others are refused when used)."""
    slots: dict[int, int] = {}
    for index, item in enumerate(module.globals):
        if item.value_type == "i32":
            slots[index] = len(slots)
    return slots


def global_values(module: Module, slots: dict[int, int]) -> list[int]:
    values: dict[int, int] = {}
    for index, item in enumerate(module.globals):
        if index in slots:
            values[index] = constant_value(item.init, values, f"global {index}")
    return [values[index] for index in sorted(slots)]


def initial_memory(module: Module, pages: int, window: int) -> bytes:
    """Memory from address 0 with the active data segments applied (up to the last segment byte)."""
    memory = bytearray()
    for number, segment in enumerate(module.data):
        if segment.mode != "active":
            continue  # passive segments are only read by memory.init (bulk memory: refused)
        start = constant_value(segment.offset, {}, f"data segment {number}") % (1 << 32)
        end = start + len(segment.data)
        if end > pages * PAGE_SIZE:
            raise FrontendError(f"data segment {number} ({start}..{end}) lies outside the module's memory of "
                                f"{pages} pages (instantiation would trap: out of bounds memory access)")
        if end > window:
            raise FrontendError(f"data segment {number} ({start}..{end}) lies beyond the memory limit of "
                                f"{window} bytes that the machine addresses")
        if len(memory) < end:
            memory.extend(bytes(end - len(memory)))
        memory[start:end] = segment.data
    return bytes(memory)


def initial_table(module: Module) -> list[int | None]:
    """Table 0 after the active element segments (function index per slot, None = null)."""
    if not module.tables:
        return []
    table: list[int | None] = [None] * module.tables[0].minimum
    for number, segment in enumerate(module.elements):
        if segment.mode != "active":
            continue
        if segment.table != 0:
            raise FrontendError(f"element segment {number} fills table {segment.table}; only table 0 is supported")
        start = constant_value(segment.offset, {}, f"element segment {number}") % (1 << 32)
        if start + len(segment.functions) > len(table):
            raise FrontendError(f"element segment {number} lies outside the table "
                                "(instantiation would trap: out of bounds table access)")
        table[start:start + len(segment.functions)] = segment.functions
    return table


# --- the functions ----------------------------------------------------------------------------


def _function_symbol(unit: str, index: int) -> Symbol:
    return Symbol(("func", unit, index))


def _dispatch_symbol(program: _Program, signature: FuncType) -> Symbol:
    return Symbol(("dispatch", program.unit, str(signature)))


def _environment(program: _Program, name_prefix: str = "") -> Environment:
    module = program.module

    def function_symbol(index: int) -> Symbol | Instr:
        imported = module.imported_functions
        if index >= len(imported):
            return _function_symbol(program.unit, index)
        item = imported[index]
        if item.module == IO_MODULE:
            return IO_IMPORTS[item.name][1]
        return Instr(Op.TRAP, HELPER_TRAP_IMPORTS[item.name])

    def global_slot(index: int, fail) -> int:
        if index not in program.global_slots:
            kind = module.globals[index].value_type
            raise fail(f"global {index} has type {kind}; only i32 globals are supported ({type_reason(kind)})")
        return program.global_slots[index]

    def op_target(op: Op) -> Symbol | None:
        if op in program.native_ops:
            return None
        if program.allow_helper_traps:
            raise FrontendError(f"helper code uses {op.value}, which is not a basic op")
        program.rewritten[op] = program.rewritten.get(op, 0) + 1
        return Symbol(("helper", op.value))

    def dispatch_symbol(type_index: int, table: int) -> Symbol:
        if table != 0:
            raise FrontendError(f"call_indirect through table {table}: only table 0 is supported")
        signature = module.types[type_index]
        program.dispatch_types.setdefault(signature, type_index)
        return _dispatch_symbol(program, signature)

    return Environment(module, program.memory_limit, program.memory_pages, function_symbol,
                       global_slot, op_target, dispatch_symbol, name_prefix, frozenset(program.native_ops))


def lower_reachable(program: _Program, roots: list[int], name_prefix: str = "") -> dict[int, LoweredFunction]:
    """Lower the defined functions reachable from ``roots`` (calls, and the table for call_indirect)."""
    module = program.module
    environment = _environment(program, name_prefix)
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
        for type_index in sorted(function.indirect_types):
            pending += _table_functions(program, module.types[type_index])
    return lowered


def _table_functions(program: _Program, signature: FuncType) -> list[int]:
    module = program.module
    return [f for f in program.table if f is not None and module.function_type(f) == signature]


def dispatcher(program: _Program, signature: FuncType) -> Code:
    """call_indirect: pop the table index, CALL the function in that slot if its type matches, else TRAP."""
    code = Code(f"call_indirect {signature}")
    index_local = 0
    code.emit(Op.LOCAL_SET, index_local)
    module = program.module
    targets = [f if f is not None and module.function_type(f) == signature else None for f in program.table]
    labels = {target: Label() for target in set(targets) | {None}}
    emit_index_search(code, index_local, index_runs(targets, None), labels)
    environment = _environment(program)
    for target, label in labels.items():
        code.place(label)
        if target is None:
            code.emit(Op.TRAP, TrapReason.INDIRECT_CALL)
            continue
        _emit_call(code, environment, target)
        code.emit(Op.RETURN)
    return code


# --- the entry stub -------------------------------------------------------------------------


def _entry_roots(module: Module, calls: list[Call] | None) -> list[int]:
    names = [call.name for call in calls] if calls is not None else [entry_export(module)]
    roots = [_exported_function(module, name) for name in names]
    return ([module.start] if module.start is not None else []) + roots


def entry_export(module: Module) -> str:
    for name in ENTRY_EXPORTS:
        if module.exports.get(name, ("", 0))[0] == "func":
            return name
    raise FrontendError("the module exports no entry function: export 'main' (or '_start') "
                        "of type () -> () or () -> (i32), or use invoke=NAME")


def _exported_function(module: Module, name: str) -> int:
    kind, index = module.exports.get(name, ("", 0))
    if kind != "func":
        exported = ", ".join(sorted(n for n, (k, _) in module.exports.items() if k == "func")) or "none"
        raise FrontendError(f"the module exports no function named '{name}' (exported functions: {exported})")
    return index


@dataclass
class _Entry:
    code: Code
    frame_size: int


def entry_stub(program: _Program, calls: list[Call] | None) -> _Entry:
    module = program.module
    code = Code("entry")
    environment = _environment(program)
    if module.start is not None:
        _emit_call(code, environment, module.start)
    frame_size = 0
    if calls is None:
        _call_main(code, environment, entry_export(module))
    else:
        for call in calls:
            frame_size = max(frame_size, _call_export(code, program, environment, call))
    code.emit(Op.HALT)
    return _Entry(code, frame_size)


def _emit_call(code: Code, environment: Environment, index: int) -> None:
    target = environment.function_symbol(index)
    code.emit(target.op, target.arg) if isinstance(target, Instr) else code.emit(Op.CALL, target)


def _call_main(code: Code, environment: Environment, name: str) -> None:
    index = _exported_function(environment.module, name)
    signature = environment.module.function_type(index)
    if signature.params or signature.results not in ((), ("i32",)):
        raise FrontendError(f"the entry function '{name}' has type {signature}; expected () -> () or () -> (i32)")
    _emit_call(code, environment, index)
    if signature.results:
        code.emit(Op.DROP)  # main's return value is not output


def _call_export(code: Code, program: _Program, environment: Environment, call: Call) -> int:
    """Emit one call of the stub; returns the number of entry-frame locals it uses."""
    index = _exported_function(program.module, call.name)
    signature = program.module.function_type(index)
    for kind in signature.params + signature.results:
        if kind != "i32":
            raise FrontendError(f"cannot invoke '{call.name}' of type {signature}: only i32 parameters and "
                                f"results ({type_reason(kind)})")
    if len(call.args) != len(signature.params):
        raise FrontendError(f"'{call.name}' takes {len(signature.params)} arguments, {len(call.args)} given")
    for value in call.args:
        if not -(1 << 31) <= value < 1 << 32:
            raise FrontendError(f"argument {value} does not fit in 32 bits")
        code.emit(Op.CONST, to_i32(value))
    _emit_call(code, environment, index)
    results = len(signature.results)
    if not call.output:
        for _ in range(results):
            code.emit(Op.DROP)
        return 0
    for slot in reversed(range(results)):
        code.emit(Op.LOCAL_SET, slot)
    if program.memory_limit >= RESULT_SCRATCH_ADDRESS + RESULT_BYTES:
        _output_through_memory(code, results)
        return results + 1
    _output_through_shifts(code, program, environment, results)
    return results


def _output_through_memory(code: Code, results: int) -> None:
    """Store each result at the scratch address and output its bytes with LOAD8_U (memory restored)."""
    saved = results  # the local holding the scratch bytes' previous content
    code.emit(Op.CONST, RESULT_SCRATCH_ADDRESS)
    code.emit(Op.LOAD, 0)
    code.emit(Op.LOCAL_SET, saved)
    for slot in range(results):
        code.emit(Op.CONST, RESULT_SCRATCH_ADDRESS)
        code.emit(Op.LOCAL_GET, slot)
        code.emit(Op.STORE, 0)
        for byte in range(RESULT_BYTES):
            code.emit(Op.CONST, RESULT_SCRATCH_ADDRESS)
            code.emit(Op.LOAD8_U, byte)
            code.emit(Op.PUTCHAR)
    code.emit(Op.CONST, RESULT_SCRATCH_ADDRESS)
    code.emit(Op.LOCAL_GET, saved)
    code.emit(Op.STORE, 0)


def _output_through_shifts(code: Code, program: _Program, environment: Environment, results: int) -> None:
    """Without a memory: output (value >> 8k) for k = 0..3 (PUTCHAR keeps the low byte)."""
    for slot in range(results):
        for byte in range(RESULT_BYTES):
            code.emit(Op.LOCAL_GET, slot)
            if byte:
                code.emit(Op.CONST, BITS_PER_BYTE * byte)
                helper = environment.op_target(Op.SHR_U)
                code.emit(Op.CALL, helper) if helper is not None else code.emit(Op.SHR_U)
            code.emit(Op.PUTCHAR)


# --- helpers ----------------------------------------------------------------------------------


def helper_code(program: _Program) -> tuple[list[tuple[Symbol, Code]], dict[Symbol, Symbol], list[str]]:
    """The helper subroutines for the rewritten ops; Symbol("helper", op name) aliases each entry."""
    if not program.rewritten:
        return [], {}, []
    from wasmformer.frontend.helpers import lower_helpers

    return lower_helpers(sorted(op.value for op in program.rewritten))


def helper_program(module: Module) -> _Program:
    """The _Program for the helper library: basic ops only, trap imports allowed."""
    check_imports(module, allow_helper_traps=True)
    return _Program(module, "helpers", BASIC_OPS, 0, 0, global_slots(module), initial_table(module),
                    allow_helper_traps=True)

