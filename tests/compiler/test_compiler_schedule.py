"""Scheduling: dependencies hold, the MILP never loses to ASAP, the time cap holds, failures fall back."""

from __future__ import annotations

import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings

from tests.compiler.compiler_oracle import chain_graph, random_graph
from wasmformer.compiler.lower import lower
from wasmformer.compiler.schedule import ScheduleError, alap, asap, check_schedule, schedule, stats

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graph())
def test_milp_respects_dependencies_and_never_loses_to_greedy(graph):
    program = lower(graph)
    earliest = asap(program)
    greedy = min(stats(program, earliest), stats(program, alap(program, earliest.n_layers)), key=lambda s: s.key())
    chosen, report = schedule(program, time_limit=2.0)
    check_schedule(program, chosen)
    assert chosen.n_layers == greedy.n_layers
    assert stats(program, chosen) == report.final and report.greedy == greedy
    assert report.final.key() <= greedy.key()


def test_the_checker_rejects_an_op_scheduled_before_its_input():
    graph = chain_graph(length=6)
    program = lower(graph)
    layers = asap(program)
    reader = next(op for op in program.ops if layers.layer[op] > 0)
    layers.layer[reader] = 0
    with pytest.raises(ScheduleError, match="before it is written"):
        check_schedule(program, layers)


def test_the_time_cap_holds_and_the_result_is_still_valid():
    program = lower(chain_graph())
    cap = 0.5
    start = time.perf_counter()
    chosen, report = schedule(program, time_limit=cap)
    elapsed = time.perf_counter() - start
    check_schedule(program, chosen)
    assert report.milp_status in {"optimal", "time limit"}
    assert elapsed < cap + 2.0  # the cap bounds the solve; building the model takes a little more


def test_a_failing_solver_falls_back_to_greedy():
    program = lower(chain_graph(length=30))

    def broken(*args):
        raise RuntimeError("solver exploded")

    chosen, report = schedule(program, solver=broken)
    assert report.milp_status.startswith("fallback: RuntimeError: solver exploded")
    assert not report.used_milp and stats(program, chosen) == report.greedy
    assert chosen.layer in (asap(program).layer, alap(program, chosen.n_layers).layer)


def test_a_missing_highspy_falls_back_to_greedy(monkeypatch):
    monkeypatch.setitem(sys.modules, "highspy", None)  # `import highspy` now raises ImportError
    program = lower(chain_graph(length=30))
    chosen, report = schedule(program)
    assert report.milp_status.startswith("fallback: ModuleNotFoundError")
    check_schedule(program, chosen)


def test_the_summary_line_reports_what_the_milp_achieved():
    lines = []
    program = lower(chain_graph(length=40))
    _, report = schedule(program, time_limit=5.0, log=lines.append)
    assert lines == [report.summary()]
    assert lines[0].startswith(f"schedule: L={report.final.n_layers}, D {report.greedy.width}→{report.final.width}")
