"""Pass 2, scheduling: give every op a layer.

First the number of layers L: the ASAP schedule (every op at the earliest
layer its inputs allow) reaches the critical-path minimum. Then, with L fixed,
a MILP (``milp.py``) moves ops inside their [ASAP, ALAP] windows to minimise
the residual width D (the most features live at any boundary), then the heads
per layer H and the FFN units per layer F (``placement.py`` holds the Schedule
and these measures, which the MILP shares). The *greedy* schedule, the better of
ASAP and ALAP, is the MILP's warm start and the fallback when the solver fails
or runs out of time without improving on it; the result is never worse than it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from wasmformer.compiler import milp
from wasmformer.compiler.lower import Op, Program
from wasmformer.compiler.placement import Schedule, ScheduleStats, stats
from wasmformer.compiler.timeline import EMBEDDING_SUBLAYER, max_layer_before, min_layer_after

# Default cap on the MILP solve, in seconds; the best incumbent is kept when it runs out.
DEFAULT_TIME_LIMIT = 10.0


class ScheduleError(AssertionError):
    """A schedule that breaks a dependency: a compiler bug, never a user error."""


@dataclass
class ScheduleReport:
    greedy: ScheduleStats
    greedy_name: str  # "asap" | "alap": the better one, the MILP's warm start
    final: ScheduleStats
    milp_status: str  # "optimal", "time limit", "fallback: <why>", "not needed"
    milp_seconds: float
    used_milp: bool

    def summary(self) -> str:
        g, f = self.greedy, self.final
        return (
            f"schedule: L={f.n_layers}, D {g.width}→{f.width}, H {g.heads}→{f.heads}, "
            f"F {g.units}→{f.units}, MILP {self.milp_seconds:.1f} s ({self.milp_status}; greedy: {self.greedy_name})"
        )

    def as_dict(self) -> dict:
        return {
            "n_layers": self.final.n_layers,
            "live_width": {"greedy": self.greedy.width, "final": self.final.width},
            "heads_per_layer": {"greedy": self.greedy.heads, "final": self.final.heads},
            "units_per_layer": {"greedy": self.greedy.units, "final": self.final.units},
            "greedy": self.greedy_name,
            "milp_status": self.milp_status,
            "milp_seconds": round(self.milp_seconds, 3),
        }


def asap(program: Program) -> Schedule:
    """Every op at the earliest layer its inputs allow; L is then the critical-path minimum."""
    layer: dict[Op, int] = {}
    partial = Schedule(0, layer)
    for op in program.ops:
        latest_input = max((partial.producer_sublayer(program, f) for f in program.inputs(op)), default=EMBEDDING_SUBLAYER)
        layer[op] = min_layer_after(op, latest_input)
    # At least one layer, so every model has the tensors of the format (an op-free graph gets an empty one).
    n_layers = max((layer[op] + 1 for op in program.ops), default=1)
    return Schedule(n_layers, layer)


def alap(program: Program, n_layers: int) -> Schedule:
    """Every op at the latest layer that still feeds its readers in time (L fixed)."""
    layer: dict[Op, int] = {}
    partial = Schedule(n_layers, layer)
    logits_sublayer = 2 * n_layers
    for op in reversed(program.ops):
        deadline = logits_sublayer
        for feature in op.writes():
            for reader in program.readers[feature]:
                deadline = min(deadline, partial.sublayer(reader))
        layer[op] = max_layer_before(op, deadline)
    return Schedule(n_layers, layer)


def check_schedule(program: Program, schedule: Schedule) -> None:
    """Raise ScheduleError unless every op runs strictly after the ops it reads, inside the model."""
    for op in program.ops:
        layer = schedule.layer.get(op)
        if layer is None or not 0 <= layer < schedule.n_layers:
            raise ScheduleError(f"{op.describe()}: layer {layer} outside 0..{schedule.n_layers - 1}")
        for feature in program.inputs(op):
            if schedule.producer_sublayer(program, feature) >= schedule.sublayer(op):
                raise ScheduleError(
                    f"{op.describe()} (sub-layer {schedule.sublayer(op)}) reads {feature.describe()} "
                    f"before it is written (sub-layer {schedule.producer_sublayer(program, feature)})"
                )


def schedule(
    program: Program,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    log: Callable[[str], None] | None = None,
    solver: Callable | None = None,
) -> tuple[Schedule, ScheduleReport]:
    """ASAP for L, then the MILP for D, H, F within ``time_limit`` seconds (``solver`` replaces it in tests).

    ``time_limit=0`` skips the MILP and keeps the greedy schedule.
    """
    earliest = asap(program)
    latest = alap(program, earliest.n_layers)
    greedy, greedy_name = min((earliest, "asap"), (latest, "alap"), key=lambda c: stats(program, c[0]).key())
    check_schedule(program, greedy)
    greedy_stats = stats(program, greedy)
    solve = solver or milp.solve
    start = time.perf_counter()
    best, best_stats, status = greedy, greedy_stats, "not needed"
    if program.ops and time_limit > 0:
        try:
            candidate, status = solve(program, earliest, latest, greedy, time_limit)
            check_schedule(program, candidate)
            candidate_stats = stats(program, candidate)
            if candidate_stats.key() <= greedy_stats.key():
                best, best_stats = candidate, candidate_stats
        except Exception as error:  # any solver failure leaves the greedy schedule, which is always valid
            status = f"fallback: {type(error).__name__}: {error}"
    report = ScheduleReport(greedy_stats, greedy_name, best_stats, status, time.perf_counter() - start, best is not greedy)
    if log is not None:
        log(report.summary())
    return best, report
