"""`wasmformer demo`: compile the bundled machines and run them through the transformer.

Each machine is written in the graph DSL, compiled to a model file (cached by
content hash, so the second demo starts at once) and decoded by an engine that
knows only embeddings, heads, FFNs and argmax. What is printed is the trace the
model generated, and its speed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.table import Table

from wasmformer.compiler.cache import build_model
from wasmformer.engines import make_engine
from wasmformer.engines.base import encode, generate
from wasmformer.graph import examples

SHOWN_TRACE_TOKENS = 60  # tokens of each trace printed; the rest is summarised


@dataclass(frozen=True)
class DemoCase:
    title: str
    build: Callable[[], examples.Machine]
    make_input: Callable[[], object]
    max_tokens: int


def demo_cases() -> list[DemoCase]:
    return [
        DemoCase("counter from 950", examples.counter_machine, lambda: 950, 2_000),
        DemoCase("running sum of digits", examples.running_sum_machine, lambda: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], 2_000),
        DemoCase(
            "byte memory",
            examples.memory_machine,
            lambda: [("store", 0x10, 0x2A), ("store", 0x11, 0x07), ("load", 0x10), ("store", 0x10, 0xFF),
                     ("load", 0x10), ("load", 0x11), ("load", 0x99)],
            2_000,
        ),
        DemoCase("stack machine", examples.stack_machine, lambda: examples.random_stack_program(40, seed=7), 2_000),
    ]


def run_demo(engine_name: str | None = None, console: Console | None = None) -> int:
    console = console or Console(file=sys.stderr)
    table = Table(title="wasmformer demo: DSL machines compiled to transformers")
    for column in ("machine", "engine", "prompt", "generated", "tok/s", "model (L, H, F, D)"):
        table.add_column(column)
    for case in demo_cases():
        graph, make_prompt = case.build()
        started = time.perf_counter()
        model = build_model(graph, log=lambda message: None)
        build_seconds = time.perf_counter() - started
        engine = make_engine(model, engine_name)
        prompt_tokens = make_prompt(case.make_input())
        result = generate(engine, encode(model, prompt_tokens), max_tokens=case.max_tokens)
        trace = [model.vocab[i] for i in result.trace]
        console.print(f"[bold]{case.title}[/bold] (model ready in {build_seconds:.1f} s)")
        console.print("  prompt: " + _shorten(prompt_tokens))
        console.print("  trace:  " + _shorten(trace))
        table.add_row(
            case.title, engine.name, str(len(prompt_tokens)), str(len(trace)),
            f"{result.tokens_per_second:,.0f}",
            f"{len(model.layers)}, {model.n_heads}, {model.d_ffn}, {model.d_model}",
        )
    console.print(table)
    return 0


def _shorten(tokens: list[str]) -> str:
    if len(tokens) <= SHOWN_TRACE_TOKENS:
        return " ".join(tokens)
    return " ".join(tokens[:SHOWN_TRACE_TOKENS]) + f" … ({len(tokens) - SHOWN_TRACE_TOKENS} more)"
