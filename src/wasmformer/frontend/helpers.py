"""The helper library (helpers.wat), lowered by the front end itself and linked on demand.

``lower_helpers(names)`` returns the code of the helpers named (export names =
VM op names, e.g. "mul") and of every helper they call, each function under
its own symbol, plus an alias Symbol("helper", name) for each entry point.
"""

from __future__ import annotations

from pathlib import Path

from wasmformer.frontend.assemble import Code, Symbol

HELPERS_SOURCE = Path(__file__).with_name("helpers.wat")
HELPER_NAME_PREFIX = "helper "  # function names in origins and messages


def helper_library():
    """The decoded helper module (compiled from WAT on each call: no cached state)."""
    import wasmtime

    from wasmformer.frontend.decode import decode_module

    return decode_module(wasmtime.wat2wasm(HELPERS_SOURCE.read_text()))


def lower_helpers(names: list[str]) -> tuple[list[tuple[Symbol, Code]], dict[Symbol, Symbol], list[str]]:
    from wasmformer.frontend.lower import _function_symbol, helper_program, lower_reachable

    module = helper_library()
    program = helper_program(module)
    roots = [module.exports[name][1] for name in names]
    lowered = lower_reachable(program, roots, HELPER_NAME_PREFIX)
    pieces = [(_function_symbol(program.unit, index), lowered[index].code) for index in sorted(lowered)]
    aliases = {Symbol(("helper", name)): _function_symbol(program.unit, module.exports[name][1]) for name in names}
    linked_names = [module.function_name(index) for index in sorted(lowered)]
    return pieces, aliases, linked_names
