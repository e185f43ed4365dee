"""The front end: C, WAT or wasm -> a VMProgram for the machine.

    load_program(source, *, kind=None, invoke=None, args=(), native_ops=..., memory_limit=...)
    format_invoke_result(output, result_count)

docs/frontend.md describes the pipeline, docs/vm-program.md the result.
"""

from __future__ import annotations

from pathlib import Path

from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.lower import DEFAULT_MEMORY_LIMIT, MAX_INSTRUCTIONS, Call
from wasmformer.vm.ops import BASIC_OPS, REWRITABLE_OPS
from wasmformer.vm.program import Instr, Op, TrapReason, VMProgram

__all__ = [
    "BASIC_OPS", "DEFAULT_MEMORY_LIMIT", "MAX_INSTRUCTIONS", "REWRITABLE_OPS",
    "Call", "FrontendError", "Instr", "Op", "TrapReason", "VMProgram",
    "format_invoke_result", "load_program", "module_bytes",
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
                 memory_limit: int = DEFAULT_MEMORY_LIMIT, clang: str | None = None) -> VMProgram:
    """C / WAT / wasm -> VMProgram.

    ``source`` is a path (the suffix .c/.wat/.wasm gives the kind unless ``kind``
    is set), WAT text, or wasm bytes. By default the program runs the exported
    ``main`` (or ``_start``); ``invoke=NAME, args=(...)`` calls that export
    instead and outputs each i32 result as 4 little-endian bytes. ``native_ops``
    is the op set the target executes (default: the universal machine's).
    """
    from wasmformer.frontend.decode import decode_module
    from wasmformer.frontend.lower import lower

    if args and invoke is None:
        raise FrontendError("arguments are only for invoke=NAME")
    binary = module_bytes(source, kind=kind, clang=clang)
    module = decode_module(binary)
    calls = None if invoke is None else [Call(invoke, tuple(args))]
    name = Path(source).stem if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)) \
        else "program"
    return lower(module, native_ops=native_ops, memory_limit=memory_limit, calls=calls, name=name)


def format_invoke_result(output: bytes, result_count: int) -> str:
    """The results of an invoked function as wasmtime --invoke prints them: one signed i32 per line."""
    if len(output) != RESULT_BYTES * result_count:
        raise FrontendError(f"expected {result_count} results ({RESULT_BYTES * result_count} bytes) "
                            f"but the program output {len(output)} bytes")
    values = [int.from_bytes(output[i:i + RESULT_BYTES], "little", signed=True)
              for i in range(0, len(output), RESULT_BYTES)]
    return "".join(f"{value}\n" for value in values)
