"""The c-testsuite corpus: 220 small C programs with the exact stdout each must print.

A case passes when the program, compiled by the front end (bundled clang,
wasi-libc), exits 0 and prints its ``.expected`` file byte for byte. The corpus
is read in place from ``../shared/c-testsuite`` next to the repository, or
from $WASMFORMER_C_TESTSUITE; it is never copied into the repository.

This module lists the cases and says what a run must show; the runs
themselves (reference VM, transformer) are the tests' and tools' business, so
the module knows nothing of engines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

C_TESTSUITE_ENV = "WASMFORMER_C_TESTSUITE"
C_TESTSUITE_RELATIVE = Path("..") / "shared" / "c-testsuite"
CASES_SUBDIR = Path("tests") / "single-exec"

# Cases the machine cannot pass, with why. Each is checked to fail in exactly this way (tests/test_c_testsuite.py).
OUT_OF_SCOPE = {
    "00187": "opens a file with fopen: a WASI program sees no file system here (no preopened directory), so "
             "fopen returns NULL and the program calls through the NULL FILE's function pointer, a trap; "
             "wasmtime without --dir traps the same way",
}

# Cases that run longer than the model's precision horizon (2^24 tokens; a step is about five tokens), with
# their length: on the transformer they must stop at the horizon, never run past it.
BEYOND_HORIZON = {
    "00040": "8-queens by brute force: between 300 million and 1 billion wasm instructions under wasmtime, "
             "too long for the reference VM too (about 300,000 steps a second), so wasmtime checks its answer",
    "00041": "4.9 million steps on the reference VM",
    "00204": "5.2 million steps on the reference VM (printf of many floats and doubles)",
}
# Of those, the ones the reference VM cannot finish in a test's time.
BEYOND_REFERENCE_VM = ("00040",)


@dataclass(frozen=True)
class CCase:
    name: str  # "00042"
    source: Path
    expected: bytes  # the exact stdout
    tags: frozenset[str]  # portable, c89, c99, c11, needs-libc, needs-cpp

    @property
    def out_of_scope(self) -> str | None:
        return OUT_OF_SCOPE.get(self.name)

    @property
    def beyond_horizon(self) -> bool:
        return self.name in BEYOND_HORIZON


def c_testsuite_dir(repo_root: Path) -> Path:
    override = os.environ.get(C_TESTSUITE_ENV)
    return Path(override) if override else (repo_root / C_TESTSUITE_RELATIVE).resolve()


def load_cases(root: Path) -> list[CCase]:
    """Every case under ROOT/tests/single-exec, in name order (empty when the corpus is absent)."""
    directory = root / CASES_SUBDIR
    if not directory.is_dir():
        return []
    return [_case(source) for source in sorted(directory.glob("*.c"))]


def _case(source: Path) -> CCase:
    tags_file = source.with_name(source.name + ".tags")
    tags = frozenset(tags_file.read_text().split()) if tags_file.is_file() else frozenset()
    return CCase(source.stem, source, source.with_name(source.name + ".expected").read_bytes(), tags)


def verdict(case: CCase, exit_status: int | None, stdout: bytes, trapped: bool) -> str | None:
    """None when a run passes the case, else what went wrong (for a test's failure message)."""
    if trapped:
        return f"{case.name}: trapped after printing {stdout[-80:]!r}"
    if exit_status != 0:
        return f"{case.name}: exit status {exit_status}, expected 0"
    if stdout != case.expected:
        return f"{case.name}: stdout differs: got {stdout[:120]!r}..., expected {case.expected[:120]!r}..."
    return None
