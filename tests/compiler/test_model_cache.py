"""The universal model's cache: found by a hash of the graph's sources (a warm start builds no
graph), covering every module the graph depends on, rebuilt when damaged, safe when two runs race."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.import_graph import closure, import_graph, module_files
from wasmformer.compiler.cache import MODELS_DIR, PACKAGE_ROOT, build_model, cache_root, source_files, sources_key
from wasmformer.disk_cache import CACHE_ENV
from wasmformer.machine import universal

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.c"
RUN_TIMEOUT_SECONDS = 300
# What the universal model's weights come from: the graph, its compiler, the model format.
WEIGHT_MODULES = ("wasmformer.machine.interpreter", "wasmformer.compiler.pipeline", "wasmformer.model")


# -- the key -----------------------------------------------------------------------------------------


def _package(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "pkg" / "sub" / "b.py").write_text("B = 2\n")
    (root / "pkg" / "notes.txt").write_text("not source\n")
    return root


def test_the_sources_key_follows_every_source_file_and_the_arguments(tmp_path):
    root = _package(tmp_path)
    key = sources_key(["pkg"], {"n": 1}, root=root)
    assert sources_key(["pkg"], {"n": 1}, root=root) == key
    assert sources_key(["pkg"], {"n": 2}, root=root) != key
    (root / "pkg" / "notes.txt").write_text("edited, but not source\n")
    assert sources_key(["pkg"], {"n": 1}, root=root) == key
    (root / "pkg" / "sub" / "b.py").write_text("B = 3\n")
    edited = sources_key(["pkg"], {"n": 1}, root=root)
    assert edited != key
    (root / "pkg" / "sub" / "c.py").write_text("")
    assert sources_key(["pkg"], {"n": 1}, root=root) != edited
    (root / "pkg" / "sub" / "c.py").rename(root / "pkg" / "c.py")  # same bytes, another module
    assert sources_key(["pkg"], {"n": 1}, root=root) not in (key, edited)


def test_the_hashed_sources_cover_every_module_the_weights_depend_on():
    modules = module_files()
    graph = import_graph(modules)
    for name, targets in graph.items():  # importing a module runs its packages' __init__ files too
        parts = name.split(".")
        targets.update(".".join(parts[:depth]) for depth in range(1, len(parts)))
    needed = set().union(*(closure(graph, start) for start in WEIGHT_MODULES))
    hashed = {path.resolve() for package in universal.GRAPH_SOURCES for path in source_files(PACKAGE_ROOT / package)}
    missing = sorted(name for name in needed if modules[name].resolve() not in hashed)
    assert not missing, f"add these to machine/universal.py GRAPH_SOURCES: {missing}"


def test_a_keyed_hit_builds_no_graph(tmp_path):
    calls = []

    def factory():
        calls.append(1)
        from tests.compiler.compiler_oracle import chain_graph

        return chain_graph(length=6)

    first = build_model(factory, tmp_path, key="k" * 32, name="chain", time_limit=0.5, log=lambda _: None)
    lines = []
    second = build_model(factory, tmp_path, key="k" * 32, name="chain", log=lines.append)
    assert calls == [1] and any("loaded from cache" in line for line in lines)
    assert second.config() == first.config()


def test_an_entry_whose_files_changed_is_rebuilt(tmp_path):
    from tests.compiler.compiler_oracle import chain_graph
    from wasmformer.model import load_model

    graph = chain_graph(length=6)
    build_model(graph, tmp_path, time_limit=0.5, log=lambda _: None)
    [entry] = (tmp_path / "models").iterdir()
    weights = entry / "model.safetensors"
    weights.write_bytes(_flip_last_weight_bit(weights.read_bytes()))
    load_model(entry)  # still a readable model, just not the one that was stored
    lines = []
    build_model(graph, tmp_path, time_limit=0.5, log=lines.append)
    assert any("warning" in line and "SHA-256" in line for line in lines)
    (entry / "extra").write_text("")
    lines.clear()
    build_model(graph, tmp_path, time_limit=0.5, log=lines.append)
    assert any("warning" in line and "lists others" in line for line in lines)
    lines.clear()
    build_model(graph, tmp_path, log=lines.append)
    assert any("loaded from cache" in line for line in lines) and not any("warning" in line for line in lines)


def test_an_unwritable_cache_still_gives_the_model(tmp_path):
    from tests.compiler.compiler_oracle import chain_graph

    blocked = tmp_path / "a file, not a directory"
    blocked.write_text("")
    lines = []
    model = build_model(chain_graph(length=6), blocked, time_limit=0.5, log=lines.append)
    assert model.n_heads >= 1 and any("not cached" in line for line in lines)


# -- damaged entries and racing runs, through the command line ----------------------------------------


def _run(cache: Path, trace: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wasmformer", "run", str(HELLO), "--trace-out", str(trace)],
        env={**os.environ, CACHE_ENV: str(cache)}, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS,
    )


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A cache holding the universal model, with hello.c's trace and output from it. The entry is a copy of
    the user cache's (built there once for the whole suite); the racing test below builds one from nothing."""
    universal.universal_model()
    entry = cache_root() / MODELS_DIR / universal.universal_key()
    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(entry, cache / MODELS_DIR / entry.name)
    trace = cache.parent / "reference.trace"
    result = _run(cache, trace)
    assert result.returncode == 0, result.stderr
    return cache, trace.read_bytes(), result.stdout


def _flip_last_weight_bit(data: bytes) -> bytes:
    """The highest bit of the last float64 (sign bit, little-endian): still a readable safetensors file."""
    return data[:-1] + bytes([data[-1] ^ 0x80])


DAMAGE = {
    "one flipped weight bit": ("model.safetensors", _flip_last_weight_bit),
    "truncated weights": ("model.safetensors", lambda data: data[: len(data) // 2]),
    "garbage weights": ("model.safetensors", lambda data: b"\xffgarbage" * 100),
    "truncated config": ("config.json", lambda data: data[: len(data) // 2]),
    "garbage config": ("config.json", lambda data: bytes(range(256))),
}


# Each damage costs a rebuild of the universal model (about 15 s): the subtlest kind in `make test` (a readable
# file with the wrong content: only the stored hashes catch it), all of them in `make test-all`.
QUICK_DAMAGE = ("one flipped weight bit",)


@pytest.mark.parametrize("damage", [pytest.param(name, marks=[] if name in QUICK_DAMAGE else [pytest.mark.slow])
                                    for name in sorted(DAMAGE)])
def test_a_damaged_cached_model_is_rebuilt_with_one_warning(built_cache, tmp_path, damage):
    source, reference_trace, reference_output = built_cache
    cache = tmp_path / "cache"
    shutil.copytree(source, cache)
    [entry] = [path for path in (cache / "models").iterdir() if path.is_dir()]
    name, spoil = DAMAGE[damage]
    (entry / name).write_bytes(spoil((entry / name).read_bytes()))

    rebuilt = _run(cache, tmp_path / "rebuilt.trace")
    assert rebuilt.returncode == 0 and "Traceback" not in rebuilt.stderr, rebuilt.stderr
    warnings = [line for line in rebuilt.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and "rebuilding" in warnings[0] and str(entry) in warnings[0]
    assert rebuilt.stdout == reference_output
    assert (tmp_path / "rebuilt.trace").read_bytes() == reference_trace

    again = _run(cache, tmp_path / "again.trace")
    assert "warning" not in again.stderr.lower() and "loaded from cache" in again.stderr
    assert (tmp_path / "again.trace").read_bytes() == reference_trace


def test_two_runs_racing_on_an_empty_cache_both_succeed(built_cache, tmp_path):
    _, reference_trace, reference_output = built_cache
    cache = tmp_path / "cache"
    env = {**os.environ, CACHE_ENV: str(cache)}
    runs = [subprocess.Popen([sys.executable, "-m", "wasmformer", "run", str(HELLO), "--trace-out",
                              str(tmp_path / f"{index}.trace")], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for index in range(2)]
    for index, run in enumerate(runs):
        output, errors = run.communicate(timeout=RUN_TIMEOUT_SECONDS)
        assert run.returncode == 0 and "Traceback" not in errors, errors
        assert output == reference_output
        assert (tmp_path / f"{index}.trace").read_bytes() == reference_trace
    entries = [path.name for path in (cache / "models").iterdir()]
    assert len(entries) == 1 and not entries[0].startswith("."), entries  # no temporary left behind
