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

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from wasmformer.frontend.assemble import Code, Symbol
from wasmformer.frontend.decode import FuncType, Module, decode_module
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.words import is_float_arithmetic
from wasmformer.frontend.units import WASI_EXPORT_PREFIX, helper_program, lower_reachable, symbol_of_function
from wasmformer.vm.ops import BASIC_OPS
from wasmformer.vm.program import Op

HELPERS_SOURCE = Path(__file__).with_name("helpers.wat")
FLOAT_LIBRARY_SOURCE = Path(__file__).with_name("softfloat.c")
FLOAT_UNIT = "floats"
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


@dataclass
class HelperLibraries:
    """The decoded helper modules for one argv, to lower many programs with (the spec harness lowers one per
    assertion: decoding helpers.wat each time was most of its time). The float library is decoded on first
    need. Owned by its caller: there is no module-level cache."""
    argv: tuple[bytes, ...]
    helpers: Module
    floats: Module | None = None

    def float_module(self) -> Module:
        if self.floats is None:
            self.floats = float_library()
        return self.floats


def helper_libraries(argv: Sequence[bytes] = ()) -> HelperLibraries:
    return HelperLibraries(tuple(bytes(argument) for argument in argv), helper_library(argv))


def float_library():
    """The decoded float library (frontend/softfloat.c, built with zig's compiler_rt; cached on disk)."""
    from wasmformer.frontend.toolchain import compile_float_library

    return decode_module(compile_float_library(FLOAT_LIBRARY_SOURCE))


def lower_helpers(names: list[str], memory_limit: int, memory_pages: int,
                  native_ops: frozenset[Op] = BASIC_OPS, argv: Sequence[bytes] = (),
                  libraries: HelperLibraries | None = None
                  ) -> tuple[list[tuple[Symbol, Code]], dict[Symbol, Symbol], list[str]]:
    """The helpers ``names`` lowered for a program with that memory reach and initial size, on a machine
    with ``native_ops``; with them, the helpers they use in turn (ops the machine lacks, float instructions).
    ``argv``: what the WASI args functions give; ``libraries``: the decoded modules to use (when made for
    that argv; otherwise they are decoded here).

    Two libraries provide them, each lowered as a unit of its own: helpers.wat (with wasi.wat) and, for the
    float instructions it does not define, the float library (softfloat.c). The float library has no memory
    of its own and no globals: it is lowered with no memory reach (an access would trap, never touch the
    program's memory) and no global slots (a global.get is refused).
    """
    if libraries is None or libraries.argv != tuple(bytes(argument) for argument in argv):
        libraries = helper_libraries(argv)
    units = [("helpers", libraries.helpers, memory_limit, memory_pages, None)]
    names = set(names)
    while True:  # until every helper the lowered ones use is among the names
        if len(units) == 1 and any(is_float_arithmetic(name) and name not in libraries.helpers.exports
                                   for name in names):
            units.append((FLOAT_UNIT, libraries.float_module(), 0, 0, {}))
        pieces, aliases, linked_names, needed, provided = [], {}, [], set(names), set()
        for unit, module, reach, pages, slots in units:
            mine = sorted(name for name in names if name in module.exports and name not in provided)
            provided |= set(mine)
            if not mine:
                continue
            program = helper_program(module, reach, pages, native_ops, unit, slots)
            lowered = lower_reachable(program, [module.exports[name][1] for name in mine], HELPER_NAME_PREFIX)
            needed |= {op.value for op in program.rewritten} | set(program.helper_calls)
            pieces += [(symbol_of_function(unit, index), lowered[index].code) for index in sorted(lowered)]
            aliases.update({Symbol(("helper", name)): symbol_of_function(unit, module.exports[name][1])
                            for name in mine})
            linked_names += [module.function_name(index) for index in sorted(lowered)]
        if names - provided:
            raise FrontendError(f"no helper provides {', '.join(sorted(names - provided))}")
        if needed == names:
            return pieces, aliases, linked_names
        names = needed
