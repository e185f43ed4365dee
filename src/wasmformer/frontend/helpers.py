"""The helper library (helpers.wat), lowered by the front end itself and linked on demand.

``lower_helpers(names, memory_limit, memory_pages)`` returns the code of the
helpers named (export names = VM op names, e.g. "mul", or the names the
lowering calls for bulk memory, e.g. "memory_fill") and of every helper they call, each function under
its own symbol, plus an alias Symbol("helper", name) for each entry point.
"""

from __future__ import annotations

from pathlib import Path

from wasmformer.frontend.assemble import Code, Symbol
from wasmformer.frontend.decode import decode_module
from wasmformer.frontend.units import helper_program, lower_reachable, symbol_of_function
from wasmformer.vm.ops import BASIC_OPS
from wasmformer.vm.program import Op

HELPERS_SOURCE = Path(__file__).with_name("helpers.wat")
HELPER_NAME_PREFIX = "helper "  # function names in origins and messages


def helper_library():
    """The decoded helper module (compiled from WAT on each call: no cached state)."""
    import wasmtime  # only when a program needs a helper: wasmtime is slow to import

    return decode_module(wasmtime.wat2wasm(HELPERS_SOURCE.read_text()))


def lower_helpers(names: list[str], memory_limit: int, memory_pages: int,
                  native_ops: frozenset[Op] = BASIC_OPS) -> tuple[list[tuple[Symbol, Code]], dict[Symbol, Symbol],
                                                                 list[str]]:
    """The helpers ``names`` lowered for a program with that memory reach and initial size, on a machine
    with ``native_ops``; with them, the helpers of the ops they use that the machine lacks."""
    module = helper_library()
    names = sorted(set(names))
    while True:  # until the helpers' own rewritten ops are among the names
        program = helper_program(module, memory_limit, memory_pages, native_ops)
        roots = [module.exports[name][1] for name in names]
        lowered = lower_reachable(program, roots, HELPER_NAME_PREFIX)
        needed = sorted(set(names) | {op.value for op in program.rewritten})
        if needed == names:
            break
        names = needed
    pieces = [(symbol_of_function(program.unit, index), lowered[index].code) for index in sorted(lowered)]
    aliases = {Symbol(("helper", name)): symbol_of_function(program.unit, module.exports[name][1]) for name in names}
    linked_names = [module.function_name(index) for index in sorted(lowered)]
    return pieces, aliases, linked_names
