"""Run a wasm module under wasmtime: the independent output oracle for tests.

Test oracle only: nothing on the program's run path may call this. The machine's
answer comes from the transformer; wasmtime is what it is checked against.

I/O convention (shared with wasmformer.h and the machine): the module imports
from module "wasmformer" exactly ``putchar: (i32) -> ()`` (emit the low byte) and
``getchar: () -> i32`` (next input byte 0..255, or -1 at end of input), and
exports ``main: () -> i32`` or ``() -> ()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import wasmtime

IMPORT_MODULE = "wasmformer"
ENTRY_EXPORT = "main"
END_OF_INPUT = -1

# Fuel budget when the caller sets none: fuel is still metered so that every run
# reports how many instructions it executed. wasmtime charges about one unit per
# executed wasm instruction (block/loop/end/nop/drop cost nothing).
UNLIMITED_FUEL = 2**62

# Link flags that export the layout symbols execute_wasm needs for a memory profile.
# Pass them as compile_c(..., extra_flags=PROFILE_LINK_FLAGS).
PROFILE_SYMBOLS = ("__stack_low", "__stack_high", "__heap_base")
PROFILE_LINK_FLAGS = tuple(f"-Wl,--export={symbol}" for symbol in PROFILE_SYMBOLS)

# Byte written over the stack and the free memory before main runs; any byte that
# differs afterwards was written by the program. (A program that writes exactly
# this value over untouched memory would hide that write: good enough for a
# high-water mark.)
UNTOUCHED_MEMORY_BYTE = 0xA5


class WasmOracleError(Exception):
    """The module could not be run under wasmtime, or it trapped."""


@dataclass(frozen=True)
class MemoryProfile:
    """Where a run touched linear memory (see PROFILE_LINK_FLAGS)."""

    stack_bytes_used: int  # depth the C stack reached below __stack_high
    heap_base: int  # first byte after the static data
    memory_end: int  # one past the highest byte the program wrote or owns statically


@dataclass(frozen=True)
class WasmtimeRun:
    output: bytes
    instructions: int  # wasm instructions executed, as wasmtime fuel
    exit_value: int | None  # main's return value (None for a void main)
    memory: MemoryProfile | None  # None unless the module exports PROFILE_SYMBOLS


def run_wasm(wasm_bytes: bytes, input_bytes: bytes = b"", fuel: int | None = None) -> bytes:
    """Run ``main`` with the given input bytes and return the bytes it printed.

    Raises WasmOracleError on a trap, on running out of ``fuel`` (wasm
    instructions) or when the module does not follow the I/O convention.
    """
    return execute_wasm(wasm_bytes, input_bytes, fuel).output


def execute_wasm(wasm_bytes: bytes, input_bytes: bytes = b"", fuel: int | None = None) -> WasmtimeRun:
    """Like run_wasm, also reporting the instruction count and memory use."""
    store = _fuelled_store(UNLIMITED_FUEL if fuel is None else fuel)
    module = _load_module(store.engine, wasm_bytes)
    output = bytearray()
    instance = _instantiate(store, module, _host_functions(store, input_bytes, output))
    exports = instance.exports(store)
    main = _entry_point(exports, store)
    profile_regions = _fill_untouched_memory(store, exports)
    fuel_before = store.get_fuel()
    try:
        exit_value = main(store)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
        raise WasmOracleError(f"wasm trapped after printing {bytes(output)!r}: {trap}") from None
    instructions = fuel_before - store.get_fuel()
    memory = _memory_profile(store, exports, profile_regions) if profile_regions else None
    return WasmtimeRun(bytes(output), instructions, exit_value, memory)


def _fuelled_store(fuel: int) -> wasmtime.Store:
    config = wasmtime.Config()
    config.consume_fuel = True
    store = wasmtime.Store(wasmtime.Engine(config))
    store.set_fuel(fuel)
    return store


def _load_module(engine: wasmtime.Engine, wasm_bytes: bytes) -> wasmtime.Module:
    try:
        return wasmtime.Module(engine, wasm_bytes)
    except wasmtime.WasmtimeError as error:
        raise WasmOracleError(f"wasmtime rejected the module: {error}") from None


def _host_functions(store: wasmtime.Store, input_bytes: bytes, output: bytearray) -> dict[str, wasmtime.Func]:
    """putchar appends to ``output``; getchar walks ``input_bytes``, then returns -1 forever."""
    next_input_index = [0]

    def putchar(byte: int) -> None:
        output.append(byte & 0xFF)

    def getchar() -> int:
        index = next_input_index[0]
        if index >= len(input_bytes):
            return END_OF_INPUT
        next_input_index[0] = index + 1
        return input_bytes[index]

    i32 = wasmtime.ValType.i32()
    return {
        "putchar": wasmtime.Func(store, wasmtime.FuncType([i32], []), putchar),
        "getchar": wasmtime.Func(store, wasmtime.FuncType([], [i32]), getchar),
    }


def _instantiate(
    store: wasmtime.Store, module: wasmtime.Module, host_functions: dict[str, wasmtime.Func]
) -> wasmtime.Instance:
    imports = []
    for wanted in module.imports:
        if wanted.module != IMPORT_MODULE or wanted.name not in host_functions:
            raise WasmOracleError(
                f"unsupported import {wanted.module}.{wanted.name}: only "
                f"{IMPORT_MODULE}.putchar and {IMPORT_MODULE}.getchar exist"
            )
        imports.append(host_functions[wanted.name])
    try:
        return wasmtime.Instance(store, module, imports)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
        raise WasmOracleError(f"could not instantiate the module: {error}") from None


def _entry_point(exports, store: wasmtime.Store) -> Callable:
    main = exports.get(ENTRY_EXPORT) if hasattr(exports, "get") else None
    if not isinstance(main, wasmtime.Func):
        raise WasmOracleError(f"the module exports no function named {ENTRY_EXPORT!r}")
    main_type = main.type(store)
    if main_type.params or len(main_type.results) > 1:
        raise WasmOracleError(f"{ENTRY_EXPORT} must take no arguments and return at most one i32")
    return main


def _fill_untouched_memory(store: wasmtime.Store, exports) -> dict[str, int] | None:
    """Paint the stack and the free memory so the writes of the run can be found later."""
    layout = {symbol: exports.get(symbol) for symbol in PROFILE_SYMBOLS}
    memory = exports.get("memory")
    if not isinstance(memory, wasmtime.Memory) or not all(isinstance(g, wasmtime.Global) for g in layout.values()):
        return None
    regions = {symbol: glob.value(store) for symbol, glob in layout.items()}
    memory_size = memory.data_len(store)
    paint = UNTOUCHED_MEMORY_BYTE
    memory.write(store, bytes([paint]) * (regions["__stack_high"] - regions["__stack_low"]), regions["__stack_low"])
    memory.write(store, bytes([paint]) * (memory_size - regions["__heap_base"]), regions["__heap_base"])
    return regions


def _memory_profile(store: wasmtime.Store, exports, regions: dict[str, int]) -> MemoryProfile:
    memory = exports["memory"]
    contents = memory.read(store, 0, memory.data_len(store))
    stack_low, stack_high, heap_base = regions["__stack_low"], regions["__stack_high"], regions["__heap_base"]
    stack_written = [address for address in range(stack_low, stack_high) if contents[address] != UNTOUCHED_MEMORY_BYTE]
    heap_written = [
        address for address in range(heap_base, len(contents)) if contents[address] != UNTOUCHED_MEMORY_BYTE
    ]
    stack_bytes_used = stack_high - min(stack_written) if stack_written else 0
    memory_end = max(heap_written) + 1 if heap_written else heap_base
    return MemoryProfile(stack_bytes_used, heap_base, memory_end)
