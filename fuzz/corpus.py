"""The seed inputs every fuzz session mutates, made once through the project's own tools.

* a model directory written by ``wasmformer build`` (its config.json and
  model.safetensors are the seeds of the model-file mutations);
* a model specialised for OK_PROGRAM by ``wasmformer specialize``;
* wasm binaries: the small bundled C examples compiled by the front end, plus
  random valid modules (fuzz/random_wat.py) assembled by wat2wasm;
* WAT texts and C sources, and prompt files written by ``wasmformer compile``;
* a model cache ($WASMFORMER_CACHE) holding the universal model, written by one
  ``wasmformer run``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .random_wat import random_module

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SEED_C_EXAMPLES = ("hello.c", "collatz.c", "fibonacci.c")  # small ones: quick to compile and to run
RANDOM_SEED_MODULES = 4
CACHE_VARIABLE = "WASMFORMER_CACHE"  # where the universal model is cached (docs/cli.md, --model)
SETUP_TIMEOUT = 300  # seconds for one setup command (a cold model build included)

# A program that prints "ok\n" and exports add(a, b): the target of the option cases.
OK_PROGRAM = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (memory 1)
  (func (export "main") (call $putchar (i32.const 111)) (call $putchar (i32.const 107))
    (call $putchar (i32.const 10)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""
OK_OUTPUT = b"ok\n"
# Echoes its input byte for byte: shows whether --input reached the program intact.
ECHO_PROGRAM = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (import "wasmformer" "getchar" (func $getchar (result i32)))
  (memory 1)
  (func (export "main") (local i32)
    (block $done (loop $next
      (local.set 0 (call $getchar))
      (br_if $done (i32.lt_s (local.get 0) (i32.const 0)))
      (call $putchar (local.get 0))
      (br $next)))))
"""


class SetupError(Exception):
    """A seed could not be made: the tree is broken, not a fuzz finding."""


@dataclass(frozen=True)
class Corpus:
    model_dir: Path
    specialised_dir: Path  # specialised for OK_PROGRAM
    config: dict  # model_dir's config.json
    safetensors: Path  # model_dir's weights (copied into cases, not held in memory)
    wasm: tuple[bytes, ...]
    wat: tuple[str, ...]
    c_sources: tuple[bytes, ...]
    prompts: tuple[bytes, ...]  # OK_PROGRAM's prompt first, then hello.c's
    cache_files: tuple[str, ...]  # the files of a model cache holding the universal model, relative to cache_dir
    cache_dir: Path
    wasmformer: tuple[str, ...]  # the command that runs the CLI


def build_corpus(work: Path, seed: int, wasmformer: tuple[str, ...]) -> Corpus:
    work.mkdir(parents=True, exist_ok=True)
    model_dir, specialised_dir = work / "model", work / "specialised"
    _tool(wasmformer, "build", "-o", model_dir, "--force", cwd=work)
    (work / "ok.wat").write_text(OK_PROGRAM)
    shutil.rmtree(specialised_dir, ignore_errors=True)  # a fresh model, nothing left from an older one
    _tool(wasmformer, "specialize", "ok.wat", "-o", specialised_dir, cwd=work)
    prompts = []
    for source in (work / "ok.wat", EXAMPLES / "hello.c"):
        target = work / f"{source.stem}.prompt"
        _tool(wasmformer, "compile", source, "-o", target, cwd=work)
        prompts.append(target.read_bytes())
    cache_dir = work / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    _tool(wasmformer, "run", "ok.wat", "--quiet", cwd=work, env={CACHE_VARIABLE: str(cache_dir)})
    rng = random.Random(f"corpus-{seed}")
    random_texts = [random_module(rng).text({"main": "main"}) for _ in range(RANDOM_SEED_MODULES)]
    wat = (OK_PROGRAM, ECHO_PROGRAM, *random_texts)
    return Corpus(
        model_dir=model_dir, specialised_dir=specialised_dir,
        config=json.loads((model_dir / "config.json").read_text()), safetensors=model_dir / "model.safetensors",
        wasm=tuple(_c_to_wasm(EXAMPLES / name) for name in SEED_C_EXAMPLES) + tuple(_wat_to_wasm(t) for t in wat),
        wat=wat, c_sources=tuple((EXAMPLES / name).read_bytes() for name in SEED_C_EXAMPLES),
        prompts=tuple(prompts), wasmformer=wasmformer, cache_dir=cache_dir,
        cache_files=tuple(str(path.relative_to(cache_dir)) for path in sorted(cache_dir.rglob("*")) if path.is_file()))


def _tool(wasmformer: tuple[str, ...], *args, cwd: Path, env: dict[str, str] | None = None) -> None:
    command = [*wasmformer, *map(str, args)]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=SETUP_TIMEOUT, check=False,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        raise SetupError(f"setup timed out: {' '.join(command)}") from None
    if done.returncode != 0:
        raise SetupError(f"setup failed: {' '.join(command)} (exit {done.returncode}):\n{done.stderr[-2000:]}")


def _c_to_wasm(path: Path) -> bytes:
    from wasmformer.frontend import module_bytes

    try:
        return module_bytes(path)
    except Exception as error:
        raise SetupError(f"could not compile {path} to wasm: {error}") from error


def _wat_to_wasm(text: str) -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(text))
