"""Random C programs from Csmith, floats included, for the fuzzer's `csmith` category.

Csmith (Debian's ``csmith`` and ``libcsmith-dev``) writes C programs free of
undefined behaviour that print a checksum of their globals; with ``--float``
the checksum covers float and double variables, so every f32/f64 operation the
program did shows in its one line of output. A case runs ``wasmformer run
prog.c`` (the front end compiles it with the bundled clang and wasi-libc) and
compares the status and stdout with wasmtime's on the same source compiled by
the same front end.

Csmith may write a program that runs for minutes or forever, so a case keeps
the first of a few Csmith seeds (drawn from the case's rng) whose program halts
within ``ORACLE_FUEL`` wasm instructions under wasmtime and within
``STEP_BUDGET`` steps of the reference VM, where each float operation counts
as the hundreds of soft-float steps the machine spends on it. The budget keeps
one case's run on the model to a few seconds.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cases import Expected
from .oracle import OUT_OF_FUEL, OracleUnusable, expected_wasm

CSMITH = "csmith"
# libcsmith-dev's runtime headers: csmith.h and the headers it includes by quotes.
CSMITH_INCLUDE = Path("/usr/include/csmith")
INSTALL_HINT = "apt-get update && apt-get install -y csmith libcsmith-dev (as root)"
CSMITH_TIMEOUT = 60  # seconds for csmith to write one program (it takes a fraction of a second)
# Csmith's program size knobs, (option, smallest, largest), drawn per case: small programs, so that one case
# runs on the model in seconds; the rest of Csmith's defaults (pointers, structs, bitfields, unions) stay on.
SIZE_OPTIONS = (("--max-funcs", 1, 4), ("--max-block-depth", 2, 3), ("--max-expr-complexity", 3, 6),
                ("--max-array-dim", 1, 2), ("--max-array-len-per-dim", 2, 4))
SEEDS_PER_CASE = 8  # Csmith seeds tried before the case gives up (about 1 in 7 programs runs too long)
ORACLE_FUEL = 5_000_000  # wasm instructions under wasmtime: a typical program needs about 50,000
STEP_BUDGET = 400_000  # reference-VM steps (about 2 million tokens): a typical program needs about 50,000
# Clang makes passing `float *` to csmith.h's `char *` parameter an error; Csmith's own checksum code does it.
PRELUDE = b'#pragma clang diagnostic ignored "-Wincompatible-pointer-types"\n'


@dataclass(frozen=True)
class CsmithProgram:
    source: bytes  # PRELUDE + Csmith's output
    seed: int
    options: tuple[str, ...]
    steps: int  # reference-VM steps
    expected: Expected  # wasmtime's status and stdout


def missing() -> str | None:
    """Why Csmith cases cannot be made here (None when they can)."""
    if shutil.which(CSMITH) is None:
        return f"csmith is not installed: {INSTALL_HINT}"
    if not (CSMITH_INCLUDE / "csmith.h").is_file():
        return f"{CSMITH_INCLUDE}/csmith.h is missing: {INSTALL_HINT}"
    return None


def header_copies() -> dict[str, str]:
    """Csmith's runtime headers, to copy next to prog.c (csmith.h includes them by quotes)."""
    return {path.name: str(path) for path in sorted(CSMITH_INCLUDE.glob("*.h"))}


def random_program(rng: random.Random) -> CsmithProgram:
    """The first program of up to SEEDS_PER_CASE Csmith seeds that halts within the budgets."""
    options = tuple(str(item) for name, low, high in SIZE_OPTIONS for item in (name, rng.randint(low, high)))
    too_long = []
    for _ in range(SEEDS_PER_CASE):
        seed = rng.randrange(2**32)
        source = PRELUDE + _generate(seed, options)
        program = _measure(source, seed, options)
        if program is not None:
            return program
        too_long.append(seed)
    raise OracleUnusable(f"every Csmith program ran past the budget (seeds {too_long}, {' '.join(options)})")


def _generate(seed: int, options: tuple[str, ...]) -> bytes:
    command = [CSMITH, "--float", "--seed", str(seed), *options]
    with tempfile.TemporaryDirectory(prefix="wasmformer-csmith-") as scratch:  # csmith writes platform.info here
        done = subprocess.run(command, capture_output=True, timeout=CSMITH_TIMEOUT, check=False, cwd=scratch)
    if done.returncode != 0:
        raise OracleUnusable(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')[-300:]}")
    return done.stdout


def _measure(source: bytes, seed: int, options: tuple[str, ...]) -> CsmithProgram | None:
    """The program with wasmtime's answer and its step count, or None when it runs past a budget."""
    from wasmformer.frontend import load_program
    from wasmformer.frontend.toolchain import compile_c
    from wasmformer.oracles import refvm

    wasm = compile_c(source.decode(), extra_flags=[f"-I{CSMITH_INCLUDE}"])
    try:
        expected = expected_wasm(wasm, b"", fuel=ORACLE_FUEL)
    except OracleUnusable as error:
        if str(error) == OUT_OF_FUEL:
            return None
        raise
    reference = refvm.run(load_program(wasm), max_steps=STEP_BUDGET)
    if not reference.halted:
        return None
    return CsmithProgram(source, seed, options, reference.steps, expected)
