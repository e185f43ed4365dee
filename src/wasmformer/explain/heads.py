"""Why one token: every head's lookup at the forward pass that produced it.

Token ``n`` of a run (n ≥ 1) is the argmax of the forward pass at position
``n − 1``. ``explain_tokens`` runs the forward pass of docs/model-format.md
over the prefix (every position at once, layer by layer, as the dense engine
computes it one position at a time) and, at each position asked about,
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
# A softmax weight exp(s - max) is exactly 0 in float64 below this gap: such positions are not winners.
UNDERFLOW_GAP = 800.0
LATEST, UNIQUE, AVERAGE = "latest", "unique", "average"


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


MAX_LISTED = 32  # winners listed one by one in JSON; a mean over more gives the count only


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


def explain_tokens(model: Model, token_ids: list[int], positions: list[int]) -> list[TokenExplanation]:
    """The forward passes at ``positions`` (each < len(token_ids)), over the prefix up to the last of them."""
    if not positions:
        return []
    vocab = model.vocab
    for position in positions:
        if not 0 <= position < len(token_ids):
            raise ExplainError(f"position {position} is outside the run (0..{len(token_ids) - 1})")
    count = max(positions) + 1
    x = _input(model, token_ids[:count])
    wanted = sorted(set(positions))
    metadata = {(entry.get("layer"), entry.get("head")): entry for entry in model.extra.get("heads", [])}
    slot_names = _slot_names(model)
    tie_scale = tie_break_scale(model.max_exact_tokens)
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
                entry = metadata.get((layer_index, head.index), {})
                for position, (winners, weights) in details.items():
                    records[position].append(_lookup(layer_index, head, entry, q[position], k, winners, weights,
                                                     out[position], slot_names, tie_scale))
            x = x + update
        x = x + (np.maximum(x @ layer.w_gate.T, 0.0) * (x @ layer.w_up.T)) @ layer.w_down.T
    logits = x[wanted] @ model.unembed.T
    explanations = []
    for row, position in enumerate(wanted):
        produced = vocab[int(np.argmax(logits[row]))]
        expected = vocab[token_ids[position + 1]] if position + 1 < len(token_ids) else None
        explanations.append(TokenExplanation(position, vocab[token_ids[position]], produced, expected,
                                             records[position]))
    by_position = {explanation.position: explanation for explanation in explanations}
    return [by_position[position] for position in positions]


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
