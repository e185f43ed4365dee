"""The scheduling MILP, solved with HiGHS (``highspy``).

With the number of layers L fixed, choose a layer for every op to minimise
D + w_H·H + w_F·F, where D is the most features live at any boundary, H the
most heads in a layer and F the most FFN units in a layer. The weights keep the
order strict: one slot of D outweighs every possible H and F, one head every
possible F.

Variables (docs/compiler.md writes the formulation out):

- x[o,l] ∈ {0,1}: op o runs at layer l, for l in o's [ASAP, ALAP] window;
- y[f,b] ∈ [0,1]: feature f is live at boundary b, only where that depends on
  the schedule (it is forced to the integers by the constraints below);
- D, H, F: continuous, bounded below by every boundary's and layer's count.

Constraints:

- each op in exactly one layer: Σ_l x[o,l] = 1;
- dependencies, cumulatively (tighter than comparing layer numbers): op o at a
  layer ≤ l needs its producer p at a layer ≤ l - gap(p, o);
- liveness: y[f,b] ≥ written(f,b) + still_read_by_r(f,b) - 1 for every reader
  r of f, where written(f,b) = Σ x[p,l] over layers l at which the producer
  would make f live by b, and still_read_by_r(f,b) = Σ x[r,l] over layers l at
  which r reads at or after b (the logits always do);
- D ≥ Σ_f y[f,b] + (features certainly live at b), for every boundary b;
- H ≥ Σ x[o,l] over heads, F ≥ Σ units(o)·x[o,l] over FFN ops, for every l.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from wasmformer.compiler.lower import ATTENTION, Op, Program
from wasmformer.compiler.placement import Schedule, stats
from wasmformer.compiler.timeline import first_live_boundary, layer_gap, sublayer

INFINITY = float("inf")
# However little of the time cap the formulation leaves, HiGHS gets this long to try (it keeps the warm start).
MIN_SOLVE_SECONDS = 0.05


@dataclass
class _Rows:
    """A sparse constraint matrix built row by row (CSR)."""

    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])
    indices: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, terms: dict[int, float], lower: float, upper: float) -> None:
        for column, value in terms.items():
            if value:
                self.indices.append(column)
                self.values.append(value)
        self.starts.append(len(self.indices))
        self.lower.append(lower)
        self.upper.append(upper)


@dataclass
class _Columns:
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    start: list[float] = field(default_factory=list)  # the warm start

    def add(self, cost: float, lower: float, upper: float, integer: bool, start: float) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        self.start.append(start)
        return len(self.cost) - 1


class _Formulation:
    def __init__(self, program: Program, earliest: Schedule, latest: Schedule, warm: Schedule):
        self.program = program
        self.n_layers = earliest.n_layers
        self.earliest, self.latest, self.warm = earliest, latest, warm
        self.columns, self.rows = _Columns(), _Rows()
        self.x: dict[Op, dict[int, int]] = {}

    def window(self, op: Op) -> range:
        return range(self.earliest.layer[op], self.latest.layer[op] + 1)

    def build(self) -> None:
        greedy = stats(self.program, self.warm)
        total_heads = sum(op.parity == ATTENTION for op in self.program.ops)
        total_units = sum(len(op.units) for op in self.program.ops if op.parity != ATTENTION)
        self.head_weight = 1.0 / (total_heads + 2)
        self.unit_weight = self.head_weight / (total_units + 1)
        self.d = self.columns.add(1.0, 0, INFINITY, False, greedy.width)
        self.h = self.columns.add(self.head_weight, 0, INFINITY, False, greedy.heads)
        self.f = self.columns.add(self.unit_weight, 0, INFINITY, False, greedy.units)
        for op in self.program.ops:
            self.x[op] = {
                layer: self.columns.add(0.0, 0, 1, True, float(layer == self.warm.layer[op]))
                for layer in self.window(op)
            }
            self.rows.add({column: 1.0 for column in self.x[op].values()}, 1, 1)
        self._dependencies()
        self._per_layer()
        self._liveness()

    def _dependencies(self) -> None:
        pairs = {
            (id(producer), id(op)): (producer, op)
            for op in self.program.ops
            for feature in self.program.inputs(op)
            if (producer := self.program.producer[feature]) is not None
        }
        for producer, op in pairs.values():
            gap = layer_gap(producer, op)
            for layer in self.window(op):
                if layer - gap >= self.latest.layer[producer]:
                    continue  # the producer is certainly done by then
                terms = {self.x[op][l]: 1.0 for l in self.window(op) if l <= layer}
                for l in self.window(producer):
                    if l <= layer - gap:
                        terms[self.x[producer][l]] = -1.0
                self.rows.add(terms, -INFINITY, 0)

    def _per_layer(self) -> None:
        for layer in range(self.n_layers):
            heads, units = {self.h: 1.0}, {self.f: 1.0}
            for op in self.program.ops:
                if layer in self.x[op]:
                    if op.parity == ATTENTION:
                        heads[self.x[op][layer]] = -1.0
                    else:
                        units[self.x[op][layer]] = -float(len(op.units))
            self.rows.add(heads, 0, INFINITY)
            self.rows.add(units, 0, INFINITY)

    def _liveness(self) -> None:
        boundaries = 2 * self.n_layers + 1
        certain = [0] * boundaries
        uncertain: list[dict[int, float]] = [dict() for _ in range(boundaries)]
        warm_live = [set() for _ in range(boundaries)]
        for feature in self.program.features:
            first, last = self.warm.live_interval(self.program, feature)
            for b in range(first, last + 1):
                warm_live[b].add(feature)
        for feature in self.program.features:
            early_first, early_last = self.earliest.live_interval(self.program, feature)
            late_first, late_last = self.latest.live_interval(self.program, feature)
            for b in range(early_first, late_last + 1):
                if late_first <= b <= early_last:
                    certain[b] += 1
                    continue
                y = self.columns.add(0.0, 0, 1, False, float(feature in warm_live[b]))
                uncertain[b][y] = -1.0
                self._live_rows(feature, b, y)
        for b in range(boundaries):
            self.rows.add({self.d: 1.0, **uncertain[b]}, certain[b], INFINITY)

    def _live_rows(self, feature, boundary: int, y: int) -> None:
        """y >= written(feature, boundary) + still_read(feature, boundary) - 1, per reader."""
        producer = self.program.producer[feature]
        written: dict[int, float] = {}
        constant = 0.0  # constants moved to the right-hand side
        if producer is None:
            constant += 1.0
        else:
            for layer, column in self.x[producer].items():
                if first_live_boundary(producer, layer) <= boundary:
                    written[column] = 1.0
        readers: list[dict[int, float] | None] = []  # None: reads at or after every boundary
        if feature in self.program.logit_features:
            readers.append(None)
        for reader in self.program.readers[feature]:
            if self.earliest.sublayer(reader) >= boundary:
                readers.append(None)
            elif self.latest.sublayer(reader) >= boundary:
                readers.append({c: 1.0 for l, c in self.x[reader].items() if sublayer(reader, l) >= boundary})
        if any(r is None for r in readers):
            readers = [None]
        for still_read in readers:
            reader_constant = 1.0 if still_read is None else 0.0
            terms = {y: 1.0, **{c: -v for c, v in written.items()}, **{c: -v for c, v in (still_read or {}).items()}}
            self.rows.add(terms, constant + reader_constant - 1.0, INFINITY)


def solve(
    program: Program, earliest: Schedule, latest: Schedule, warm: Schedule, time_limit: float
) -> tuple[Schedule, str]:
    """The MILP's best schedule within ``time_limit`` seconds (building included), warm-started from ``warm``.

    ``earliest`` and ``latest`` (ASAP and ALAP) bound every op's window.
    """
    import highspy

    start = time.perf_counter()
    formulation = _Formulation(program, earliest, latest, warm)
    formulation.build()
    remaining = max(MIN_SOLVE_SECONDS, time_limit - (time.perf_counter() - start))
    highs = _highs_model(highspy, formulation, remaining)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    if info.primal_solution_status != 2:  # 2: a feasible solution exists
        raise RuntimeError(f"HiGHS found no feasible schedule ({highs.modelStatusToString(status)})")
    values = list(highs.getSolution().col_value)
    layer = {op: max(columns, key=lambda l: values[columns[l]]) for op, columns in formulation.x.items()}
    names = {highspy.HighsModelStatus.kOptimal: "optimal", highspy.HighsModelStatus.kTimeLimit: "time limit"}
    return Schedule(earliest.n_layers, layer), names.get(status, highs.modelStatusToString(status))


def _highs_model(highspy, formulation: _Formulation, time_limit: float):
    columns, rows = formulation.columns, formulation.rows
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(columns.cost), len(rows.lower)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = columns.cost, columns.lower, columns.upper
    lp.row_lower_, lp.row_upper_ = rows.lower, rows.upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = lp.num_col_, lp.num_row_
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = rows.starts, rows.indices, rows.values
    kinds = highspy.HighsVarType
    lp.integrality_ = [kinds.kInteger if integer else kinds.kContinuous for integer in columns.integer]
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("time_limit", float(time_limit))
    highs.setOptionValue("mip_rel_gap", 0.0)
    # Objective values differ by at least unit_weight; closing the gap below it proves optimality.
    highs.setOptionValue("mip_abs_gap", formulation.unit_weight / 2)
    highs.passModel(lp)
    warm = highspy.HighsSolution()
    warm.col_value = columns.start
    highs.setSolution(warm)
    return highs
