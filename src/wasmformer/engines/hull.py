"""The hull engine: the forward pass of docs/model-format.md with exact hard-max attention in O(log t).

Same forward pass as the dense engine (dense.py), except that each head's
attention is an exact argmax with the model's tie rule (equal scores average)
instead of a softmax over the whole cache. Every (layer, head) gets one of:

- ``HullCache`` (hull_cache.py): the general case, a 2-D convex hull of the keys;
- ``PositionalHead``: the key is the same quadratic polynomial of the position
  for every token (exact positional fetches, k = (2t, -t^2) and the like), so
  the best position solves a quadratic in O(1) and its value is read from an
  array indexed by position;
- ``MeanHead``: the key is the same constant for every token, so every
  position ties and the output is a running mean, O(1);
- nothing, when the head's output columns in wo are all zero (padding heads).

Heads are classified from the weights alone (which residual slots the key
reads and who writes those slots), never from what the model computes. The
shortcuts return exactly what the generic hull would return, ties included.

Projections skip the all-zero rows and columns of each weight matrix. That
only drops exact zero terms from sums; in the model's exact regime (integer
values below 2^53) the results are identical to the dense matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wasmformer.engines.base import PrecisionHorizonError
from wasmformer.engines.hull_cache import HullCache, ValueSum, exact, integer_direction
from wasmformer.model import Model

# Integers of magnitude below 2^53 are exact in float64, and so is every partial
# sum of integer terms whose absolute values add up to less than that.
FLOAT64_EXACT_INTEGERS = 2**53

# A weight matrix is multiplied on its block of nonzero rows and columns only
# when that block is at most this fraction of the matrix and the matrix has at
# least this many entries; otherwise the plain matmul costs less than the
# gather and scatter. Measured with numpy: a 60x60 matrix takes 3.4 us dense,
# 6 us sparse (a fifth of it nonzero); 400x400 at 1% density 29 us dense,
# 13 us sparse; 2000x1000 at 0.2% density 370 us dense, 63 us sparse.
SPARSE_BLOCK_FRACTION = 0.5
SPARSE_MIN_ENTRIES = 20_000


class HullEngine:
    name = "hull"

    def __init__(self, model: Model):
        self.model = model
        self.position = 0
        self._unembed = SparseProjection(model.unembed)
        self._layers = [_HullLayer(model, index) for index in range(len(model.layers))]

    def step(self, token_id: int) -> int:
        t = self.position
        x = self.model.input_vector(token_id, t)
        for layer in self._layers:
            x = layer.forward(x, t)
        self.position += 1
        return int(np.argmax(self._unembed(x)))  # argmax returns the lowest id on exact ties

    def head_kinds(self) -> list[list[str]]:
        """For each layer, the kind of each head: "hull", "positional", "mean" or "unused"."""
        return [layer.head_kinds() for layer in self._layers]


# ---------------------------------------------------------------------------
# one layer


class _HullLayer:
    """One block: projections restricted to their nonzero parts, one attention state per head."""

    def __init__(self, model: Model, index: int):
        layer = model.layers[index]
        slots = _polynomial_slots(model, index)
        self.heads = [_make_head(model, index, head, slots) for head in range(model.n_heads)]
        hull_rows = [row for head, state in enumerate(self.heads) if isinstance(state, HullCache)
                     for row in (2 * head, 2 * head + 1)]
        keys_needed = np.zeros_like(layer.wk)
        keys_needed[hull_rows] = layer.wk[hull_rows]  # only generic hull heads look at their keys
        self.query = SparseProjection(layer.wq)
        self.key = SparseProjection(keys_needed)
        self.value = SparseProjection(layer.wv)
        self.output = SparseProjection(layer.wo)
        # a hidden unit contributes only if its gate, up and down weights are all nonzero somewhere
        live = np.flatnonzero(layer.w_gate.any(axis=1) & layer.w_up.any(axis=1) & layer.w_down.any(axis=0))
        self.gate = SparseProjection(layer.w_gate[live])
        self.up = SparseProjection(layer.w_up[live])
        self.down = SparseProjection(layer.w_down[:, live])

    def forward(self, x: np.ndarray, position: int) -> np.ndarray:
        queries, keys, values = self.query(x).tolist(), self.key(x).tolist(), self.value(x).tolist()
        heads_out = [0.0] * len(queries)
        for head, state in enumerate(self.heads):
            if state is None:
                continue
            first, second = 2 * head, 2 * head + 1
            if isinstance(state, HullCache):
                state.insert(keys[first], keys[second], values[first], values[second])
                output = state.query(queries[first], queries[second])
            else:
                output = state.attend(position, queries[first], queries[second], values[first], values[second])
            heads_out[first], heads_out[second] = output
        x = x + self.output(np.array(heads_out))
        return x + self.down(np.maximum(self.gate(x), 0.0) * self.up(x))

    def head_kinds(self) -> list[str]:
        names = {HullCache: "hull", PositionalHead: "positional", MeanHead: "mean"}
        return [names[type(state)] if state is not None else "unused" for state in self.heads]


def _make_head(model: Model, layer_index: int, head: int, slots: dict[int, tuple[int, int, int]]):
    layer = model.layers[layer_index]
    if not layer.wo[:, 2 * head: 2 * head + 2].any():
        return None  # its output is never read
    key = _key_polynomial(layer.wk[2 * head: 2 * head + 2], slots, model.max_exact_tokens)
    if key is None:
        query_y = _constant_row(layer.wq[2 * head + 1], slots)  # a fixed sign tells which chain can win
        return HullCache(upper=query_y is None or query_y > 0, lower=query_y is None or query_y < 0)
    if key.is_constant():
        return MeanHead()
    return PositionalHead(key, horizon=model.max_exact_tokens)


# ---------------------------------------------------------------------------
# projections


class SparseProjection:
    """y = W @ x, computed on the block of W's nonzero rows and columns when that block is small."""

    def __init__(self, weights: np.ndarray):
        self.rows = np.flatnonzero(weights.any(axis=1))
        self.columns = np.flatnonzero(weights.any(axis=0))
        self.out_size = weights.shape[0]
        block_size = len(self.rows) * len(self.columns)
        worth_it = weights.size >= SPARSE_MIN_ENTRIES and block_size <= SPARSE_BLOCK_FRACTION * weights.size
        self.dense = None if worth_it else weights
        self.block = np.ascontiguousarray(weights[np.ix_(self.rows, self.columns)])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense @ x
        y = np.zeros(self.out_size)
        y[self.rows] = self.block @ x[self.columns]
        return y


# ---------------------------------------------------------------------------
# positional and mean heads


@dataclass(frozen=True)
class KeyPolynomial:
    """A head whose key is k(t) = constant + linear·t + quadratic·t² for every token, exactly.

    Each field is the (x, y) pair of integer coefficients.
    """

    constant: tuple[int, int]
    linear: tuple[int, int]
    quadratic: tuple[int, int]

    def is_constant(self) -> bool:
        return self.linear == (0, 0) and self.quadratic == (0, 0)


def positional_key(model: Model, layer_index: int, head: int) -> KeyPolynomial | None:
    """The head's key as a polynomial of the position, if the weights make it one exactly.

    The key reads residual slots through integer weights; it is a polynomial of
    t when every slot it reads holds the same polynomial of t for every token:
    a slot whose embedding column is one integer for all tokens, that no
    earlier layer writes (attention or FFN), and that is not the recency slot;
    the t and t2 slots add t and t² on top. The float64 key computed by the
    dense pass then equals the polynomial exactly as long as every term stays
    an integer and their magnitudes add up to less than 2^53 up to the
    precision horizon; otherwise this returns None and the head stays generic.
    """
    key_rows = model.layers[layer_index].wk[2 * head: 2 * head + 2]
    return _key_polynomial(key_rows, _polynomial_slots(model, layer_index), model.max_exact_tokens)


def _key_polynomial(
    key_rows: np.ndarray, slots: dict[int, tuple[int, int, int]], horizon: int
) -> KeyPolynomial | None:
    """``positional_key`` for the two key rows, given the layer's polynomial slots."""
    coefficients = []
    for row in key_rows:
        constant = linear = quadratic = magnitude = 0
        for slot in np.flatnonzero(row):
            weight = float(row[slot])
            if slot not in slots or not weight.is_integer():
                return None
            slot_constant, slot_linear, slot_quadratic = slots[slot]
            weight = int(weight)
            constant += weight * slot_constant
            linear += weight * slot_linear
            quadratic += weight * slot_quadratic
            largest_slot_value = abs(slot_constant) + slot_linear * horizon + slot_quadratic * horizon**2
            magnitude += abs(weight) * largest_slot_value
        if magnitude >= FLOAT64_EXACT_INTEGERS:
            return None
        coefficients.append((constant, linear, quadratic))
    (c0, l0, q0), (c1, l1, q1) = coefficients
    return KeyPolynomial(constant=(c0, c1), linear=(l0, l1), quadratic=(q0, q1))


def _constant_row(row: np.ndarray, slots: dict[int, tuple[int, int, int]]) -> float | None:
    """The value of ``row @ x`` when it is the same at every token (it reads only constant slots), else None."""
    total = 0.0
    for slot in np.flatnonzero(row):
        if slot not in slots or slots[slot][1:] != (0, 0):
            return None
        total += float(row[slot]) * slots[slot][0]
    return total


def _polynomial_slots(model: Model, layer_index: int) -> dict[int, tuple[int, int, int]]:
    """Slots holding the same (constant, t-coefficient, t²-coefficient) for every token at this layer."""
    written = np.zeros(model.d_model, dtype=bool)
    for layer in model.layers[:layer_index]:
        written |= layer.wo.any(axis=1) | layer.w_down.any(axis=1)
    t_slot, t2_slot, recency_slot = (model.positional[name] for name in ("t", "t2", "recency"))
    slots = {}
    for slot in range(model.d_model):
        column = model.embed[:, slot]
        if written[slot] or slot == recency_slot or not np.all(column == column[0]):
            continue
        if not float(column[0]).is_integer():
            continue
        slots[slot] = (int(column[0]), int(slot == t_slot), int(slot == t2_slot))
    return slots


class PositionalHead:
    """Exact hard-max attention over positions 0..t for a key that is a polynomial of the position.

    The score of position j is q·k(j) = A·j² + B·j + C; with the query scaled
    to integers (a positive scale: same argmax), A and B are exact integers. For
    A < 0 the score is strictly concave: the best integers are the floor and
    ceiling of the real maximiser -B / 2A (clamped to 0..t), and only those two
    can tie. For A > 0 it is strictly convex and for A = 0, B ≠ 0 monotone: the
    best positions are among 0 and t. For A = B = 0 every position ties.
    Equal scores average their values, as in the generic hull.
    """

    def __init__(self, key: KeyPolynomial, horizon: int):
        self.key = key
        self.horizon = horizon  # positions up to which the polynomial key was proven exact
        self._values: list[tuple[float, float]] = []  # by position
        self._everything = ValueSum()

    def attend(self, position: int, qx: float, qy: float, v1: float, v2: float) -> tuple[float, float]:
        if position >= self.horizon:
            raise PrecisionHorizonError(
                f"position {position} lies beyond the precision horizon ({self.horizon}) of a positional head")
        self._values.append((v1, v2))
        self._everything.add(exact(v1), exact(v2))
        return self._winners(*integer_direction(qx, qy), position).mean()

    def _winners(self, qx: int, qy: int, last: int) -> ValueSum:
        (linear_x, linear_y), (quadratic_x, quadratic_y) = self.key.linear, self.key.quadratic
        a = qx * quadratic_x + qy * quadratic_y
        b = qx * linear_x + qy * linear_y
        if a == 0 and b == 0:
            return self._everything
        if a < 0:
            peak = (-b) // (2 * a)  # floor of the real maximiser
            candidates = {min(max(peak, 0), last), min(max(peak + 1, 0), last)}
        else:
            candidates = {0, last}
        scores = {j: a * j * j + b * j for j in candidates}
        best = max(scores.values())
        winners = ValueSum()
        for j, score in scores.items():
            if score == best:
                winners.add(*(exact(v) for v in self._values[j]))
        return winners


class MeanHead:
    """A head whose key is the same for every token: every position ties, the output is the running mean."""

    def __init__(self) -> None:
        self._everything = ValueSum()

    def attend(self, position: int, qx: float, qy: float, v1: float, v2: float) -> tuple[float, float]:
        self._everything.add(exact(v1), exact(v2))
        return self._everything.mean()
