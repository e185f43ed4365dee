"""The compiler: graph → ops → layers → slots → tensors → Model, one pass per module."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

from wasmformer.compiler.allocate import allocate
from wasmformer.compiler.lower import ATTENTION, lower
from wasmformer.compiler.metadata import model_metadata
from wasmformer.compiler.schedule import DEFAULT_TIME_LIMIT, ScheduleReport, check_schedule, schedule
from wasmformer.compiler.verify import check_dataflow
from wasmformer.compiler.version import COMPILER_VERSION
from wasmformer.compiler.weights import build_tensors
from wasmformer.graph.validate import validate
from wasmformer.model import Layer, Model


@dataclass
class CompileReport:
    graph: str
    n_layers: int  # L
    d_model: int  # D, fixed slots included
    n_heads: int  # H after padding
    d_ffn: int  # F after padding, zeroing units included
    ops: int
    heads: int
    ffn_units: int
    zeroing_units: int
    pruned_ops: int
    nonzero_weights: int
    parameters: int
    max_exact_tokens: int
    schedule: ScheduleReport
    seconds: float

    def summary(self) -> str:
        return (
            f"compiled {self.graph!r}: L={self.n_layers} D={self.d_model} H={self.n_heads} F={self.d_ffn} "
            f"({self.heads} heads, {self.ffn_units} units + {self.zeroing_units} zeroing, "
            f"{self.nonzero_weights} nonzero weights) in {self.seconds:.2f} s"
        )

    def as_dict(self) -> dict:
        record = asdict(self)
        record["schedule"] = self.schedule.as_dict()
        record["seconds"] = round(self.seconds, 3)
        record["version"] = COMPILER_VERSION
        return record


def compile_graph(
    graph,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    log: Callable[[str], None] | None = None,
) -> tuple[Model, CompileReport]:
    """Compile ``graph`` into a wasmformer/1 Model; ``log`` receives one line per pass worth reporting."""
    log = log or logging.getLogger(__name__).info
    start = time.perf_counter()
    checked = validate(graph)  # fails fast, naming the node, before any pass runs
    program = lower(graph, checked.order)
    layers, schedule_report = schedule(program, time_limit=time_limit, log=log)
    check_schedule(program, layers)  # whatever the solver did, every op runs after its inputs
    allocation = allocate(program, layers)  # checks its own result
    penalties = {op.name: checked.heads[op.name].clear_penalty for op in program.ops if op.parity == ATTENTION}
    embed, unembed, tensors, placements = build_tensors(program, layers, allocation, penalties)
    model = Model(
        vocab=list(graph.vocab),
        halt_token=graph.halt_token,
        positional={name: allocation.fixed_slot(name) for name in ("t", "t2", "recency")},
        output_bytes=dict(graph.output_bytes),
        max_exact_tokens=checked.max_exact_tokens,
        embed=embed,
        unembed=unembed,
        layers=[Layer(**tensor) for tensor in tensors],
    )
    model.validate()
    check_dataflow(model, program, layers, allocation)
    report = CompileReport(
        graph=graph.name,
        n_layers=len(model.layers),
        d_model=model.d_model,
        n_heads=model.n_heads,
        d_ffn=model.d_ffn,
        ops=len(program.ops),
        heads=sum(op.parity == ATTENTION for op in program.ops),
        ffn_units=sum(len(op.units) for op in program.ops if op.parity != ATTENTION),
        zeroing_units=len(allocation.zeroing),
        pruned_ops=program.pruned_ops,
        nonzero_weights=model.nonzero_weights(),
        parameters=model.parameter_count(),
        max_exact_tokens=checked.max_exact_tokens,
        schedule=schedule_report,
        seconds=time.perf_counter() - start,
    )
    model.extra = {
        "graph": graph.name,
        "compiler": report.as_dict(),
        **model_metadata(program, layers, allocation, placements),
    }
    log(report.summary())
    return model, report
