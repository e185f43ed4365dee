"""The explain tables as a terminal shows them (rich) and as tools read them (JSON).

Pure formatting: the rows come from ``steps.decode_steps`` and
``heads.explain_tokens``; nothing here computes machine state.
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from wasmformer.explain.heads import TokenExplanation
from wasmformer.explain.steps import Run, Step
from wasmformer.vm.ops import signed

MAX_CELL_WRITES = 2  # memory writes shown one by one in a cell; more are one range with their bytes in hex
PROMPT = "prompt"
TERMINAL_WIDTH = 160  # when stdout is not a terminal (rich would assume 80 columns)


def step_note(step: Step) -> str:
    """The step's control flow, ending or problem, in a few words."""
    notes = []
    if step.transfer is not None:
        notes.append(f"→ pc {step.transfer}")
    if step.end is not None:
        notes.append(step.end)
    if step.exit_status is not None:
        notes.append(f"exit {step.exit_status}")
    if not step.complete:
        notes.append("unfinished")
    if step.problem:
        notes.append(f"PROBLEM: {step.problem}")
    return "; ".join(notes)


def writes_text(step: Step) -> str:
    memory = [write for write in step.writes if write.kind == "memory"]
    variables = [write.text() for write in step.writes if write.kind != "memory"]
    if len(memory) > MAX_CELL_WRITES:
        data = bytes(write.value for write in memory)
        variables.append(f"mem[{memory[0].target:#x}..{memory[-1].target:#x}]={data.hex()}")
    else:
        variables += [write.text() for write in memory]
    return " ".join(variables)


def output_text(step: Step) -> str:
    parts = []
    if step.output:
        parts.append(repr(step.output)[1:])
    if step.errors:
        parts.append("stderr " + repr(step.errors)[1:])
    return " ".join(parts)


def pushed_text(step: Step) -> str:
    return " ".join(str(signed(word)) for word in step.pushed)


def steps_table(run: Run, steps: list[Step], source_lines: dict | None = None) -> Table:
    """The step table; ``source_lines`` (pc -> lines.SourceLine, from --debug) adds a source column."""
    table = Table(title=f"{len(steps)} of {len(run.steps)} steps ({len(run.prompt):,}-token prompt, "
                  f"{len(run.trace):,} generated tokens)", title_justify="left")
    for name, justify in (("step", "right"), ("pos", "right"), ("pc", "right"), ("function", "left"),
                          ("instruction", "left"), ("pushed", "right"), ("writes", "left"), ("out", "left"),
                          ("note", "left"), ("tokens", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    if source_lines:
        table.add_column("source", overflow="fold")
    for step in steps:
        row = [str(step.number), str(step.start), str(step.pc), step.function or "", step.instruction,
               pushed_text(step), writes_text(step), output_text(step), step_note(step), " ".join(step.tokens)]
        if source_lines:
            line = source_lines.get(step.pc)
            row.append(line.label() if line else "")
        table.add_row(*row, style="red" if step.problem else None)
    return table


def token_header(explanation: TokenExplanation, run: Run) -> str:
    produced_at = explanation.position + 1
    step = run.step_at(produced_at)
    where = (f"step {step.number}, {step.instruction}" + (f" in {step.function}" if step.function else "")
             if step is not None else PROMPT)
    verdict = ("" if explanation.expected is None or explanation.expected == explanation.produced
               else f"  (the run has {explanation.expected!r} there: the model disagrees with the trace)")
    return (f"token {produced_at} {explanation.produced!r} ({where}) is the argmax of the forward pass at "
            f"position {explanation.position} (token {explanation.token!r}){verdict}")


def heads_table(explanation: TokenExplanation, run: Run) -> Table:
    step_of = run.step_of_position()
    table = Table(title=token_header(explanation, run), title_justify="left")
    for name, justify in (("layer", "right"), ("head", "right"), ("lookup", "left"), ("kind", "left"),
                          ("query → key", "left"), ("won", "right"), ("token", "left"), ("step", "right"),
                          ("wrote", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for lookup in explanation.lookups:
        won = str(lookup.winner) if len(lookup.winners) == 1 else f"mean of {len(lookup.winners)}"
        matched = "" if lookup.query is None else f"{_number(lookup.query)} → {_number(lookup.key)}"
        winner_step = step_of.get(lookup.winner)
        wrote = " ".join(f"{name}={_number(value)}" for name, _, value in lookup.outputs)
        table.add_row(str(lookup.layer), str(lookup.head), lookup.name, lookup.tie or "", matched, won,
                      run.tokens[lookup.winner], PROMPT if winner_step is None else str(winner_step), wrote)
    return table


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def print_tables(console: Console, run: Run, steps: list[Step], explanations: list[TokenExplanation],
                 source_lines: dict | None = None) -> None:
    if steps:
        console.print(steps_table(run, steps, source_lines))
    for explanation in explanations:
        console.print(heads_table(explanation, run))


def _step_record(step: Step, source_lines: dict | None) -> dict:
    record = step.as_dict()
    if source_lines is not None:
        line = source_lines.get(step.pc)
        record["source_line"] = {"file": line.file, "line": line.line, "text": line.text} if line else None
    return record


def as_json(run: Run, steps: list[Step], explanations: list[TokenExplanation], source: str | None,
            source_lines: dict | None = None) -> str:
    step_of = run.step_of_position()
    tokens = []
    for explanation in explanations:
        record = explanation.as_dict()
        record["produced_in_step"] = step_of.get(explanation.position + 1)
        for head in record["heads"]:
            head["winner_token"] = run.tokens[head["winner"]]
            head["winner_step"] = step_of.get(head["winner"])
        tokens.append(record)
    document = {"source": source, "prompt_tokens": len(run.prompt), "generated_tokens": len(run.trace),
                "code": run.code.kind, "steps_total": len(run.steps),
                "steps": [_step_record(step, source_lines) for step in steps], "tokens": tokens}
    return json.dumps(document, indent=1)
