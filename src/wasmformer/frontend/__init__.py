"""The front end: C, WAT or wasm -> a VMProgram for the machine.

    load_program(source, *, kind=None, invoke=None, args=(), native_ops=..., memory_limit=...)
    invoke_results(output, result_types), format_invoke_result(...), result_bytes(result_types)

docs/frontend.md describes the pipeline, docs/vm-program.md the result.
"""

from __future__ import annotations

import struct
from pathlib import Path

from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.lower import DEFAULT_MEMORY_LIMIT, MAX_INSTRUCTIONS, Call
from wasmformer.frontend.words import words_of
from wasmformer.vm.ops import BASIC_OPS, REWRITABLE_OPS
from wasmformer.vm.program import Instr, Op, TrapReason, VMProgram

__all__ = [
    "BASIC_OPS", "DEFAULT_MEMORY_LIMIT", "MAX_INSTRUCTIONS", "REWRITABLE_OPS",
    "Call", "FrontendError", "Instr", "Op", "TrapReason", "VMProgram",
    "format_invoke_result", "invoke_results", "load_program", "module_bytes", "result_bytes",
]

SOURCE_KINDS = ("c", "wat", "wasm")
RESULT_BYTES = 4


def module_bytes(source: str | Path | bytes, *, kind: str | None = None, clang: str | None = None) -> bytes:
    """The wasm binary for a source: a path to .c/.wat/.wasm, WAT text, or wasm bytes."""
    kind = _source_kind(source, kind)
    if kind == "c":
        from wasmformer.frontend.toolchain import compile_c

        return compile_c(source if isinstance(source, (str, Path)) else source.decode(), clang=clang)
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        if not path.is_file():
            raise FrontendError(f"{path}: no such file")
        data = path.read_bytes()
    else:
        data = source.encode() if isinstance(source, str) else bytes(source)
    if kind == "wat":
        return wat_to_wasm(data.decode("utf-8", errors="replace"))
    return data


def wat_to_wasm(text: str) -> bytes:
    import wasmtime

    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as error:
        raise FrontendError(f"invalid WAT: {str(error).strip()}") from None


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and "(" not in text and len(text) < 4096


def _source_kind(source, kind: str | None) -> str:
    if kind is not None:
        if kind not in SOURCE_KINDS:
            raise FrontendError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
        return kind
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "wasm" if bytes(source[:4]) == b"\x00asm" else "wat"
    if isinstance(source, Path) or _looks_like_path(source):
        suffix = Path(source).suffix.lower().lstrip(".")
        if suffix in SOURCE_KINDS:
            return suffix
        raise FrontendError(f"{source}: unknown file type (expected .c, .wat or .wasm)")
    return "wat"


def load_program(source: str | Path | bytes, *, kind: str | None = None, invoke: str | None = None,
                 args: tuple[int, ...] = (), native_ops=None,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT, clang: str | None = None,
                 argv: list[bytes] | None = None) -> VMProgram:
    """C / WAT / wasm -> VMProgram.

    ``source`` is a path (the suffix .c/.wat/.wasm gives the kind unless ``kind``
    is set), WAT text, or wasm bytes. By default the program runs the exported
    ``main`` (or ``_start``); ``invoke=NAME, args=(...)`` calls that export
    instead and outputs each i32 result as 4 little-endian bytes. ``native_ops``
    is the op set the target executes (default: the universal machine's).
    ``argv`` is what a WASI program's args_get gives it (default: the source's
    file name alone, as wasmtime gives a module's).
    """
    from wasmformer.frontend.decode import decode_module
    from wasmformer.frontend.lower import lower

    if args and invoke is None:
        raise FrontendError("arguments are only for invoke=NAME")
    binary = module_bytes(source, kind=kind, clang=clang)
    module = decode_module(binary)
    calls = None if invoke is None else [Call(invoke, tuple(args))]
    is_path = isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source))
    name = Path(source).stem if is_path else "program"
    if argv is None:
        argv = [Path(source).name.encode() if is_path else name.encode()]
    return lower(module, native_ops=native_ops, memory_limit=memory_limit, calls=calls, name=name,
                 argv=[bytes(argument) for argument in argv])


def result_bytes(result_types: list[str]) -> int:
    """Bytes an invocation outputs for results of these types (4 per word)."""
    return sum(RESULT_BYTES * words_of(kind) for kind in result_types)


def invoke_results(output: bytes, result_types: list[str]) -> list[int | float]:
    """An invoked function's results from the bytes the entry stub output after it returned: integers signed,
    floats decoded from their bits."""
    if len(output) != result_bytes(result_types):
        raise FrontendError(f"expected {len(result_types)} results ({result_bytes(result_types)} bytes) "
                            f"but the program output {len(output)} bytes")
    values, start = [], 0
    for kind in result_types:
        size = RESULT_BYTES * words_of(kind)
        raw = output[start:start + size]
        start += size
        if kind in ("f32", "f64"):
            values.append(struct.unpack("<f" if kind == "f32" else "<d", raw)[0])
        else:
            values.append(int.from_bytes(raw, "little", signed=True))
    return values


def format_invoke_result(output: bytes, result_types: list[str]) -> str:
    """The results of an invoked function as wasmtime --invoke prints them: one value per line (integers
    signed, floats as decimals)."""
    return "".join(f"{value!r}\n" for value in invoke_results(output, result_types))
