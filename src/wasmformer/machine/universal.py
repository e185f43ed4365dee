"""The universal model: the interpreter graph compiled once and cached on disk.

The cache entry is found by a hash of the source files that define the graph
and its compilation (``GRAPH_SOURCES``, see ``compiler.cache.sources_key``),
so a warm start reads the model without building the graph; editing any of
those files gives a new key and a rebuild. tests/compiler/test_model_cache.py
checks that every module the interpreter and the compiler import is covered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from wasmformer.compiler.cache import build_model, sources_key
from wasmformer.model import Model

# Everything the universal graph and its weights can depend on, relative to the
# package directory: whole packages, so that a module added to one is covered too.
# Broader than needed (frontend, the rest of machine) costs only spurious rebuilds.
GRAPH_SOURCES = ("__init__.py", "compiler", "disk_cache.py", "errors.py", "frontend", "graph", "machine", "model.py", "vm")
GRAPH_NAME = "universal"


def universal_model(cache_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Model:
    """The model that runs any VM program in its prompt (built on first use, then loaded from the cache)."""
    return build_model(_interpreter_graph, cache_dir, key=universal_key(), name=GRAPH_NAME, log=log)


def universal_key() -> str:
    """The universal model's cache key: its entry is ``<cache root>/models/<key>``."""
    return sources_key(GRAPH_SOURCES, {"factory": "wasmformer.machine.interpreter.build_interpreter"})


def _interpreter_graph():
    # Imported here: building the graph is needed only on a cache miss, and importing
    # the interpreter (with the graph DSL and the VM definitions behind it) costs time.
    from wasmformer.machine.interpreter import build_interpreter

    return build_interpreter()
