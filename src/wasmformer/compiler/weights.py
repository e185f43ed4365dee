"""Pass 4, weights: the scheduled, allocated program becomes wasmformer/1 tensors.

Every weight is first accumulated exactly (ints and Fractions), then checked
and converted to float64 once: a weight that is not finite, or an integer
weight of magnitude 2**53 or more, stops the compiler with the name of the node
it belongs to, because float64 could not hold the score it feeds exactly.

The formulas (S = TEMPERATURE, B = tie_break_scale(max_exact_tokens), M = the
head's clear penalty, c = its clear flag or 0; docs/compiler.md explains why):

- query of every head: (S·q, S), the constant of q on the ``one`` slot;
- ``latest`` key: (2B·k, -B·k² + t - M·c); ``unique`` key: (2k, -k² - M·c);
  ``average``: query (0, S), key (0, -M·c);
- values: the head's one or two values; W_o copies head output i to its slot;
- one FFN unit per gated term c·a·relu(b): gate row b, up row a, down column c;
  zeroing units (-x)·relu(one) clear reused slots;
- embed: token-table values (``one`` is the table that is 1 for every token),
  zero on the positional slots (the engine adds t, t², r(t));
- unembed: the logit expression of each token, zero for tokens without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from wasmformer.compiler.allocate import Allocation
from wasmformer.compiler.lower import ATTENTION, FfnOp, HeadOp, Program
from wasmformer.compiler.placement import Schedule
from wasmformer.graph.expr import AVERAGE, LATEST, Expr, GraphError, TokenTable
from wasmformer.graph.precision import EXACT_INTEGER_LIMIT, TEMPERATURE, tie_break_scale


@dataclass(frozen=True)
class HeadPlacement:
    layer: int
    index: int  # h: the head owns rows 2h, 2h+1
    op: HeadOp
    clear_penalty: int


class _ExactMatrix:
    """A matrix accumulated in exact arithmetic, each entry remembering which node wrote it."""

    def __init__(self, name: str, rows: int, columns: int):
        self.name, self.shape = name, (rows, columns)
        self.entries: dict[tuple[int, int], object] = {}
        self.owner: dict[tuple[int, int], str] = {}
        self.flag_penalties: set[tuple[int, int]] = set()  # entries allowed to be a power of two >= 2**53

    def add(self, row: int, column: int, value, owner: str) -> None:
        if value:
            key = (row, column)
            self.entries[key] = self.entries.get(key, 0) + value
            self.owner.setdefault(key, owner)

    def add_row(self, row: int, coefficients: dict[int, object], scale, owner: str) -> None:
        for column, value in coefficients.items():
            self.add(row, column, scale * value, owner)

    def add_flag_penalty(self, row: int, column: int, value, owner: str) -> None:
        """An entry that only ever multiplies a 0/1 flag in a slot of its own: a power of two of any size
        is exact there (the product is 0 or the entry), so it may exceed 2**53."""
        if (row, column) in self.entries:
            raise GraphError(f"{owner}: the clear flag's slot is shared with another term of {self.name}")
        self.add(row, column, value, owner)
        self.flag_penalties.add((row, column))

    def to_array(self) -> np.ndarray:
        array = np.zeros(self.shape, dtype=np.float64)
        for key, value in self.entries.items():
            where = f"{self.owner[key]}: {self.name}[{key[0]}, {key[1]}]"
            if key in self.flag_penalties and _is_power_of_two(abs(value)):
                array[key] = float(value)
            else:
                array[key] = _to_float(value, where)
        return array


def _is_power_of_two(value) -> bool:
    return Fraction(value).denominator == 1 and value > 0 and int(value) & (int(value) - 1) == 0


def _to_float(value, where: str) -> float:
    if Fraction(value).denominator == 1 and abs(value) >= EXACT_INTEGER_LIMIT:
        raise GraphError(f"{where}: weight {value} is not below 2**53, so float64 cannot hold its scores exactly")
    converted = float(value)
    if not math.isfinite(converted):
        raise GraphError(f"{where}: weight {value} is not finite in float64")
    return converted


def coefficients(expr: Expr, allocation: Allocation) -> dict[int, object]:
    """The expression as a row over residual slots (the constant goes on the ``one`` slot)."""
    row: dict[int, object] = {}
    for feature, value in expr.terms.items():
        slot = allocation.slot[feature]
        row[slot] = row.get(slot, 0) + value
    if expr.constant:
        one = allocation.fixed_slot("one")
        row[one] = row.get(one, 0) + expr.constant
    return row


def place_heads(program: Program, schedule: Schedule, clear_penalty: dict[str, int]) -> list[HeadPlacement]:
    """Heads of each layer numbered 0.. in program order."""
    count = [0] * schedule.n_layers
    placements = []
    for op in program.ops:
        if op.parity == ATTENTION:
            layer = schedule.layer[op]
            placements.append(HeadPlacement(layer, count[layer], op, clear_penalty[op.name]))
            count[layer] += 1
    return placements


def build_tensors(program: Program, schedule: Schedule, allocation: Allocation, clear_penalty: dict[str, int]):
    """(embed, unembed, layers as dicts of arrays, head placements) for the Model."""
    graph = program.graph
    d_model = allocation.d_model
    heads = place_heads(program, schedule, clear_penalty)
    n_heads = max([1] + [p.index + 1 for p in heads])  # at least one (zero) head keeps every tensor well-formed
    ffn_units = _ffn_units(program, schedule, allocation)
    n_units = max([1] + [len(units) for units in ffn_units])
    layers = []
    for layer in range(schedule.n_layers):
        attention = _attention_tensors(graph, [p for p in heads if p.layer == layer], n_heads, d_model, allocation)
        ffn = _ffn_tensors(ffn_units[layer], n_units, d_model, allocation, layer)
        layers.append({**attention, **ffn})
    return _embedding(program, allocation), _unembedding(program, allocation), layers, heads


def _attention_tensors(graph, placements: list[HeadPlacement], n_heads: int, d_model: int, allocation: Allocation):
    wq, wk, wv = (_ExactMatrix(name, 2 * n_heads, d_model) for name in ("wq", "wk", "wv"))
    wo = _ExactMatrix("wo", d_model, 2 * n_heads)
    scale, tie_scale = TEMPERATURE, tie_break_scale(graph.max_exact_tokens)
    one, t = allocation.fixed_slot("one"), allocation.fixed_slot("t")
    for placement in placements:
        op, owner = placement.op, placement.op.describe()
        first, second = 2 * placement.index, 2 * placement.index + 1
        query_row = coefficients(op.query, allocation) if op.tie != AVERAGE else {}
        wq.add_row(first, query_row, scale, owner)
        wq.add(second, one, scale, owner)
        key_scale = 2 * tie_scale if op.tie == LATEST else 2
        square_scale = tie_scale if op.tie == LATEST else 1
        if op.tie != AVERAGE:
            wk.add_row(first, coefficients(op.key, allocation), key_scale, owner)
            wk.add_row(second, coefficients(op.key_square, allocation), -square_scale, owner)
        if op.tie == LATEST:
            wk.add(second, t, 1, owner)
        if op.clear is not None:
            _add_clear_penalty(wk, second, op, allocation, placement.clear_penalty, owner)
        for index, value in enumerate(op.values):
            wv.add_row(first + index, coefficients(value, allocation), 1, owner)
        for index, output in enumerate(op.outputs):
            if output is not None:
                wo.add(allocation.slot[output], first + index, 1, owner)
    return {name: m.to_array() for name, m in (("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo))}


@dataclass(frozen=True)
class _HiddenUnit:
    """One FFN hidden unit: down · up · relu(gate), rows over slots."""

    gate: dict[int, object]
    up: dict[int, object]
    down: dict[int, object]
    owner: str


def _add_clear_penalty(wk: _ExactMatrix, row: int, op, allocation: Allocation, penalty: int, owner: str) -> None:
    """Subtract M * clear from the key's y coordinate.

    When M reaches 2**53 the clear flag must be a single feature (coefficient 1,
    no constant): then its slot's weight -M multiplies 0 for every live token and
    the live scores stay exact integers.
    """
    clear_row = coefficients(op.clear, allocation)
    if penalty < EXACT_INTEGER_LIMIT:
        wk.add_row(row, clear_row, -penalty, owner)
        return
    if len(clear_row) != 1 or next(iter(clear_row.values())) != 1 or op.clear.constant:
        raise GraphError(f"{owner}: its clear penalty {penalty} needs 2**53 or more, so its clear flag must be a "
                         f"single 0/1 feature (found {op.clear!r}); make it one with a neuron")
    (column,) = clear_row
    wk.add_flag_penalty(row, column, -penalty, owner)


def _ffn_units(program: Program, schedule: Schedule, allocation: Allocation) -> list[list[_HiddenUnit]]:
    units: list[list[_HiddenUnit]] = [[] for _ in range(schedule.n_layers)]
    for op in program.ops:
        if isinstance(op, FfnOp):
            slot = allocation.slot[op.feature]
            for unit in op.units:
                units[schedule.layer[op]].append(_HiddenUnit(
                    coefficients(unit.b, allocation), coefficients(unit.a, allocation),
                    {slot: unit.coefficient}, op.describe(),
                ))
    one = allocation.fixed_slot("one")
    for zeroing in allocation.zeroing:
        owner = f"zeroing unit for {zeroing.feature.describe()}"
        units[zeroing.layer].append(_HiddenUnit({one: 1}, {zeroing.slot: 1}, {zeroing.slot: -1}, owner))
    return units


def _ffn_tensors(units: list[_HiddenUnit], n_units: int, d_model: int, allocation: Allocation, layer: int):
    gate, up = _ExactMatrix("w_gate", n_units, d_model), _ExactMatrix("w_up", n_units, d_model)
    down = _ExactMatrix("w_down", d_model, n_units)
    for index, unit in enumerate(units):
        gate.add_row(index, unit.gate, 1, unit.owner)
        up.add_row(index, unit.up, 1, unit.owner)
        for slot, value in unit.down.items():
            down.add(slot, index, value, unit.owner)
    return {"w_gate": gate.to_array(), "w_up": up.to_array(), "w_down": down.to_array()}


def _embedding(program: Program, allocation: Allocation) -> np.ndarray:
    graph = program.graph
    embed = _ExactMatrix("embed", len(graph.vocab), allocation.d_model)
    tables = [f for f in [program.one, *program.features] if isinstance(f, TokenTable)]
    for row, token in enumerate(graph.vocab):
        for table in tables:
            embed.add(row, allocation.slot[table], table.table.get(token, 0), table.describe())
    return embed.to_array()


def _unembedding(program: Program, allocation: Allocation) -> np.ndarray:
    graph = program.graph
    unembed = _ExactMatrix("unembed", len(graph.vocab), allocation.d_model)
    for row, token in enumerate(graph.vocab):
        if token in program.logits:
            unembed.add_row(row, coefficients(program.logits[token], allocation), 1, f"the logit of {token!r}")
    return unembed.to_array()
