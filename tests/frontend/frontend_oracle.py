"""Shared by the front-end tests: run a module on the reference VM and on wasmtime (the oracle)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from wasmformer.frontend import Call, TrapReason, load_program
from wasmformer.frontend.decode import decode_module
from wasmformer.frontend.lower import lower
from wasmformer.oracles import refvm

wasmtime = pytest.importorskip("wasmtime")

WASMTIME_TRAPS = {
    wasmtime.TrapCode.UNREACHABLE: TrapReason.UNREACHABLE,
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: TrapReason.DIVIDE_BY_ZERO,
    wasmtime.TrapCode.INTEGER_OVERFLOW: TrapReason.INTEGER_OVERFLOW,
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: TrapReason.OUT_OF_BOUNDS_MEMORY,
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: TrapReason.INDIRECT_CALL,
    wasmtime.TrapCode.INDIRECT_CALL_TO_NULL: TrapReason.INDIRECT_CALL,
    wasmtime.TrapCode.BAD_SIGNATURE: TrapReason.INDIRECT_CALL,
    wasmtime.TrapCode.STACK_OVERFLOW: TrapReason.CALL_STACK_EXHAUSTED,
    wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER: TrapReason.INVALID_CONVERSION,
}


@dataclass
class Outcome:
    output: bytes
    trap: TrapReason | None


@functools.lru_cache(maxsize=64)
def _compiled(wasm: bytes):
    """Compiling with wasmtime is the slow part of a test: once per module."""
    engine = wasmtime.Engine()
    return engine, wasmtime.Module(engine, wasm)


@functools.lru_cache(maxsize=64)
def _wat_binary(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def run_wasmtime(wasm: bytes, invoke: str | None = None, args=(), input_bytes: bytes = b"") -> Outcome:
    """The oracle: wasmtime runs the module with putchar/getchar host functions."""
    engine, module = _compiled(bytes(wasm))
    if invoke is None and any(item.module == "wasi_snapshot_preview1" for item in module.imports):
        from wasmformer.oracles.wasmtime_runner import run_program  # a WASI command (C on wasi-libc)

        run = run_program(bytes(wasm), input_bytes)
        assert not run.trapped, f"the WASI oracle trapped: {run.message}"
        return Outcome(run.output, None)
    store = wasmtime.Store(engine)
    output = bytearray()
    pending = list(input_bytes)
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()
    linker.define_func("wasmformer", "putchar", wasmtime.FuncType([i32], []), lambda c: output.append(c & 0xFF))
    linker.define_func("wasmformer", "getchar", wasmtime.FuncType([], [i32]),
                       lambda: pending.pop(0) if pending else -1)
    try:
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        name = invoke or ("main" if "main" in exports else "_start")
        function = exports[name]
        signature = function.type(store)
        results = function(store, *[_signed(a, str(kind)) for a, kind in zip(args, signature.params)])
        if invoke is not None:
            values = [] if results is None else list(results) if isinstance(results, (list, tuple)) else [results]
            for value, kind in zip(values, signature.results):
                size = 8 if str(kind) == "i64" else 4
                output += (value % (1 << 8 * size)).to_bytes(size, "little")
        return Outcome(bytes(output), None)
    except wasmtime.Trap as trap:
        return Outcome(bytes(output), WASMTIME_TRAPS[trap.trap_code])


def _signed(value: int, kind: str = "i32") -> int:
    bits = 64 if kind == "i64" else 32
    value %= 1 << bits
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def run_reference(wat: str, invoke: str | None = None, args=(), input_bytes: bytes = b"", **options) -> Outcome:
    program = load_program(_wat_binary(wat), kind="wasm", invoke=invoke, args=tuple(args), **options)
    result = refvm.run(program, input_bytes, max_steps=5_000_000)
    assert result.halted, "the reference VM did not finish"
    return Outcome(result.output, result.trap)


def assert_same(wat: str, invoke: str | None = None, args=(), input_bytes: bytes = b"", **options) -> Outcome:
    """Run on both and compare output bytes and trap reason; returns the outcome."""
    expected = run_wasmtime(_wat_binary(wat), invoke, args, input_bytes)
    actual = run_reference(wat, invoke, args, input_bytes, **options)
    assert actual == expected, f"invoke {invoke}{tuple(args)}: reference VM {actual} != wasmtime {expected}"
    return actual


def lowered(wat: str, calls=None, **options):
    return lower(decode_module(wasmtime.wat2wasm(wat)), calls=calls, **options)


__all__ = ["Call", "assert_same", "lowered", "run_reference", "run_wasmtime"]
