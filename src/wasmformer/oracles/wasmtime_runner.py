"""Run a wasm module under wasmtime: the independent output oracle for tests.

Test oracle only: nothing on the program's run path may call this. The machine's
answer comes from the transformer; wasmtime is what it is checked against.

Two kinds of module run here:

* a WASI command (C compiled against wasi-libc, or any module importing
  ``wasi_snapshot_preview1``): wasmtime's own WASI with the given argv, the
  input as stdin, stdout and stderr captured, ``_start`` called; proc_exit's
  status is the run's exit status;
* a module with the machine's own I/O: it imports from module "wasmformer"
  ``putchar: (i32) -> ()`` (emit the low byte), ``getchar: () -> i32`` (next
  input byte 0..255, or -1 at end of input), ``putchar_err: (i32) -> ()``
  (a stderr byte) and ``exit: (i32) -> ()``, and exports ``main: () -> i32``
  or ``() -> ()``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import wasmtime

IMPORT_MODULE = "wasmformer"
WASI_MODULE = "wasi_snapshot_preview1"
ENTRY_EXPORT = "main"
WASI_ENTRY_EXPORT = "_start"
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
    exit_value: int | None  # main's return value (None for a void main; a WASI command: its exit status)
    memory: MemoryProfile | None  # None unless the module exports PROFILE_SYMBOLS
    errors: bytes = b""  # what it wrote to stderr
    exit_status: int = 0  # as a shell sees it: exit(n) / proc_exit(n) & 0xff, main's return value & 0xff

    @property
    def trapped(self) -> bool:
        return False


@dataclass(frozen=True)
class WasmtimeTrap:
    """A run that trapped (abort(), a failed assert, a wasm trap): what it wrote before, and wasmtime's message."""

    output: bytes
    errors: bytes
    message: str

    @property
    def trapped(self) -> bool:
        return True


def run_wasm(wasm_bytes: bytes, input_bytes: bytes = b"", fuel: int | None = None) -> bytes:
    """Run ``main`` with the given input bytes and return the bytes it printed.

    Raises WasmOracleError on a trap, on running out of ``fuel`` (wasm
    instructions) or when the module does not follow the I/O convention.
    """
    return execute_wasm(wasm_bytes, input_bytes, fuel).output


def execute_wasm(wasm_bytes: bytes, input_bytes: bytes = b"", fuel: int | None = None,
                 argv: list[bytes] | None = None) -> WasmtimeRun:
    """Like run_wasm, also reporting the instruction count, stderr, exit status and memory use. ``argv``: a
    WASI command's arguments (default: ["program"])."""
    result = run_program(wasm_bytes, input_bytes, fuel, argv)
    if isinstance(result, WasmtimeTrap):
        raise WasmOracleError(f"wasm trapped after printing {result.output!r}: {result.message}")
    return result


def run_program(wasm_bytes: bytes, input_bytes: bytes = b"", fuel: int | None = None,
                argv: list[bytes] | None = None) -> WasmtimeRun | WasmtimeTrap:
    """The module's run: a WasmtimeRun, or a WasmtimeTrap when it trapped (abort, assert, a wasm trap)."""
    store = _fuelled_store(UNLIMITED_FUEL if fuel is None else fuel)
    module = _load_module(store.engine, wasm_bytes)
    if any(item.module == WASI_MODULE for item in module.imports):
        return _run_wasi(store, module, input_bytes, argv or [b"program"])
    output, errors, status = bytearray(), bytearray(), [None]
    instance = _instantiate(store, module, _host_functions(store, input_bytes, output, errors, status))
    exports = instance.exports(store)
    main = _entry_point(exports, store)
    profile_regions = _fill_untouched_memory(store, exports)
    fuel_before = store.get_fuel()
    try:
        exit_value = main(store)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:
        if status[0] is None:
            return WasmtimeTrap(bytes(output), bytes(errors), str(trap))
        exit_value = status[0]  # the exit import stopped the run
    instructions = fuel_before - store.get_fuel()
    memory = _memory_profile(store, exports, profile_regions) if profile_regions else None
    exit_status = status[0] if status[0] is not None else (exit_value or 0)
    return WasmtimeRun(bytes(output), instructions, exit_value, memory, bytes(errors), exit_status & 0xFF)


def _run_wasi(store: wasmtime.Store, module: wasmtime.Module, input_bytes: bytes,
              argv: list[bytes]) -> WasmtimeRun | WasmtimeTrap:
    for wanted in module.imports:
        if wanted.module != WASI_MODULE:
            raise WasmOracleError(f"unsupported import {wanted.module}.{wanted.name}: a WASI command may import "
                                  f"only from {WASI_MODULE} here")
    with tempfile.TemporaryDirectory(prefix="wasmformer-wasi-") as directory:
        files = Path(directory)
        (files / "stdin").write_bytes(input_bytes)
        config = wasmtime.WasiConfig()
        config.argv = [argument.decode("utf-8", errors="surrogateescape") for argument in argv]
        config.stdin_file = str(files / "stdin")
        config.stdout_file = str(files / "stdout")
        config.stderr_file = str(files / "stderr")
        store.set_wasi(config)
        linker = wasmtime.Linker(store.engine)
        linker.define_wasi()
        try:
            instance = linker.instantiate(store, module)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
            raise WasmOracleError(f"could not instantiate the module: {error}") from None
        exports = instance.exports(store)
        start = exports.get(WASI_ENTRY_EXPORT) if hasattr(exports, "get") else None
        if not isinstance(start, wasmtime.Func):
            raise WasmOracleError(f"the WASI module exports no function named {WASI_ENTRY_EXPORT!r}")
        profile_regions = _fill_untouched_memory(store, exports)
        fuel_before = store.get_fuel()
        exit_status, trap = 0, None
        try:
            start(store)
        except wasmtime.ExitTrap as exit_:
            exit_status = exit_.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
            trap = str(error)
        instructions = fuel_before - store.get_fuel()
        output, errors = (files / "stdout").read_bytes(), (files / "stderr").read_bytes()
    if trap is not None:
        return WasmtimeTrap(output, errors, trap)
    memory = _memory_profile(store, exports, profile_regions) if profile_regions else None
    return WasmtimeRun(output, instructions, exit_status, memory, errors, exit_status & 0xFF)


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


def _host_functions(store: wasmtime.Store, input_bytes: bytes, output: bytearray, errors: bytearray,
                    status: list) -> dict[str, wasmtime.Func]:
    """putchar appends to ``output``, putchar_err to ``errors``; getchar walks ``input_bytes``, then returns -1
    forever; exit records the status in ``status[0]`` and stops the run (a host trap)."""
    next_input_index = [0]

    def putchar(byte: int) -> None:
        output.append(byte & 0xFF)

    def putchar_err(byte: int) -> None:
        errors.append(byte & 0xFF)

    def exit_(code: int) -> None:
        status[0] = code & 0xFF
        raise wasmtime.WasmtimeError("exit")

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
        "putchar_err": wasmtime.Func(store, wasmtime.FuncType([i32], []), putchar_err),
        "exit": wasmtime.Func(store, wasmtime.FuncType([i32], []), exit_),
    }


def _instantiate(
    store: wasmtime.Store, module: wasmtime.Module, host_functions: dict[str, wasmtime.Func]
) -> wasmtime.Instance:
    imports = []
    for wanted in module.imports:
        if wanted.module != IMPORT_MODULE or wanted.name not in host_functions:
            raise WasmOracleError(
                f"unsupported import {wanted.module}.{wanted.name}: only WASI and "
                f"{IMPORT_MODULE}.{{putchar, getchar, putchar_err, exit}} exist"
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
