"""The cache key of a graph passed directly to ``build_model``: a SHA-256 over a canonical
serialisation of the whole graph (every node's kind, name, bounds, coefficients, tables,
tie rule; vocabulary, halt token, output bytes, max_exact_tokens, logits) and ``COMPILER_VERSION``,
so any change to the graph or the compiler gives a new entry.
"""

from __future__ import annotations

import hashlib
import json

from wasmformer.compiler.version import COMPILER_VERSION
from wasmformer.disk_cache import HASH_DIGITS
from wasmformer.graph.expr import Attention, Expr, Feature, HeadOutput, Neurons, Positional, TokenTable
from wasmformer.graph.graph import Graph
from wasmformer.graph.walk import is_placeholder, placeholder_definition


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
        "max_exact_tokens": graph.max_exact_tokens,
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
