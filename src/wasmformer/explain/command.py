"""``wasmformer explain``: the step table of a run, and the heads behind chosen tokens.

The CLI's handler (cli.py ``_cmd_explain``) reads the program or prompt file
and the model as ``run`` does and hands them here. This module gets the
trace (a saved one, ``--trace``, or a fresh run on the fastest engine),
decodes the steps from the tokens (``steps.py``), runs the instrumented
forward pass for ``--token``/``--step`` (``heads.py``) and prints the tables,
the JSON or the HTML page. Every user mistake is an ``ExplainError`` with a
one-line message (the CLI shows it as ``wasmformer: error: ...``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from wasmformer.explain.heads import ExplainError, TokenExplanation, explain_tokens
from wasmformer.explain.steps import Run, Step, TraceDecodeError, decode_steps

# Steps listed without --steps: a long run is cut, with a note (the JSON lists every step).
DEFAULT_STEP_ROWS = 200  # in the terminal
DEFAULT_HTML_STEPS = 5_000  # in the HTML page (each row is a few hundred bytes)
HTML_TOKEN_STEPS = 40  # steps whose tokens get head explanations in the HTML page (each costs a forward pass row)
RANGE_SEPARATOR = ":"

__all__ = ["ExplainError", "Selection", "explain", "parse_step_range"]


@dataclass(frozen=True)
class Selection:
    """Which steps to list and which tokens to explain."""

    first: int | None = None  # step numbers, inclusive; None: open
    last: int | None = None
    token: int | None = None  # a token's position (the pass at token - 1 produced it)
    step: int | None = None  # every token of this step


def parse_step_range(text: str) -> tuple[int | None, int | None]:
    """``A:B`` (steps A to B, inclusive), ``A:``, ``:B`` or ``A`` (one step); steps count from 1."""
    first_text, separator, last_text = text.partition(RANGE_SEPARATOR)
    try:
        first = int(first_text) if first_text.strip() else None
        last = (int(last_text) if last_text.strip() else None) if separator else first
    except ValueError:
        raise ExplainError(f"--steps {text!r}: expected A:B, A: or :B with step numbers (from 1)") from None
    if (first is not None and first < 1) or (last is not None and last < 1):
        raise ExplainError(f"--steps {text!r}: steps count from 1")
    if first is not None and last is not None and last < first:
        raise ExplainError(f"--steps {text!r}: the range is empty ({last} < {first})")
    return first, last


def explain(model, prompt: list[str], program, *, trace_file: Path | None, selection: Selection,
            engine_name: str | None = None, max_new_tokens: int | None = None, as_json: bool = False,
            html: Path | None = None, source: Path | None = None, debug: bool = False, clang: str | None = None,
            say=None) -> int:
    """The whole command; returns the exit status (0)."""
    say = say or (lambda message: None)
    _check_prompt(model, prompt, program)
    if debug and (source is None or source.suffix.lower() != ".c" or program is None):
        raise ExplainError("--debug reads the C source lines of a .c program (give the .c file, or --program "
                           "FILE.c with a prompt file)")
    trace = _trace(model, prompt, trace_file, engine_name, max_new_tokens, say)
    try:
        run = decode_steps(prompt, trace, program)
    except TraceDecodeError as error:
        raise ExplainError(str(error)) from None
    limit = None if as_json else DEFAULT_HTML_STEPS if html is not None else DEFAULT_STEP_ROWS
    steps = _chosen_steps(run, selection, limit, say)
    positions = _positions(run, selection)
    if html is not None and not positions:
        positions = [position for step in steps[:HTML_TOKEN_STEPS] for position in range(step.start - 1, step.stop - 1)]
    explanations = _explanations(model, run, positions)
    source_text = _source_text(source)
    lines = _source_lines(source, program, clang) if debug else None
    if html is not None:
        from wasmformer.explain.html import write_html

        write_html(html, run, steps, explanations, source_text, str(source) if source else None, lines)
        say(f"wrote {html}")
    if as_json:
        from wasmformer.explain.render import as_json as to_json

        sys.stdout.write(to_json(run, steps, explanations, str(source) if source else None, lines) + "\n")
    elif html is None:
        from rich.console import Console

        from wasmformer.explain.render import TERMINAL_WIDTH, print_tables

        console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else TERMINAL_WIDTH)
        if explanations:
            print_tables(console, run, [], explanations)
        else:
            print_tables(console, run, steps, [], lines)
    return 0


def _check_prompt(model, prompt: list[str], program) -> None:
    """Before any run: the prompt is one of the WebAssembly machine's, and a specialised prompt comes with the
    program baked into the model (and no other)."""
    from wasmformer.machine import purpose

    layout = purpose.prompt_layout(prompt)
    if layout is None:
        raise ExplainError("not a prompt of the WebAssembly machine (neither the universal nor the specialised "
                           "layout): explain reads the steps of WebAssembly runs only")
    if layout != purpose.SPECIALISED:
        return
    if program is None:
        raise ExplainError("a specialised prompt holds no program: name the program the model was built "
                           "from with --program SOURCE")
    from wasmformer.machine.specialize import program_digest

    made_for = purpose.built_for(model) or {}
    if made_for.get("sha256") not in (None, program_digest(program)):
        raise ExplainError(f"the model was specialised for program '{made_for.get('program')}', not for this "
                           f"build of '{program.name}'")


def _trace(model, prompt: list[str], trace_file: Path | None, engine_name, max_new_tokens, say) -> list[str]:
    if trace_file is not None:
        from wasmformer.runner import read_prompt_file

        if not trace_file.is_file():
            raise ExplainError(f"{trace_file}: no such file")
        tokens = read_prompt_file(trace_file).tokens
        unknown = next((token for token in tokens if token not in set(model.vocab)), None)
        if unknown is not None:
            raise ExplainError(f"{trace_file}: token {unknown!r} is not in the model's vocabulary")
        return tokens
    from wasmformer import runner

    ids = runner.prompt_ids_or_error(model, prompt, "the prompt")
    engine, note = runner.choose_engine(model, engine_name)
    if note:
        say(note)
    result = runner.run_prompt(model, ids, engine=engine, max_new_tokens=max_new_tokens)
    if not result.halted:
        say(f"wasmformer: the run stopped after {result.generated_tokens:,} tokens without halting; "
            "explaining what it generated")
    return [model.vocab[token] for token in result.trace]


def _chosen_steps(run: Run, selection: Selection, limit: int | None, say) -> list[Step]:
    total = len(run.steps)
    if selection.step is not None:
        if not 1 <= selection.step <= total:
            raise ExplainError(f"--step {selection.step}: the run has steps 1 to {total}")
        return [run.steps[selection.step - 1]]
    first = selection.first or 1
    if first > total:
        raise ExplainError(f"--steps starts at {first}, but the run has {total} steps")
    last = min(selection.last or total, total)
    if selection.first is None and selection.last is None and limit is not None and total > limit:
        last = limit
        say(f"wasmformer: showing steps 1 to {last:,} of {total:,} (--steps A:B shows others)")
    return run.steps[first - 1:last]


def _positions(run: Run, selection: Selection) -> list[int]:
    """The forward passes to explain: the one before --token N, or those producing --step S's tokens."""
    total = len(run.tokens)
    if selection.token is not None:
        if not 1 <= selection.token <= total:
            raise ExplainError(f"--token {selection.token}: positions run from 1 to {total} "
                               f"(token 0 is the prompt's first; {total} is the one after the run)")
        return [selection.token - 1]
    if selection.step is not None:
        step = run.steps[selection.step - 1]
        return list(range(step.start - 1, step.stop - 1))
    return []


def _explanations(model, run: Run, positions: list[int]) -> list[TokenExplanation]:
    if not positions:
        return []
    from wasmformer.engines.base import EngineError, encode

    try:
        ids = encode(model, run.tokens)
    except EngineError as error:
        raise ExplainError(str(error)) from None
    return explain_tokens(model, ids, positions)


def _source_lines(source: Path, program, clang: str | None) -> dict:
    """pc -> SourceLine from clang's DWARF line table (explain/lines.py)."""
    from wasmformer.explain.lines import LineTableError, source_lines

    try:
        return source_lines(source, program, clang)
    except LineTableError as error:
        raise ExplainError(f"{source}: cannot read the DWARF line table ({error})") from None


def _source_text(source: Path | None) -> str | None:
    if source is None or source.suffix.lower() not in (".c", ".wat"):
        return None
    try:
        return source.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
