"""`wasmformer demo`: the bundled C examples run by the universal model, one token at a time.

Each example (examples/*.c with its input) is compiled to a prompt and decoded
by an engine that knows only embeddings, heads, FFNs and argmax; what is
printed is the output the model generated, checked against NAME.expected, and
its speed. Long examples stop at a token budget, and the table says so.

Until the universal model exists (machine/universal.py), the demo falls back
to the small machines written in the graph DSL, compiled to transformers.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from wasmformer import engines, runner
from wasmformer.engines.base import EngineError
from wasmformer.frontend.errors import FrontendError
from wasmformer.model import Model

# Generated tokens per example. With the native engine (~190K tok/s) every example
# runs to its end (the longest, sudoku_hard, is 10.1M tokens: about a minute);
# the Python engines are 100x slower, so there the long runs stop at a budget.
DEMO_TOKEN_BUDGET = 12_000_000
PYTHON_ENGINE_BUDGET = 30_000
SHOWN_OUTPUT_LINES = 14  # of each example's output; the rest is summarised
SHOWN_OUTPUT_CHARS = 1_000
SHOWN_TRACE_TOKENS = 60  # of each DSL machine's trace


def run_demo(engine_name: str | None = None, budget: int | None = None, example_names: list[str] | None = None,
             console: Console | None = None) -> int:
    console = console or _console()
    try:
        model = runner.load_universal_model(log=lambda message: console.print(message, style="dim", markup=False))
    except runner.ModelUnavailableError as error:
        console.print(f"{error}: showing the graph-DSL machines instead.\n", style="yellow", markup=False)
        return run_machines_demo(engine_name, console)
    examples = runner.bundled_examples(example_names)
    if budget is None:
        fast = (engine_name or engines.default_engine_name()) == "native"
        budget = DEMO_TOKEN_BUDGET if fast else PYTHON_ENGINE_BUDGET
    return run_examples_demo(model, examples, engine_name, budget, console)


def _console() -> Console:
    # rich assumes 80 columns when stderr is not a terminal (make demo > log): too narrow for the table
    return Console(file=sys.stderr, width=None if sys.stderr.isatty() else 110)


# ---------------------------------------------------------------------------
# the C examples on the universal model


@dataclass
class DemoResult:
    name: str
    engine: str = "-"
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    ending: str = ""
    verdict: str = "-"


def run_examples_demo(model: Model, examples: list[runner.Example], engine_name: str | None, budget: int,
                      console: Console) -> int:
    console.print(f"[bold]wasmformer demo[/bold]: {len(examples)} C programs run by one transformer "
                  f"({len(model.layers)} layers, {model.n_heads} heads of dimension 2, d_model {model.d_model})")
    console.print(f"Each may generate up to {budget:,} tokens (--budget).\n")
    _, note = runner.choose_engine(model, engine_name)  # the same for every example: say it once
    if note:
        console.print(note + "\n", style="yellow", markup=False)
    results = [_demo_example(model, example, engine_name, budget, console) for example in examples]
    console.print(_results_table(results, budget))
    failed = [result for result in results if result.verdict == "WRONG" or result.ending.startswith("error")]
    return 1 if failed else 0


def _demo_example(model: Model, example: runner.Example, engine_name: str | None, budget: int,
                  console: Console) -> DemoResult:
    result = DemoResult(example.name)
    try:
        workload = example.workload()
        prompt_ids = runner.prompt_ids_or_error(model, workload.prompt, workload.source)
        engine, _ = runner.choose_engine(model, engine_name)
        console.print(f"[bold]{example.name}[/bold]: {workload.source}, {len(prompt_ids):,} prompt tokens, "
                      f"{engine.name} engine")
        max_tokens = min(budget, runner.default_max_tokens(model, len(prompt_ids)))
        outcome = _run_with_progress(model, prompt_ids, engine, max_tokens, console)
    except (FrontendError, EngineError, OSError) as error:
        console.print(f"  error: {error}\n", style="red", markup=False)
        result.ending = f"error: {error}"
        return result
    console.print(_shown_output(outcome.output))
    result.engine, result.prompt_tokens, result.seconds = outcome.engine, outcome.prompt_tokens, outcome.seconds
    result.generated_tokens, result.tokens_per_second = outcome.generated_tokens, outcome.tokens_per_second
    result.ending = _ending(outcome, max_tokens, budget)
    result.verdict = runner.output_verdict(outcome, workload.expected)
    console.print(f"  {outcome.generated_tokens:,} tokens in {outcome.seconds:.1f} s "
                  f"({outcome.tokens_per_second:,.0f} tok/s): {result.ending}; output {result.verdict}\n",
                  markup=False)
    return result


def _run_with_progress(model, prompt_ids, engine, max_tokens, console) -> runner.RunOutcome:
    progress = runner.progress_line(console.file, label="  ")
    try:
        return runner.run_prompt(model, prompt_ids, engine=engine, max_tokens=max_tokens, progress=progress)
    finally:
        if progress is not None:
            progress.close()


def _ending(outcome: runner.RunOutcome, max_tokens: int, budget: int) -> str:
    if outcome.trap:
        return f"trapped ({outcome.trap})"
    if outcome.halted:
        return "halted"
    return "stopped at budget" if max_tokens == budget else "stopped at the precision horizon"


def _shown_output(output: bytes) -> Text:
    """The output as text, indented, cut after SHOWN_OUTPUT_LINES lines or SHOWN_OUTPUT_CHARS characters."""
    text = output.decode("utf-8", errors="replace")
    shown = "".join(text.splitlines(keepends=True)[:SHOWN_OUTPUT_LINES])[:SHOWN_OUTPUT_CHARS]
    body = shown.rstrip("\n")
    rendered = Text("  " + body.replace("\n", "\n  ") if body else "  (no output yet)")
    hidden = len(text) - len(shown)
    if hidden > 0:
        rendered.append(f"\n  … ({hidden:,} more characters)", style="dim")
    return rendered


def _results_table(results: list[DemoResult], budget: int) -> Table:
    table = Table(title="wasmformer demo: C programs inside a transformer")
    for column, justify in (("example", "left"), ("engine", "left"), ("prompt", "right"), ("generated", "right"),
                            ("seconds", "right"), ("tok/s", "right"), ("run", "left"), ("output", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "run")
    for result in results:
        table.add_row(result.name, result.engine, f"{result.prompt_tokens:,}", f"{result.generated_tokens:,}",
                      f"{result.seconds:.1f}", f"{result.tokens_per_second:,.0f}", result.ending, result.verdict)
    table.caption = (f"budget: {budget:,} generated tokens per example. output: ok = equals NAME.expected; "
                     "prefix ok = a run stopped early printed the start of it")
    return table


# ---------------------------------------------------------------------------
# the fallback: the DSL machines of wasmformer.graph.examples


@dataclass(frozen=True)
class MachineCase:
    title: str
    build: Callable[[], tuple]
    make_input: Callable[[], object]
    max_tokens: int


def machine_cases() -> list[MachineCase]:
    from wasmformer.graph import examples

    return [
        MachineCase("counter from 950", examples.counter_machine, lambda: 950, 2_000),
        MachineCase("running sum of digits", examples.running_sum_machine,
                    lambda: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], 2_000),
        MachineCase(
            "byte memory",
            examples.memory_machine,
            lambda: [("store", 0x10, 0x2A), ("store", 0x11, 0x07), ("load", 0x10), ("store", 0x10, 0xFF),
                     ("load", 0x10), ("load", 0x11), ("load", 0x99)],
            2_000,
        ),
        MachineCase("stack machine", examples.stack_machine, lambda: examples.random_stack_program(40, seed=7),
                    2_000),
    ]


def run_machines_demo(engine_name: str | None = None, console: Console | None = None) -> int:
    from wasmformer.compiler.cache import build_model

    console = console or _console()
    table = Table(title="wasmformer demo: DSL machines compiled to transformers")
    for column in ("machine", "engine", "prompt", "generated", "tok/s", "model (L, H, F, D)"):
        table.add_column(column)
    for case in machine_cases():
        graph, make_prompt = case.build()
        started = time.perf_counter()
        with runner.stdout_to_stderr():
            model = build_model(graph, log=lambda message: None)
        build_seconds = time.perf_counter() - started
        prompt_tokens = make_prompt(case.make_input())
        prompt_ids = runner.prompt_ids_or_error(model, prompt_tokens, case.title)
        outcome = runner.run_prompt(model, prompt_ids, engine_name=engine_name, max_tokens=case.max_tokens)
        trace = [model.vocab[i] for i in outcome.trace]
        console.print(f"[bold]{case.title}[/bold] (model ready in {build_seconds:.1f} s)")
        console.print("  prompt: " + _shorten(prompt_tokens), markup=False)
        console.print("  trace:  " + _shorten(trace), markup=False)
        table.add_row(
            case.title, outcome.engine, str(len(prompt_tokens)), str(len(trace)),
            f"{outcome.tokens_per_second:,.0f}",
            f"{len(model.layers)}, {model.n_heads}, {model.d_ffn}, {model.d_model}",
        )
    console.print(table)
    return 0


def _shorten(tokens: list[str]) -> str:
    if len(tokens) <= SHOWN_TRACE_TOKENS:
        return " ".join(tokens)
    return " ".join(tokens[:SHOWN_TRACE_TOKENS]) + f" … ({len(tokens) - SHOWN_TRACE_TOKENS} more)"
