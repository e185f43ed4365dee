"""Why one token: every head's lookup at the forward pass that produced it.

Token ``n`` of a run (n ≥ 1) is the argmax of the forward pass at position
``n − 1``. ``explain_tokens`` runs the forward pass of docs/model-format.md
over the prefix (a short one all positions at once, layer by layer, with
the dense engine's softmax; a long one position by position through the hull
engine's layers, keeping every live head's keys and values) and, at each
position asked about,
records per head the positions that won its lookup (the softmax weights
that are not 0: one position for a latest or unique lookup, every tied
position for a mean), the query and the winner's key in the graph's units,
and the values the head wrote into the residual stream, named by the
compiler's metadata (config.json ``heads``; compiler/metadata.py).

The instrumentation lives here, not in the engines: this module reads the
Model's weights directly. It knows the compiler's scoring formulas
(compiler/weights.py) to turn a score's coordinates back into the graph's
query and key, and nothing about WebAssembly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wasmformer.graph.precision import TEMPERATURE, tie_break_scale
from wasmformer.model import Model, recency

# Rows of the [rows, positions] score matrix computed at once: bounds the memory to ROW_CHUNK × positions floats.
ROW_CHUNK = 256
MAX_LISTED = 32  # winners listed one by one in JSON; a mean over more gives the count only
LATEST, UNIQUE, AVERAGE = "latest", "unique", "average"
BATCHED, SWEEP = "batched", "sweep"  # how explain_tokens computes the prefix (see there)
# Up to this many positions the batched pass is faster than the sweep (n² scores per head against the hull
# engine's ~400 positions per second; measured on the universal model, docs/inspect.md).
BATCHED_POSITIONS = 2048


class ExplainError(ValueError):
    """A token that cannot be explained (outside the run, or the prompt's first token)."""


@dataclass
class HeadLookup:
    """One head at one position: who won and what it wrote."""

    layer: int
    head: int
    name: str
    tie: str | None
    query_text: str | None  # the query and key as graph expressions (metadata), None without it
    key_text: str | None
    clear_text: str | None
    winners: list[int]  # positions with a nonzero weight, oldest first
    weights: list[float]  # their softmax weights
    query: float | None  # the query's value in the graph's units (None for a mean)
    key: float | None  # the (newest) winner's key in the graph's units
    outputs: list[tuple[str, int, float]]  # (feature, slot, value) written into the residual stream

    @property
    def winner(self) -> int:
        """The newest winning position."""
        return self.winners[-1]

    def as_dict(self) -> dict:
        return {"layer": self.layer, "head": self.head, "name": self.name, "tie": self.tie,
                "query_expr": self.query_text, "key_expr": self.key_text, "clear_expr": self.clear_text,
                "winners": self.winners if len(self.winners) <= MAX_LISTED else None,
                "winner_count": len(self.winners), "winner": self.winner, "weight": self.weights[-1],
                "query": self.query, "key": self.key,
                "outputs": [{"feature": name, "slot": slot, "value": value} for name, slot, value in self.outputs]}


@dataclass
class TokenExplanation:
    """The forward pass at ``position`` that produced token ``position + 1``."""

    position: int
    token: str  # the token at ``position`` (the pass's input)
    produced: str  # the argmax of this pass
    expected: str | None  # the token the run has at position + 1 (None past the run's end)
    lookups: list[HeadLookup] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"position": self.position, "token": self.token, "produces_position": self.position + 1,
                "produced": self.produced, "expected": self.expected,
                "heads": [lookup.as_dict() for lookup in self.lookups]}


@dataclass(frozen=True)
class _LiveHead:
    """A head whose output some slot reads (the dense engine computes only these)."""

    index: int
    written: list[tuple[int, int]]  # (value 0 or 1, slot) pairs of W_o


def _live_heads(layer) -> list[_LiveHead]:
    heads = []
    for index in range(layer.wq.shape[0] // 2):
        written = [(value, int(slot)) for value in (0, 1) for slot in np.flatnonzero(layer.wo[:, 2 * index + value])]
        if written:
            heads.append(_LiveHead(index, written))
    return heads


def _input(model: Model, token_ids: list[int]) -> np.ndarray:
    positions = np.arange(len(token_ids), dtype=np.float64)
    x = model.embed[np.asarray(token_ids, dtype=np.int64)].copy()
    x[:, model.positional["t"]] += positions
    x[:, model.positional["t2"]] += positions * positions
    x[:, model.positional["recency"]] += recency(positions)
    return x


def explain_tokens(model: Model, token_ids: list[int], positions: list[int],
                   method: str | None = None) -> list[TokenExplanation]:
    """The forward passes at ``positions`` (each < len(token_ids)), over the prefix up to the last of them.

    ``method``: BATCHED (every position at once, O(n²) per head) or SWEEP (one
    position at a time through the hull engine's layers, O(n log n), keeping
    each live head's keys and values); by default BATCHED up to
    BATCHED_POSITIONS positions, SWEEP beyond when the hull engine is installed.
    """
    if not positions:
        return []
    vocab = model.vocab
    for position in positions:
        if not 0 <= position < len(token_ids):
            raise ExplainError(f"position {position} is outside the run (0..{len(token_ids) - 1})")
    wanted = sorted(set(positions))
    if method is None:
        from wasmformer.engines import hull_available

        method = SWEEP if wanted[-1] + 1 > BATCHED_POSITIONS and hull_available() else BATCHED
    context = _Context(model)
    records, produced = (_sweep if method == SWEEP else _batched)(model, token_ids, wanted, context)
    explanations = {}
    for position in wanted:
        expected = vocab[token_ids[position + 1]] if position + 1 < len(token_ids) else None
        explanations[position] = TokenExplanation(position, vocab[token_ids[position]], vocab[produced[position]],
                                                  expected, records[position])
    return [explanations[position] for position in positions]


class _Context:
    """What naming a head's lookup needs: the metadata, the slot tenants, the latest lookups' tie scale."""

    def __init__(self, model: Model):
        self.metadata = {(entry.get("layer"), entry.get("head")): entry for entry in model.extra.get("heads", [])}
        self.slot_names = _slot_names(model)
        self.tie_scale = tie_break_scale(model.max_exact_tokens)

    def lookup(self, layer: int, head: "_LiveHead", query: np.ndarray, keys: np.ndarray, winners: list[int],
               weights: list[float], out: np.ndarray) -> HeadLookup:
        return _lookup(layer, head, self.metadata.get((layer, head.index), {}), query, keys, winners, weights, out,
                       self.slot_names, self.tie_scale)


def _sweep(model: Model, token_ids: list[int], wanted: list[int], context: _Context):
    """One position at a time through the hull engine's layers (exact hard-max attention, O(log t) per head),
    keeping every live head's keys and values so that the wanted positions can be scored against all of them.

    Reads ``HullEngine``'s per-layer forward (``_layers``): the engine itself stays free of instrumentation.
    """
    from wasmformer.engines.hull import HullEngine

    engine = HullEngine(model)
    count = wanted[-1] + 1
    live = [_live_heads(layer) for layer in model.layers]
    rows = [[row for head in heads for row in (2 * head.index, 2 * head.index + 1)] for heads in live]
    projections = [(layer.wq[r], layer.wk[r], layer.wv[r]) for layer, r in zip(model.layers, rows)]
    keys = [np.zeros((count, len(r))) for r in rows]
    values = [np.zeros((count, len(r))) for r in rows]
    remaining = set(wanted)
    records: dict[int, list[HeadLookup]] = {position: [] for position in wanted}
    produced: dict[int, int] = {}
    for t in range(count):
        x = model.input_vector(token_ids[t], t)
        for index, (layer, (wq, wk, wv)) in enumerate(zip(engine._layers, projections)):
            if rows[index]:
                keys[index][t], values[index][t] = wk @ x, wv @ x
                if t in remaining:
                    query = wq @ x
                    for number, head in enumerate(live[index]):
                        columns = slice(2 * number, 2 * number + 2)
                        head_keys, head_values = keys[index][:t + 1, columns], values[index][:t + 1, columns]
                        scores = head_keys @ query[columns]
                        weights = np.exp(scores - scores.max())
                        weights /= weights.sum()
                        winners = np.flatnonzero(weights)
                        records[t].append(context.lookup(index, head, query[columns], head_keys, winners.tolist(),
                                                         weights[winners].tolist(), weights @ head_values))
            x = layer.forward(x, t)
        if t in remaining:
            produced[t] = int(np.argmax(model.unembed @ x))
    return records, produced


def _batched(model: Model, token_ids: list[int], wanted: list[int], context: "_Context"):
    """Every position at once, layer by layer: O(n²) per head, fastest for short prefixes."""
    count = wanted[-1] + 1
    x = _input(model, token_ids[:count])
    records: dict[int, list[HeadLookup]] = {position: [] for position in wanted}
    for layer_index, layer in enumerate(model.layers):
        heads = _live_heads(layer)
        if heads:
            update = np.zeros_like(x)
            for head in heads:
                rows = slice(2 * head.index, 2 * head.index + 2)
                q, k, v = x @ layer.wq[rows].T, x @ layer.wk[rows].T, x @ layer.wv[rows].T
                out, details = _attend(q, k, v, wanted)
                update += out @ layer.wo[:, rows].T
                for position, (winners, weights) in details.items():
                    records[position].append(context.lookup(layer_index, head, q[position], k, winners, weights,
                                                            out[position]))
            x = x + update
        x = x + (np.maximum(x @ layer.w_gate.T, 0.0) * (x @ layer.w_up.T)) @ layer.w_down.T
    logits = x[wanted] @ model.unembed.T
    return records, {position: int(np.argmax(logits[row])) for row, position in enumerate(wanted)}


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, wanted: list[int]):
    """Causal softmax attention of one head over all positions; the nonzero weights at ``wanted`` positions."""
    count = len(q)
    out = np.zeros((count, 2))
    details = {}
    wanted_set = set(wanted)
    for first in range(0, count, ROW_CHUNK):
        stop = min(count, first + ROW_CHUNK)
        scores = q[first:stop] @ k[:stop].T  # [rows, columns]: columns past a row are masked below
        columns = np.arange(stop)
        rows = np.arange(first, stop)
        scores = np.where(columns[None, :] <= rows[:, None], scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        out[first:stop] = weights @ v[:stop]
        for position in wanted_set.intersection(range(first, stop)):
            row = weights[position - first]
            winners = np.flatnonzero(row)
            details[position] = (winners.tolist(), row[winners].tolist())
    return out, details


def _lookup(layer: int, head: _LiveHead, entry: dict, query: np.ndarray, keys: np.ndarray, winners: list[int],
            weights: list[float], out: np.ndarray, slot_names: dict[tuple[int, int], str],
            tie_scale: int) -> HeadLookup:
    tie = entry.get("tie")
    newest = winners[-1]
    query_value = key_value = None
    if tie in (LATEST, UNIQUE):
        query_value = float(query[0]) / TEMPERATURE
        key_value = float(keys[newest, 0]) / (2 * tie_scale if tie == LATEST else 2)
    names = entry.get("outputs") or []
    outputs = []
    for value_index, slot in head.written:
        name = names[value_index] if value_index < len(names) and names[value_index] else None
        outputs.append((name or slot_names.get((slot, 2 * layer), f"slot {slot}"), slot, float(out[value_index])))
    return HeadLookup(layer, head.index, entry.get("name", f"head {head.index}"), tie, entry.get("query"),
                      entry.get("key"), entry.get("clear"), winners, weights, query_value, key_value, outputs)


def _slot_names(model: Model) -> dict[tuple[int, int], str]:
    """(slot, boundary) -> the feature living there, from config.json ``slots`` (empty without it)."""
    names = {}
    for tenant in model.extra.get("slots", []):
        first, last = tenant.get("live", (0, -1))
        for boundary in range(first, last + 1):
            names[(tenant.get("slot"), boundary)] = tenant.get("feature")
    return names
