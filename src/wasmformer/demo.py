"""`wasmformer demo`: the bundled C examples run by the universal model, one token at a time.

Each example (examples/*.c with its input) is compiled to a prompt and decoded
by ``runner.run_prompt`` on an engine that knows only embeddings, heads, FFNs
and argmax; what is printed is the output the model generated, checked against
NAME.expected, and its speed. An example may generate at most
``max_new_tokens`` tokens, and the table says when one stopped there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from wasmformer import engines, runner
from wasmformer.engines.base import EngineError, RunResult
from wasmformer.model import Model
from wasmformer.vm.errors import ProgramError

# max_new_tokens per example. On the native engine every example runs to its
# end (the longest, sudoku_hard, generates about 10M tokens); the Python
# engines are about 100x slower, so there the long runs stop early.
DEMO_MAX_NEW_TOKENS = 12_000_000
PYTHON_ENGINE_MAX_NEW_TOKENS = 30_000
SHOWN_OUTPUT_LINES = 14  # of each example's output; the rest is summarised
SHOWN_OUTPUT_CHARS = 1_000


def run_demo(engine_name: str | None = None, max_new_tokens: int | None = None,
             example_names: list[str] | None = None, console: Console | None = None) -> int:
    console = console or _console()
    model = runner.load_universal_model(log=lambda message: console.print(message, style="dim", markup=False))
    examples = runner.bundled_examples(example_names)
    if max_new_tokens is None:
        fast = (engine_name or engines.default_engine_name()) == "native"
        max_new_tokens = DEMO_MAX_NEW_TOKENS if fast else PYTHON_ENGINE_MAX_NEW_TOKENS
    return run_examples_demo(model, examples, engine_name, max_new_tokens, console)


def _console() -> Console:
    # rich assumes 80 columns when stderr is not a terminal (make demo > log): too narrow for the table
    return Console(file=sys.stderr, width=None if sys.stderr.isatty() else 110)


# ---------------------------------------------------------------------------
# the C examples on the universal model


@dataclass
class DemoRow:
    """One example in the demo's table: its run (None when it failed before running) and verdicts."""

    name: str
    result: RunResult | None = None
    ending: str = ""
    verdict: str = "-"


def run_examples_demo(model: Model, examples: list[runner.Example], engine_name: str | None, max_new_tokens: int,
                      console: Console) -> int:
    console.print(f"[bold]wasmformer demo[/bold]: {len(examples)} C programs run by one transformer "
                  f"({len(model.layers)} layers, {model.n_heads} heads of dimension 2, d_model {model.d_model})")
    console.print(f"Each may generate up to {max_new_tokens:,} tokens (--max-new-tokens).\n")
    _, note = runner.choose_engine(model, engine_name)  # the same for every example: say it once
    if note:
        console.print(note + "\n", style="yellow", markup=False)
    rows = [_demo_example(model, example, engine_name, max_new_tokens, console) for example in examples]
    console.print(_results_table(rows, max_new_tokens))
    failed = [row for row in rows if row.verdict == "WRONG" or row.ending.startswith("error")]
    return 1 if failed else 0


def _demo_example(model: Model, example: runner.Example, engine_name: str | None, max_new_tokens: int,
                  console: Console) -> DemoRow:
    row = DemoRow(example.name)
    try:
        workload = example.workload()
        prompt_ids = runner.prompt_ids_or_error(model, workload.prompt, workload.source)
        engine, _ = runner.choose_engine(model, engine_name)
        console.print(f"[bold]{example.name}[/bold]: {workload.source}, {len(prompt_ids):,} prompt tokens, "
                      f"{engine.name} engine")
        horizon_max_new_tokens = runner.default_max_new_tokens(model, len(prompt_ids))
        capped = max_new_tokens < horizon_max_new_tokens
        result = _run_with_progress(model, prompt_ids, engine, min(max_new_tokens, horizon_max_new_tokens), console)
    except (ProgramError, EngineError, OSError) as error:
        console.print(f"  error: {error}\n", style="red", markup=False)
        row.ending = f"error: {error}"
        return row
    console.print(_shown_output(result.output))
    row.result, row.ending = result, _ending(result, capped)
    row.verdict = runner.output_verdict(result, workload.expected)
    console.print(f"  {result.generated_tokens:,} tokens in {result.seconds:.1f} s "
                  f"({result.tokens_per_second:,.0f} tok/s): {row.ending}; output {row.verdict}\n",
                  markup=False)
    return row


def _run_with_progress(model, prompt_ids, engine, max_new_tokens, console) -> RunResult:
    progress = runner.progress_line(console.file, label="  ")
    try:
        return runner.run_prompt(model, prompt_ids, engine=engine, max_new_tokens=max_new_tokens, progress=progress)
    finally:
        if progress is not None:
            progress.close()


def _ending(result: RunResult, capped: bool) -> str:
    """How the run ended; ``capped``: the demo's max_new_tokens, not the horizon, bounded it."""
    if result.trap:
        return f"trapped ({result.trap})"
    if result.halted:
        return "halted"
    return "stopped at max_new_tokens" if capped else "stopped at the precision horizon"


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


def _results_table(rows: list[DemoRow], max_new_tokens: int) -> Table:
    table = Table(title="wasmformer demo: C programs inside a transformer")
    for column, justify in (("example", "left"), ("engine", "left"), ("prompt", "right"), ("generated", "right"),
                            ("seconds", "right"), ("tok/s", "right"), ("run", "left"), ("output", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "run")
    for row in rows:
        result = row.result
        numbers = (("-", "0", "0", "0.0", "0") if result is None else
                   (result.engine, f"{result.prompt_tokens:,}", f"{result.generated_tokens:,}",
                    f"{result.seconds:.1f}", f"{result.tokens_per_second:,.0f}"))
        table.add_row(row.name, *numbers, row.ending, row.verdict)
    table.caption = (f"max_new_tokens: {max_new_tokens:,} generated tokens per example. output: ok = equals "
                     "NAME.expected; prefix ok = a run stopped early printed the start of it")
    return table
