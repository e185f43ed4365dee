"""Pass 5, the model cache: compile a graph once, load it afterwards.

The key is a SHA-256 over a canonical serialisation of the whole graph (every
node's kind, name, bounds, coefficients, tables, tie rule; vocabulary, halt
token, output bytes, max_tokens, logits) and ``COMPILER_VERSION``, so any
change to the graph or the compiler gives a new entry. Entries live in
``<root>/models/<hash>/`` in the wasmformer/1 layout, where the root is
``cache_dir``, else ``$WASMFORMER_CACHE``, else ``~/.cache/wasmformer``.
An entry is written to a temporary directory beside it and renamed into place,
so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from wasmformer.compiler.pipeline import COMPILER_VERSION, compile_graph
from wasmformer.compiler.schedule import DEFAULT_TIME_LIMIT
from wasmformer.graph.expr import Attention, Expr, Feature, HeadOutput, Neurons, Positional, TokenTable
from wasmformer.graph.graph import Graph
from wasmformer.graph.walk import is_placeholder, placeholder_definition
from wasmformer.model import Model, ModelFormatError, load_model, save_model

CACHE_ENV = "WASMFORMER_CACHE"
DEFAULT_CACHE_ROOT = Path("~/.cache/wasmformer")
# Hex digits of the SHA-256 kept in the directory name: 128 bits, no collisions in practice.
HASH_DIGITS = 32


def cache_root(cache_dir: str | Path | None = None) -> Path:
    chosen = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT
    return Path(chosen).expanduser()


def build_model(
    graph_or_factory: Graph | Callable[[], Graph],
    cache_dir: str | Path | None = None,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    log: Callable[[str], None] | None = None,
) -> Model:
    """The compiled model of a graph (or of the graph a factory builds), from the cache when present."""
    log = log or logging.getLogger(__name__).info
    graph = graph_or_factory if isinstance(graph_or_factory, Graph) else graph_or_factory()
    directory = cache_root(cache_dir) / "models" / graph_hash(graph)
    start = time.perf_counter()
    if directory.is_dir():
        try:
            model = load_model(directory)
            log(f"model {graph.name!r}: loaded from cache {directory} in {time.perf_counter() - start:.2f} s")
            return model
        except ModelFormatError as error:
            log(f"model {graph.name!r}: cache entry {directory} is unreadable ({error}); rebuilding")
            shutil.rmtree(directory, ignore_errors=True)
    model, _ = compile_graph(graph, time_limit=time_limit, log=log)
    _store(model, directory)
    log(f"model {graph.name!r}: compiled and cached in {directory}")
    return model


def _store(model: Model, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_model(model, staging)
        os.rename(staging, directory)
    except OSError:
        if not directory.is_dir():  # not a lost race with another writer of the same entry
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def graph_hash(graph: Graph) -> str:
    text = json.dumps(canonical_graph(graph), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]


def canonical_graph(graph: Graph) -> dict:
    """Everything that determines the compiled model, as plain JSON data."""
    return {
        "compiler": COMPILER_VERSION,
        "name": graph.name,
        "vocab": list(graph.vocab),
        "halt_token": graph.halt_token,
        "output_bytes": sorted(graph.output_bytes.items()),
        "max_tokens": graph.max_tokens,
        "features": [_feature(f) for f in graph.features],
        "heads": [_head(h) for h in graph.heads],
        "logits": None if graph.logits is None else [[t, _expr(e)] for t, e in graph.logits.items()],
    }


def _feature(feature: Feature) -> dict:
    record = {
        "kind": type(feature).__name__,
        "name": feature.name,
        "bounds": [str(feature.lo), str(feature.hi)],
        "exact": feature.exact,
    }
    if isinstance(feature, TokenTable):
        record["table"] = sorted(feature.table.items())
    elif isinstance(feature, Positional):
        record["positional"] = feature.kind
    elif isinstance(feature, Neurons):
        record["terms"] = [[str(t.coefficient), _expr(t.a), _expr(t.b)] for t in feature.terms]
    elif isinstance(feature, HeadOutput):
        record["head"] = [feature.head.index, feature.slot]
    elif is_placeholder(feature):
        record["definition"] = _expr(placeholder_definition(feature))
    return record


def _head(head: Attention) -> dict:
    optional = {name: None if e is None else _expr(e) for name, e in
                (("clear", head.clear), ("key_square", head.key_square))}
    return {
        "name": head.name,
        "tie": head.tie,
        "query": _expr(head.query),
        "key": _expr(head.key),
        "values": [_expr(v) for v in head.values],
        "outputs": [o.index for o in head.outputs],
        **optional,
    }


def _expr(expr: Expr | None) -> list | None:
    """Terms by feature index (creation order, unique within the graph) and the constant."""
    if expr is None:
        return None
    return [sorted([f.index, str(c)] for f, c in expr.terms.items()), str(expr.constant)]
