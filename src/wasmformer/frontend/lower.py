"""A decoded wasm module -> a VMProgram (docs/vm-program.md describes the result).

Layout of the program:

    pc 0       the entry stub: [CALL start]; CALL main; [DROP]; HALT
               (or, with ``calls``: push the arguments, CALL the export, output
               each i32 result as 4 little-endian bytes, ...; HALT)
    then       every function reachable from the entry, in index order
    then       one dispatcher per call_indirect signature and table
    last       the helper subroutines replacing ops the machine lacks

Only functions reachable from the entry (directly, or through a table for a
call_indirect of their signature on that table) are lowered, so a module may
contain code the machine cannot run as long as it is never called.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmformer.frontend.assemble import Code, Label, Symbol, emit_index_search, index_runs, link
from wasmformer.frontend.decode import PAGE_SIZE, FuncType, Module
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.helpers import HelperLibraries, lower_helpers, wasi_signatures
from wasmformer.frontend.lower_function import Environment, signature_words, to_i32
from wasmformer.frontend.segments import segment_init_code, segment_lengths
from wasmformer.frontend.units import (WASI_MODULE, ModuleUnit, check_imports, constant_value, global_slots, initial_tables,
                                       lower_reachable, make_environment, symbol_of_dispatcher, symbol_of_function,
                                       symbol_of_segment, table_functions)
from wasmformer.machine import tokens as T
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.vm.ops import BASIC_OPS, WORD_BITS, value_to_words
from wasmformer.vm.program import Instr, Op, TrapReason, VMProgram, origin_key

# The most linear memory a program may have, initially and after memory.grow:
# the machine's (machine/tokens.py, docs/machine.md "Memory banks").
DEFAULT_MEMORY_LIMIT = T.MAX_MEMORY

# Instructions are fetched by prompt position (5 tokens each); 65536 keeps the
# code part of a prompt within ~330K tokens and every pc within 16 bits.
MAX_INSTRUCTIONS = 65536

WASM32_MAX_PAGES = 65536  # 4 GiB: a 32-bit memory's largest size

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


def lower(module: Module, *, native_ops=None, memory_limit: int = DEFAULT_MEMORY_LIMIT,
          calls: list[Call] | None = None, name: str = "program", argv: list[bytes] | None = None,
          libraries: HelperLibraries | None = None) -> VMProgram:
    """Lower a decoded module; ``calls`` replaces the default entry (main) with explicit calls.

    ``native_ops`` is the op set the target executes (default: the universal
    machine's); the front end rewrites the others into helper calls. ``argv``
    is what WASI's args_get gives the program (default: its name alone). ``libraries``: decoded helper
    modules to reuse across calls (frontend/helpers.py).
    """
    native_ops = MACHINE_OPS if native_ops is None else frozenset(native_ops)
    if not BASIC_OPS <= native_ops:
        missing = ", ".join(sorted(op.value for op in BASIC_OPS - native_ops))
        raise FrontendError(f"the native op set must contain every basic op (missing: {missing})")
    uses_wasi = any(item.module == WASI_MODULE for item in module.imports)
    check_imports(module, allow_helper_traps=False, wasi=wasi_signatures() if uses_wasi else None)
    pages, growable, declared_growable = memory_pages(module, memory_limit)
    reach = (pages + growable) * PAGE_SIZE  # the most memory the program can have
    program = ModuleUnit(module, "user", native_ops, reach, pages, global_slots(module), initial_tables(module))
    globals_ = global_values(module, program.global_slots)
    program.segment_global_base = len(globals_)
    memory = initial_memory(module, pages)
    entry = entry_stub(program, calls)
    lowered = lower_reachable(program, _entry_roots(module, calls))
    unsupported = {function.code.name: function.unsupported for function in lowered.values() if function.unsupported}
    pieces = [(Symbol(("entry",)), entry.code)]
    pieces += [(symbol_of_function(program.unit, index), lowered[index].code) for index in sorted(lowered)]
    pieces += [(symbol_of_dispatcher(program, signature, table), dispatcher(program, signature, table))
               for signature, table in program.dispatch_types]
    lengths = segment_lengths(module)
    globals_ += [lengths[index] for index in sorted(program.segment_globals, key=program.segment_globals.get)]
    initialised = sorted({index for function in lowered.values() for index in function.segment_inits})
    pieces += [(symbol_of_segment(program, index), segment_init_code(f"memory.init segment {index}",
                                                                     module.data[index].data,
                                                                     program.segment_globals[index]))
               for index in initialised]
    helper_pieces, helper_aliases, helper_names = helper_code(program, [name.encode()] if argv is None else argv,
                                                                libraries)
    linked = link(pieces + helper_pieces, helper_aliases)
    if len(linked.instrs) > MAX_INSTRUCTIONS:
        raise FrontendError(f"the program has {len(linked.instrs)} VM instructions; at most {MAX_INSTRUCTIONS} are supported")
    helper_start = len(linked.instrs) - sum(len(code) for _, code in helper_pieces)
    frame_sizes = [entry.frame_size] + [f.frame_size for f in lowered.values()]
    stats = {
        "functions": len(lowered),
        "rewritten_ops": {op.value: count for op, count in sorted(program.rewritten.items(), key=lambda i: i[0].value)},
        "helper_calls": dict(sorted(program.helper_calls.items())),  # bulk memory instruction -> call sites
        "helpers": helper_names,
        "helper_instructions": len(linked.instrs) - helper_start,
        "helper_pcs": [helper_start, len(linked.instrs)],
        "max_frame_locals": max(frame_sizes),
        "memory_pages": pages,
        "growable_pages": growable,
        # memory.grow fails past `growable` pages where wasm would still grow (the machine's limit)
        "grow_limited_by_machine": declared_growable > growable,
        # the types of the results the entry writes to the output (4 little-endian bytes per word): see
        # format_invoke_result
        "output_result_types": [kind for call in calls or () if call.output
                                for kind in module.function_type(_exported_function(module, call.name)).results],
        # wasm instruction -> name of each float instruction lowered to TRAP UNSUPPORTED (machine/execute.py
        # names the one a run reached)
        "unsupported": {origin_key(name, position): instruction for name, positions in unsupported.items()
                        for position, instruction in positions.items()},
    }
    return VMProgram(instrs=linked.instrs, entry=0, entry_locals=entry.frame_size, globals=globals_,
                     memory=memory, memory_limit=pages * PAGE_SIZE, growable_pages=growable, name=name,
                     origins=linked.origins, stats=stats)


# --- imports, memory, globals, table --------------------------------------------------------


def memory_pages(module: Module, memory_limit: int) -> tuple[int, int, int]:
    """(initial pages, pages memory.grow may add on the machine, pages it may add in wasm).

    The machine holds at most ``memory_limit`` bytes: a module that starts
    with more is refused; memory.grow returns -1 past it (or past the
    module's declared maximum, as in wasm).
    """
    if memory_limit < 0:
        raise FrontendError(f"memory_limit must not be negative (got {memory_limit})")
    if len(module.memories) > 1:
        raise FrontendError(f"the module has {len(module.memories)} memories; multiple memories are not supported")
    if not module.memories:
        return 0, 0, 0
    memory = module.memories[0]
    if memory.is64:
        raise FrontendError("64-bit memories (memory64) are not supported")
    machine_pages = memory_limit // PAGE_SIZE
    if memory.minimum > machine_pages:
        raise FrontendError(f"the module's memory starts at {memory.minimum} pages ({memory.minimum * PAGE_SIZE:,} "
                            f"bytes), more memory than the machine has: {machine_pages} pages "
                            f"({machine_pages * PAGE_SIZE:,} bytes)")
    declared_max = WASM32_MAX_PAGES if memory.maximum is None else min(memory.maximum, WASM32_MAX_PAGES)
    return memory.minimum, min(declared_max, machine_pages) - memory.minimum, declared_max - memory.minimum


def global_values(module: Module, slots: dict[int, tuple[int, int]]) -> list[int]:
    """The VM globals' initial words (a wasm global of two words fills two VM globals, low word first)."""
    values: dict[int, int] = {}
    words: list[int] = []
    for index, item in enumerate(module.globals):
        if index in slots:
            values[index] = constant_value(item.init, values, f"global {index}")
            words += [to_i32(word) for word in value_to_words(values[index], slots[index][1])]
    return words


def initial_memory(module: Module, pages: int) -> bytes:
    """Memory from address 0 with the active data segments applied (up to the last segment byte)."""
    memory = bytearray()
    for number, segment in enumerate(module.data):
        if segment.mode != "active":
            continue  # passive segments are only read by memory.init (refused: lower_function)
        start = constant_value(segment.offset, {}, f"data segment {number}") % (1 << 32)
        end = start + len(segment.data)
        if end > pages * PAGE_SIZE:
            raise FrontendError(f"data segment {number} ({start}..{end}) lies outside the module's memory of "
                                f"{pages} pages (instantiation would trap: out of bounds memory access)")
        if len(memory) < end:
            memory.extend(bytes(end - len(memory)))
        memory[start:end] = segment.data
    return bytes(memory)


# --- call_indirect dispatchers ---------------------------------------------------------------


def dispatcher(program: ModuleUnit, signature: FuncType, table: int) -> Code:
    """call_indirect: pop the table index, CALL the function in that slot if its type matches, else TRAP.

    Out of range, null and mismatched slots all reach the one TRAP INDIRECT_CALL
    (wasm's "undefined element", "uninitialized element" and "indirect call
    type mismatch"; docs/vm-program.md).
    """
    code = Code(f"call_indirect {signature} table {table}")
    index_local = 0
    code.emit(Op.LOCAL_SET, index_local)
    targets = table_functions(program, signature, table)
    labels = {target: Label() for target in dict.fromkeys(targets + [None])}  # first-seen order: deterministic
    emit_index_search(code, index_local, index_runs(targets, None), labels)
    environment = make_environment(program)
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


def entry_stub(program: ModuleUnit, calls: list[Call] | None) -> _Entry:
    module = program.module
    code = Code("entry")
    environment = make_environment(program)
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
        code.emit(Op.EXIT)  # main's return value is the exit status, as in C


def _call_export(code: Code, program: ModuleUnit, environment: Environment, call: Call) -> int:
    """Emit one call of the stub; returns the number of entry-frame locals it uses."""
    index = _exported_function(program.module, call.name)
    signature = program.module.function_type(index)
    params, result_words = signature_words(program.module, f"cannot invoke '{call.name}'", signature)
    if len(call.args) != len(params):
        raise FrontendError(f"'{call.name}' takes {len(params)} arguments, {len(call.args)} given")
    for value, words in zip(call.args, params):
        bits = WORD_BITS * words
        if not -(1 << (bits - 1)) <= value < 1 << bits:
            raise FrontendError(f"argument {value} does not fit in {bits} bits")
        for word in value_to_words(value, words):
            code.emit(Op.CONST, to_i32(word))
    _emit_call(code, environment, index)
    results = sum(result_words)  # each word is output as 4 bytes
    if not call.output:
        for _ in range(results):
            code.emit(Op.DROP)
        return 0
    for slot in reversed(range(results)):
        code.emit(Op.LOCAL_SET, slot)
    if program.memory_pages * PAGE_SIZE >= RESULT_SCRATCH_ADDRESS + RESULT_BYTES:  # memory never shrinks
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


def _output_through_shifts(code: Code, program: ModuleUnit, environment: Environment, results: int) -> None:
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


def helper_code(program: ModuleUnit, argv: list[bytes], libraries: HelperLibraries | None = None
                ) -> tuple[list[tuple[Symbol, Code]], dict[Symbol, Symbol], list[str]]:
    """The helper subroutines for the rewritten ops and the bulk memory instructions.

    Symbol("helper", name) aliases each entry (the op's name, or the name the
    lowering called, e.g. "memory_fill").
    """
    names = sorted({op.value for op in program.rewritten} | set(program.helper_calls))
    if not names:
        return [], {}, []
    return lower_helpers(names, program.memory_limit, program.memory_pages, program.native_ops, argv, libraries)


