"""Where each op runs: the ``Schedule`` (op → layer) that pass 2 produces and the later passes
read, and what it costs (``ScheduleStats``: layers, live width, heads and units per layer).

Shared by the scheduling pass (``schedule.py``) and its MILP (``milp.py``), which both
measure candidate schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmformer.compiler.lower import FFN, Op, Program
from wasmformer.compiler.timeline import EMBEDDING_SUBLAYER, first_live_boundary, sublayer
from wasmformer.graph.expr import Feature


@dataclass
class Schedule:
    n_layers: int
    layer: dict[Op, int]  # op -> its layer

    def sublayer(self, op: Op) -> int:
        return sublayer(op, self.layer[op])

    def producer_sublayer(self, program: Program, feature: Feature) -> int:
        producer = program.producer[feature]
        return EMBEDDING_SUBLAYER if producer is None else self.sublayer(producer)

    def live_interval(self, program: Program, feature: Feature) -> tuple[int, int]:
        """(first, last) boundary at which ``feature`` occupies a slot."""
        producer = program.producer[feature]
        first = first_live_boundary(producer, self.layer[producer] if producer is not None else 0)
        reads = [self.sublayer(op) for op in program.readers[feature]]
        if feature in program.logit_features:
            reads.append(2 * self.n_layers)
        return first, max(reads)


@dataclass(frozen=True)
class ScheduleStats:
    n_layers: int  # L
    width: int  # D without the fixed slots: the most features live at one boundary
    heads: int  # H: the most heads in one layer
    units: int  # F: the most FFN units in one layer (before zeroing units)

    def key(self) -> tuple[int, int, int]:
        """Lexicographic quality: width first, then heads, then units."""
        return (self.width, self.heads, self.units)


def stats(program: Program, schedule: Schedule) -> ScheduleStats:
    n = schedule.n_layers
    live = [0] * (2 * n + 1)
    for feature in program.features:
        first, last = schedule.live_interval(program, feature)
        for boundary in range(first, last + 1):
            live[boundary] += 1
    heads, units = [0] * max(n, 1), [0] * max(n, 1)
    for op in program.ops:
        if op.parity == FFN:
            units[schedule.layer[op]] += len(op.units)
        else:
            heads[schedule.layer[op]] += 1
    return ScheduleStats(n, max(live, default=0), max(heads), max(units))
