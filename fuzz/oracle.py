"""What wasmtime says a random valid program does, as the CLI should show it.

Built on the project's oracle runner (wasmformer.oracles.wasmtime_runner), which
runs a module's ``main``. An ``--invoke NAME ARGS`` call is checked by adding a
``main`` that calls NAME with those arguments and returns its result, which is
what ``wasmtime --invoke`` would print (signed decimal, one line).

A trap ends with status 1 and the output printed before it; the runner reports
that output only inside its error message (``wasm trapped after printing
b'...': ...``), so it is read back from there.
"""

from __future__ import annotations

import ast
import re

from .cases import Expected
from .random_wat import RandomModule

ORACLE_FUEL = 50_000_000  # wasm instructions; random programs need far fewer (they have no unbounded loops)
TRAPPED_PREFIX = "wasm trapped after printing "
WRAPPER_NAME = "fuzz_invoke"
I32_MODULUS = 2**32
OUT_OF_FUEL = "the random program ran out of fuel under wasmtime"


class OracleUnusable(Exception):
    """wasmtime could not give an answer (a generator bug: out of fuel, an invalid module)."""


def expected_main(wat_text: str, input_bytes: bytes) -> Expected:
    """stdout and status of `wasmformer run` on a module whose entry is its exported main."""
    return expected_wasm(_wat_to_wasm(wat_text), input_bytes)


def expected_wasm(wasm: bytes, input_bytes: bytes, fuel: int = ORACLE_FUEL) -> Expected:
    """stdout and status of `wasmformer run` on a module (its main, or a WASI command's _start)."""
    run = _execute(wasm, input_bytes, fuel)
    if isinstance(run, Expected):
        return run
    return Expected(status=run.exit_status, stdout=run.output, why="wasmtime")  # main's value & 0xff


def expected_invoke(module: RandomModule, function_index: int, args: tuple[int, ...],
                    input_bytes: bytes) -> tuple[Expected, int]:
    """stdout and status of `wasmformer run --invoke` calling module.functions[function_index] with args,
    and how many bytes the function printed itself (before its result line)."""
    function = module.functions[function_index]
    constants = "".join(f" (i32.const {_signed(value)})" for value in args)
    result = " (result i32)" if function.has_result else ""
    wrapper = f"  (func ${WRAPPER_NAME}{result} (call ${function.name}{constants}))"
    run = _execute(_wat_to_wasm(module.text({"main": WRAPPER_NAME}, extra_functions=(wrapper,))), input_bytes)
    if isinstance(run, Expected):
        return run, len(run.stdout)
    printed_result = f"{_signed(run.exit_value)}\n".encode() if function.has_result else b""
    return Expected(status=0, stdout=run.output + printed_result, why="wasmtime --invoke"), len(run.output)


def _wat_to_wasm(wat_text: str) -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(wat_text))


def _execute(wasm: bytes, input_bytes: bytes, fuel: int = ORACLE_FUEL):
    """The runner's WasmtimeRun, or an Expected trap (status 134, output so far, trap token)."""
    from wasmformer.oracles.wasmtime_runner import WasmOracleError, execute_wasm

    try:
        return execute_wasm(wasm, input_bytes, fuel=fuel)
    except WasmOracleError as error:
        message = str(error)
        if not message.startswith(TRAPPED_PREFIX):
            raise OracleUnusable(message) from None
        output, trap_text = _split_trap_message(message[len(TRAPPED_PREFIX):])
        return Expected(status=134, stdout=output, trap=_trap_token(trap_text), why="wasmtime trapped")


def _split_trap_message(text: str) -> tuple[bytes, str]:
    """``b'...': reason`` -> (the bytes, the reason), reading the bytes literal up to its closing quote."""
    quote = text[1]
    position = 2
    while text[position] != quote:
        position += 2 if text[position] == "\\" else 1
    return ast.literal_eval(text[:position + 1]), text[position + 1:]


def _trap_token(trap_text: str) -> str:
    """wasmtime's trap message -> the machine's trap token (trap.divide_by_zero...)."""
    from wasmformer.conformance.spectest import (
        TRAP_MESSAGES,  # the spec scripts word traps as wasmtime does
    )

    if "all fuel consumed" in trap_text:
        raise OracleUnusable(OUT_OF_FUEL)
    for message, reason in TRAP_MESSAGES.items():
        if re.search(re.escape(message), trap_text):
            return f"trap.{reason.name.lower()}"
    raise OracleUnusable(f"unknown wasmtime trap: {trap_text.strip()[:200]}")


def _signed(value: int) -> int:
    value %= I32_MODULUS
    return value - I32_MODULUS if value >= 2**31 else value
