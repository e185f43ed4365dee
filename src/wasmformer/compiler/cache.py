"""Pass 5, the model cache: compile a graph once, load it afterwards.

An entry lives in ``<root>/models/<key>/`` in the wasmformer/1 layout (the root
is ``disk_cache.cache_root``). The key is either

* ``graph_hash`` of a graph passed in (graph_key.py): the graph has to be built
  to be looked up; or
* ``sources_key`` of the code a graph factory runs, given by the caller (the
  universal model, machine/universal.py): every ``.py`` file under the named
  packages, ``COMPILER_VERSION``, the factory's arguments, and the Python and
  numpy versions. A hit then builds no graph at all; any edit to those files
  gives a new key, so a stale model is never loaded.

An entry is written to a temporary directory beside it and renamed into place,
so a reader never sees half a model and two builds racing on one entry both
succeed. Beside the model files the entry holds the SHA-256 of each
(``DIGESTS_FILE``), checked before loading: a flipped bit in the weights loads
without complaint and would run a different model. An entry that fails that
check or fails to load for any reason is damaged: it is moved aside and
rebuilt, with a one-line warning. A cache that cannot be written only costs
the next run a rebuild.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from wasmformer.compiler.version import COMPILER_VERSION
from wasmformer.disk_cache import CACHE_ENV, KeyHasher, cache_root, file_digest
from wasmformer.model import Model, load_model, save_model

if TYPE_CHECKING:
    from wasmformer.graph.graph import Graph

__all__ = ["CACHE_ENV", "build_model", "cache_root", "sources_key"]

MODELS_DIR = "models"
# The package directory: sources_key names files relative to it, so the key does
# not depend on where wasmformer is installed.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SOURCE_SUFFIX = ".py"
# In each entry, beside the model's files: {file name: SHA-256 of its bytes}.
DIGESTS_FILE = "cache-digests.json"


class DamagedEntryError(Exception):
    """A cache entry whose files are not the ones that were stored."""


def build_model(
    graph_or_factory: Graph | Callable[[], Graph],
    cache_dir: str | Path | None = None,
    *,
    key: str | None = None,
    name: str = "",
    time_limit: float | None = None,
    log: Callable[[str], None] | None = None,
) -> Model:
    """The compiled model of a graph (or of the graph a factory builds), from the cache when present.

    With ``key`` (a ``sources_key`` of everything the factory's graph depends
    on) the entry is found without building the graph; without it, by the
    graph's own hash. ``name`` labels the log lines of a keyed lookup;
    ``time_limit`` caps the scheduling MILP (the compiler's default if None).
    """
    logger = logging.getLogger(__name__)
    log, warn = log or logger.info, log or logger.warning
    graph = None
    if key is None:
        from wasmformer.compiler.graph_key import graph_hash

        graph = _graph(graph_or_factory)
        key, name = graph_hash(graph), graph.name
    directory = cache_root(cache_dir) / MODELS_DIR / key
    model = _load_entry(directory, name, log, warn)
    if model is None:
        model = _compile(graph or _graph(graph_or_factory), time_limit, log)
        stored = _store(model, directory)
        log(f"model {name!r}: compiled and " + (f"cached in {directory}" if stored else
                                                  f"not cached ({directory.parent} is not writable)"))
    return model


def _graph(graph_or_factory) -> Graph:
    return graph_or_factory() if callable(graph_or_factory) else graph_or_factory


def _compile(graph: Graph, time_limit: float | None, log: Callable[[str], None]) -> Model:
    from wasmformer.compiler.pipeline import compile_graph

    limit = {} if time_limit is None else {"time_limit": time_limit}
    model, _ = compile_graph(graph, log=log, **limit)
    return model


def _load_entry(directory: Path, name: str, log: Callable[[str], None], warn: Callable[[str], None]) -> Model | None:
    """The cached model, or None when there is none; a damaged entry is moved aside (and None returned)."""
    if not directory.exists():
        return None
    start = time.perf_counter()
    try:
        _check_digests(directory)
        model = load_model(directory)
    except Exception as error:  # noqa: BLE001 - whatever a damaged file raises, the cure is a rebuild
        warn(f"warning: model {name!r}: cache entry {directory} is unreadable "
            f"({type(error).__name__}: {_first_line(error)}); rebuilding")
        _discard(directory)
        return None
    log(f"model {name!r}: loaded from cache {directory} in {time.perf_counter() - start:.2f} s")
    return model


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no message"


def _discard(directory: Path) -> None:
    """Rename the entry aside first: readers racing with us then see it whole or not at all."""
    try:
        aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.damaged.", dir=directory.parent))
    except OSError:  # a read-only cache: the rebuilt model will not be stored either
        return
    with contextlib.suppress(OSError):  # another process discarded it first
        os.replace(directory, aside / directory.name)
    shutil.rmtree(aside, ignore_errors=True)


def _check_digests(directory: Path) -> None:
    try:
        expected = json.loads((directory / DIGESTS_FILE).read_bytes())
    except FileNotFoundError:
        raise DamagedEntryError(f"{DIGESTS_FILE} is missing") from None
    present = {path.name for path in directory.iterdir() if path.name != DIGESTS_FILE}
    if not isinstance(expected, dict) or set(expected) != present:
        raise DamagedEntryError(f"the files are {sorted(present)}, {DIGESTS_FILE} lists others")
    for name, digest in expected.items():
        if file_digest(directory / name) != digest:
            raise DamagedEntryError(f"{name} is not the file that was stored (SHA-256 differs)")


def _write_digests(directory: Path) -> None:
    digests = {path.name: file_digest(path) for path in sorted(directory.iterdir())}
    (directory / DIGESTS_FILE).write_text(json.dumps(digests, indent=1) + "\n")


def _store(model: Model, directory: Path) -> bool:
    """Save ``model`` as the entry; False if the cache cannot be written (another writer winning a race is fine)."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError:
        return False
    try:
        save_model(model, staging)
        _write_digests(staging)
        os.rename(staging, directory)
        return True
    except OSError:
        return directory.is_dir()  # a lost race with another writer of the same entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sources_key(packages: Iterable[str], arguments: dict | None = None, *, root: Path = PACKAGE_ROOT) -> str:
    """The cache key of a graph built by code in ``packages`` (directories or files relative to ``root``).

    Hashes every ``.py`` file under them (path and bytes), so an edit anywhere
    in them gives a new key; a package that does not exist (yet) adds no files.
    ``arguments`` (JSON data) are the factory's arguments.
    """
    import numpy

    hasher = KeyHasher().add(json.dumps({
        "compiler": COMPILER_VERSION,
        "python": list(sys.version_info[:2]),
        "numpy": numpy.__version__.split(".")[0],
        "arguments": arguments or {},
    }, sort_keys=True))
    for package in sorted(packages):
        hasher.add(package).add_files(root, source_files(root / package))
    return hasher.key()


def source_files(path: Path) -> list[Path]:
    """The ``.py`` files ``sources_key`` hashes for one entry of its ``packages``."""
    if path.is_file():
        return [path]
    return [file for file in path.rglob(f"*{SOURCE_SUFFIX}") if file.is_file()]
