"""C -> wasm32 with a clang that needs no system toolchain.

The default compiler is the clang bundled in the ``ziglang`` PyPI package
(``python -m ziglang cc``, run with this interpreter). A system clang with the
wasm32 target and ``wasm-ld`` can be chosen with ``clang=``.

The module we produce is shaped for the machine:

* a WASI command (target ``wasm32-wasi``) linked against the wasi-libc that
  ziglang ships (musl's stdio, stdlib, string, ctype...; built by zig on first
  use and kept in zig's cache, ``~/.cache/wasmformer/zig``: ``ZIG_CACHE_DIR``): its entry is the
  libc's ``_start``, which calls ``main`` (with ``argc``/``argv`` when it takes
  them) and ``exit``; the libc reaches the outside world only through WASI
  preview1 imports, which the front end turns into the machine's I/O
  (frontend/wasi.wat);
* MVP instruction set only (no bulk-memory, sign-ext, multivalue...), so the
  lowering sees the smallest opcode set, and the libc is built for it too
  (modules built for clang's default CPU, with memory.fill / memory.copy and
  sign extension, run too: extra_flags ``-mcpu=generic``);
* ``-Os`` (``DEFAULT_OPT``): the smallest code, so the shortest prompt; -O2
  inlines and unrolls the libc's printf into a prompt several times longer for
  a few percent fewer generated tokens (docs/frontend.md, "The C library");
* linear memory laid out low: the stack first (growing down from
  ``stack_size`` to 0), data right after it, the heap (the libc's malloc)
  after the data, growing the memory (memory.grow) up to
  ``DEFAULT_MEMORY_LIMIT``.

Compiled modules are cached under ``<cache root>/c/`` (``disk_cache.cache_root``)
by a hash of the source's bytes and name, the compiler command's flags, the
runtime include directory's files and the compiler's identity (the ziglang
release and binary, or a system clang's path and ``--version``). Each entry also
records every file the compiler read (its ``-MD`` dependency list) with a hash of
its content, so an edited header a program includes misses the cache too, and
the module's own SHA-256, so a damaged entry is compiled again, never run.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from wasmformer.disk_cache import DEFAULT_CACHE_ROOT, KeyHasher, cache_root, file_digest, write_file_atomically
from wasmformer.frontend.errors import FrontendError
from wasmformer.machine.tokens import MAX_MEMORY

# The machine addresses at most this many bytes of linear memory.
DEFAULT_MEMORY_LIMIT = MAX_MEMORY

# Bytes reserved for the C stack at the bottom of memory (as wasm-ld's default).
DEFAULT_STACK_SIZE = 65536

# Instruction-set level handed to clang: the 1.0 "MVP" feature set. Newer default
# CPUs enable bulk-memory (memset -> memory.fill), sign-ext etc.
WASM_CPU = "mvp"

WASM_TARGET = "wasm32-wasi"

DEFAULT_OPT = "-Os"

# The machine-specific header wasmformer.h lives here (shipped as package data).
INCLUDE_DIR = Path(__file__).parent / "include"

# zig builds wasi-libc for the target on first use (about 20 s) and keeps it in its global cache, so later
# compiles take a fraction of a second. That cache depends on the toolchain only, so it lives under the default
# cache root even when $WASMFORMER_CACHE points elsewhere ($WASMFORMER_ZIG_CACHE overrides it); when it cannot
# be created, under the cache root, else in the compile's temp dir (then every compile builds the libc).
ZIG_CACHE_DIR = "zig"
ZIG_CACHE_ENV = "WASMFORMER_ZIG_CACHE"

# The first compile for a CPU builds wasi-libc for it (about 20 s on an idle machine, minutes on a busy one).
COMPILE_TIMEOUT_SECONDS = 900

# The compiled-module cache: a directory under the cache root, and the version of
# its entries' layout (bump it when the entry format or the key changes meaning).
C_CACHE_DIR = "c"
C_CACHE_FORMAT = "wasmformer-c-cache/3"
# The dependency list clang writes with -MD -MF, in the compile's temp dir.
DEPENDENCY_FILE = "module.d"


def compile_c(
    source: str | Path,
    *,
    opt: str = DEFAULT_OPT,
    clang: str | None = None,
    extra_flags: Iterable[str] = (),
    stack_size: int = DEFAULT_STACK_SIZE,
) -> bytes:
    """Compile one C file to a wasm32 module and return its bytes.

    ``source`` is a ``Path`` (or a one-line ``str`` ending in ``.c``) naming a C
    file, or otherwise a ``str`` holding C source text. Compiler errors raise
    ``FrontendError`` carrying the compiler's own ``file:line:col`` messages.
    """
    if not 0 < stack_size < DEFAULT_MEMORY_LIMIT:
        raise FrontendError(f"stack size {stack_size} must be between 1 and {DEFAULT_MEMORY_LIMIT - 1} bytes")
    with tempfile.TemporaryDirectory(prefix="wasmformer-cc-") as work_dir:
        work = Path(work_dir)
        c_file, compile_dir = _source_file(source, work)
        flags = _flags(opt, clang is not None, stack_size, extra_flags)
        entry = _cache_entry(c_file, compile_dir, flags, clang)
        cached = _cached_module(entry)
        if cached is not None:
            return cached
        wasm_file, dependency_file = work / "module.wasm", work / DEPENDENCY_FILE
        command = _compiler_command(clang) + flags + ["-MD", "-MF", str(dependency_file)]
        command += ["-o", str(wasm_file), str(c_file)]
        _run_compiler(command, compile_dir, work)
        wasm = strip_debug_sections(wasm_file.read_bytes())
        if entry is not None:
            _remember(entry, wasm, dependency_file, compile_dir or Path.cwd(), c_file)
        return wasm


# The float helper library (frontend/softfloat.c): freestanding (no libc), linked with zig's compiler_rt, no
# entry; every function it defines is exported under its export_name. -O2: its routines run often.
FLOAT_LIBRARY_TARGET = "wasm32-freestanding"
FLOAT_LIBRARY_FLAGS = ("-O2", "-g", "-Wl,--no-entry")


def compile_float_library(source: Path) -> bytes:
    """The float helper library's module, built once with zig's clang and compiler_rt, then cached like a C
    program (its key: the source, the flags and the toolchain)."""
    with tempfile.TemporaryDirectory(prefix="wasmformer-float-") as work_dir:
        work = Path(work_dir)
        flags = [f"--target={FLOAT_LIBRARY_TARGET}", f"-mcpu={WASM_CPU}", *FLOAT_LIBRARY_FLAGS]
        entry = _cache_entry(source, None, flags, None)
        cached = _cached_module(entry)
        if cached is not None:
            return cached
        wasm_file, dependency_file = work / "floats.wasm", work / DEPENDENCY_FILE
        command = _compiler_command(None) + flags + ["-MD", "-MF", str(dependency_file), "-o", str(wasm_file),
                                                     str(source)]
        _run_compiler(command, None, work)
        wasm = strip_debug_sections(wasm_file.read_bytes())
        if entry is not None:
            _remember(entry, wasm, dependency_file, Path.cwd(), source)
        return wasm


DEBUG_SECTION_PREFIX = b".debug"
CUSTOM_SECTION = 0
WASM_HEADER_BYTES = 8  # magic and version


def strip_debug_sections(wasm: bytes) -> bytes:
    """The module without its DWARF custom sections (``.debug_*``): the code and the name section stay."""
    from wasmformer.frontend.binary import Reader

    kept = bytearray(wasm[:WASM_HEADER_BYTES])
    reader = Reader(wasm, WASM_HEADER_BYTES)
    while not reader.at_end():
        start = reader.pos
        section_id = reader.byte()
        size = reader.u32()
        end = reader.pos + size
        if section_id == CUSTOM_SECTION:
            name_length = reader.u32()
            if wasm[reader.pos:reader.pos + name_length].startswith(DEBUG_SECTION_PREFIX):
                reader.pos = end
                continue
        kept += wasm[start:end]
        reader.pos = end
    return bytes(kept)


def _source_file(source: str | Path, work: Path) -> tuple[Path, Path | None]:
    """The C file to compile and the directory to compile in.

    A user's file is compiled in place so the compiler's messages name it as the
    user wrote it; source text goes to ``input.c`` in the temp dir, compiled there
    so messages say ``input.c:line:col``.
    """
    if isinstance(source, str) and not _looks_like_path(source):
        text_file_name = "input.c"
        (work / text_file_name).write_text(source)
        return Path(text_file_name), work
    c_file = Path(source)
    if not c_file.is_file():
        raise FrontendError(f"{c_file}: no such C file")
    return c_file, None


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and text.strip().endswith(".c")


def _compiler_command(clang: str | None) -> list[str]:
    if clang is not None:
        return [clang]
    if importlib.util.find_spec("ziglang") is None:
        raise FrontendError(
            "compiling C needs the 'ziglang' package (it bundles clang): "
            "pip install ziglang, or pass clang=<path to a clang with the wasm32 target>"
        )
    return [sys.executable, "-m", "ziglang", "cc"]


def _flags(opt: str, system_clang: bool, stack_size: int, extra_flags: Iterable[str]) -> list[str]:
    flags = [
        f"--target={WASM_TARGET}",
        f"-mcpu={WASM_CPU}",
        # memset and memcpy (the libc's own, and the ones clang emits) become memory.fill / memory.copy: the
        # helper library's word-at-a-time loops, several times fewer steps than the libc's byte loops
        "-mbulk-memory",
        opt,
        # zig's linker keeps the "name" section (readable function names in messages) only with debug info;
        # the DWARF sections are dropped after linking (strip_debug_sections)
        "-g",
        "-std=gnu11",
        # zig cc turns on UBSan at -O0; its runtime does not exist here.
        "-fno-sanitize=all",
        # The machine has no i64. LLVM merges neighbouring i32/byte stores (e.g. an
        # unrolled copy loop) into i64 stores; turn that merging off. Copies and
        # zero-fills of whole structs/arrays of 8+ bytes still become i64 moves.
        "-mllvm",
        "-combiner-store-merging=0",
        # zig cc defines NDEBUG when optimising; a C compiler does not: assert() stays on, as with cc -Os
        "-UNDEBUG",
        "-I",
        str(INCLUDE_DIR),
        f"-Wl,-z,stack-size={stack_size}",
    ]
    # wasm-ld places data first unless told otherwise; zig's own wasm linker always
    # puts the stack first and rejects the flag.
    if system_clang:
        flags.append("-Wl,--stack-first")
    return flags + list(extra_flags)


def _run_compiler(command: list[str], compile_dir: Path | None, work: Path) -> None:
    try:
        result = subprocess.run(
            command,
            cwd=compile_dir,
            env=_compiler_env(work),
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as missing:
        raise FrontendError(f"C compiler not found: {missing.filename}") from None
    except subprocess.TimeoutExpired:
        raise FrontendError(f"the C compiler did not finish within {COMPILE_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise FrontendError(f"C compilation failed:\n{message}")


def _compiler_env(work: Path) -> dict[str, str]:
    """zig's local cache in the temp dir; its global cache (the built wasi-libc) as ZIG_CACHE_DIR says."""
    env = dict(os.environ)
    candidates = [Path(os.environ[ZIG_CACHE_ENV]).expanduser()] if os.environ.get(ZIG_CACHE_ENV) else []
    candidates += [DEFAULT_CACHE_ROOT.expanduser() / ZIG_CACHE_DIR, cache_root() / ZIG_CACHE_DIR]
    global_cache = work / "zig-global-cache"
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            global_cache = candidate
            break
    env["ZIG_GLOBAL_CACHE_DIR"] = str(global_cache)
    env["ZIG_LOCAL_CACHE_DIR"] = str(work / "zig-local-cache")
    return env


# -- the compiled-module cache ----------------------------------------------------------------------


def _cache_entry(c_file: Path, compile_dir: Path | None, flags: list[str], clang: str | None) -> Path | None:
    """The cache file for this compile, or None when the compiler cannot be identified (then nothing is cached)."""
    toolchain = _toolchain_identity(clang)
    if toolchain is None:
        return None
    hasher = KeyHasher().add(C_CACHE_FORMAT).add(toolchain).add("\0".join(flags))
    # The name as the compiler sees it: it is what __FILE__ expands to.
    hasher.add(str(c_file)).add(_source_path(c_file, compile_dir).read_bytes())
    hasher.add_files(INCLUDE_DIR, [path for path in INCLUDE_DIR.rglob("*") if path.is_file()])
    return cache_root() / C_CACHE_DIR / f"{hasher.key()}.json"


def _source_path(c_file: Path, compile_dir: Path | None) -> Path:
    return c_file if compile_dir is None else compile_dir / c_file


def _toolchain_identity(clang: str | None) -> str | None:
    """Which compiler this is: for ziglang its release and binary, for a system clang its path and --version."""
    if clang is None:
        return _ziglang_identity()
    executable = shutil.which(clang)
    if executable is None:
        return None
    try:
        version = subprocess.run([executable, "--version"], capture_output=True, text=True,
                                 timeout=COMPILE_TIMEOUT_SECONDS).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return f"clang {Path(executable).resolve()}\n{version}"


def _ziglang_identity() -> str | None:
    # The distribution's name and the binary's size and time, not importlib.metadata
    # (which scans every installed distribution: tens of milliseconds per run).
    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    releases = sorted(path.name for path in package.parent.glob("ziglang-*.dist-info"))
    try:
        binary = (package / "zig").stat()
    except OSError:
        return None
    return f"ziglang {package} {releases} {binary.st_size} {binary.st_mtime_ns}"


def _cached_module(entry: Path | None) -> bytes | None:
    """The entry's module if every file the compiler read then still has the same content."""
    if entry is None:
        return None
    try:
        record = json.loads(entry.read_bytes())
        if all(file_digest(Path(path)) == digest for path, digest in record["dependencies"].items()):
            wasm = base64.b64decode(record["wasm"], validate=True)
            # A damaged entry can still be valid base64: only the module that was stored will do.
            return wasm if hashlib.sha256(wasm).hexdigest() == record["sha256"] else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # absent or damaged: compile again
        return None
    return None


def _remember(entry: Path, wasm: bytes, dependency_file: Path, compile_dir: Path, source: Path) -> None:
    """Store the module with a digest of each file the compiler read (but the source, which is in the key).

    The dependency list names files relative to the directory the compiler ran in.
    """
    try:
        paths = {Path(os.path.abspath(compile_dir / path)) for path in _dependencies(dependency_file.read_text())}
        paths.discard(Path(os.path.abspath(compile_dir / source)))
        record = {"dependencies": {str(path): file_digest(path) for path in sorted(paths)},
                  "wasm": base64.b64encode(wasm).decode("ascii"), "sha256": hashlib.sha256(wasm).hexdigest()}
    except OSError:  # no dependency list, or a header gone already: leave this compile uncached
        return
    write_file_atomically(entry, json.dumps(record, indent=0).encode())


def _dependencies(makefile_rule: str) -> list[str]:
    """The prerequisites of the make rule clang writes for -MD (``target: dep dep \\`` continued lines)."""
    joined = makefile_rule.replace("\\\n", " ")
    _, _, prerequisites = joined.partition(": ")
    # Spaces inside a path are escaped as "\ ", a dollar sign as "$$".
    words = re.split(r"(?<!\\)\s+", prerequisites.strip())
    return [word.replace("\\ ", " ").replace("$$", "$") for word in words if word]
