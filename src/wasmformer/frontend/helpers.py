"""The helper library (helpers.wat), lowered by the front end itself and linked on demand.

``lower_helpers(names, memory_limit, memory_pages)`` returns the code of the
helpers named (export names = VM op names, e.g. "mul", or the names the
lowering calls for bulk memory, e.g. "memory_fill") and of every helper they call, each function under
its own symbol, plus an alias Symbol("helper", name) for each entry point.

The WASI functions (wasi.wat, export "wasi:NAME" for the import
wasi_snapshot_preview1.NAME) are part of the same library: ``helper_library``
splices them in, with ``args_sizes_get`` and ``args_get`` generated for the
program's arguments (known when it is compiled: they are written into the code
as constant stores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from wasmformer.frontend.assemble import Code, Symbol
from wasmformer.frontend.decode import FuncType, decode_module
from wasmformer.frontend.units import WASI_EXPORT_PREFIX, helper_program, lower_reachable, symbol_of_function
from wasmformer.vm.ops import BASIC_OPS
from wasmformer.vm.program import Op

HELPERS_SOURCE = Path(__file__).with_name("helpers.wat")
WASI_SOURCE = Path(__file__).with_name("wasi.wat")
HELPER_NAME_PREFIX = "helper "  # function names in origins and messages


def helper_library(argv: Sequence[bytes] = ()):
    """The decoded helper module, WASI functions included, with args_get giving ``argv`` (compiled from WAT on
    each call: no cached state)."""
    import wasmtime  # only when a program needs a helper: wasmtime is slow to import

    helpers = HELPERS_SOURCE.read_text().rstrip()
    assert helpers.endswith(")"), "helpers.wat must end with the module's closing parenthesis"
    text = helpers[:-1] + WASI_SOURCE.read_text() + args_functions(argv) + ")\n"
    return decode_module(wasmtime.wat2wasm(text))


def args_functions(argv: Sequence[bytes]) -> str:
    """WASI args_sizes_get and args_get for these arguments (argv[0] is the program's name), as WAT: constant
    stores of the pointers and the NUL-terminated strings."""
    offsets, buffer = [], bytearray()
    for argument in argv:
        offsets.append(len(buffer))
        buffer += bytes(argument) + b"\0"
    pointers = "".join(f"\n    (i32.store offset={4 * index} (local.get $argv) "
                       f"(i32.add (local.get $buffer) (i32.const {offset})))" for index, offset in enumerate(offsets))
    strings = "".join(f"\n    (i32.store8 offset={index} (local.get $buffer) (i32.const {byte}))"
                      for index, byte in enumerate(buffer))
    return f"""
  (func $wasi_args_sizes_get (export "wasi:args_sizes_get") (param $count_at i32) (param $size_at i32) (result i32)
    (i32.store (local.get $count_at) (i32.const {len(offsets)}))
    (i32.store (local.get $size_at) (i32.const {len(buffer)}))
    (i32.const 0))
  (func $wasi_args_get (export "wasi:args_get") (param $argv i32) (param $buffer i32) (result i32){pointers}{strings}
    (i32.const 0))
"""


def wasi_signatures() -> dict[str, FuncType]:
    """The WASI preview1 functions the machine provides: name -> type (the type the import must have)."""
    module = helper_library()
    return {name.removeprefix(WASI_EXPORT_PREFIX): module.function_type(index)
            for name, (kind, index) in module.exports.items() if kind == "func" and name.startswith(WASI_EXPORT_PREFIX)}


def lower_helpers(names: list[str], memory_limit: int, memory_pages: int,
                  native_ops: frozenset[Op] = BASIC_OPS, argv: Sequence[bytes] = ()
                  ) -> tuple[list[tuple[Symbol, Code]], dict[Symbol, Symbol], list[str]]:
    """The helpers ``names`` lowered for a program with that memory reach and initial size, on a machine
    with ``native_ops``; with them, the helpers of the ops they use that the machine lacks. ``argv``: what
    the WASI args functions give."""
    module = helper_library(argv)
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
