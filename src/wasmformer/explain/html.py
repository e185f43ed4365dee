"""``wasmformer explain --html FILE``: one self-contained HTML page (no network) of a run.

The page holds its data as JSON in a script element and renders it with a
little plain JavaScript: the step table (each token a link), the program's
source beside it, and for every token explained the heads of the forward
pass that produced it, with the positions they attended highlighted in the
table (prompt positions are listed by token; a mean's positions only while
the pointer is on its row). With ``--debug`` each step names its C line;
clicking it highlights the line in the source. ``#token=N`` in the address
opens token N's heads on load, so a headless browser can be pointed at one.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from wasmformer.explain.heads import TokenExplanation
from wasmformer.explain.render import output_text, pushed_text, step_note, writes_text
from wasmformer.explain.steps import Run, Step

MAX_WINNERS_LISTED = 16  # attended positions kept per head (a mean over more keeps its newest ones and the count)


def page_data(run: Run, steps: list[Step], explanations: list[TokenExplanation], source_text: str | None,
              source_name: str | None, source_lines: dict | None = None) -> dict:
    """Everything the page shows, compact: head descriptions once, then per token one row per head."""
    step_of = run.step_of_position()
    heads: dict[tuple[int, int], int] = {}
    head_list = []
    tokens = {}
    for explanation in explanations:
        rows = []
        for lookup in explanation.lookups:
            key = (lookup.layer, lookup.head)
            if key not in heads:
                heads[key] = len(head_list)
                head_list.append({"layer": lookup.layer, "head": lookup.head, "name": lookup.name,
                                  "tie": lookup.tie, "query": lookup.query_text, "key": lookup.key_text,
                                  "outputs": [name for name, _, _ in lookup.outputs]})
            rows.append([heads[key], lookup.winners[-MAX_WINNERS_LISTED:], len(lookup.winners),
                         lookup.query, lookup.key, [value for _, _, value in lookup.outputs]])
        tokens[explanation.position + 1] = {"pass": explanation.position, "produced": explanation.produced,
                                            "expected": explanation.expected, "heads": rows}
    attended = {winner for record in tokens.values() for row in record["heads"] for winner in row[1]}
    return {
        "source_name": source_name, "source": source_text,
        "prompt_tokens": len(run.prompt), "generated_tokens": len(run.trace), "steps_total": len(run.steps),
        "steps": [{"step": step.number, "start": step.start, "pc": step.pc, "function": step.function or "",
                   "instruction": step.instruction, "pushed": pushed_text(step), "writes": writes_text(step),
                   "out": output_text(step), "note": step_note(step), "tokens": step.tokens,
                   "problem": bool(step.problem),
                   "line": source_lines[step.pc].line if source_lines and step.pc in source_lines else None}
                  for step in steps],
        "heads": head_list, "explained": tokens,
        # prompt (and unlisted) positions a head attended: their tokens, so the page can name them
        "positions": {position: [run.tokens[position], step_of.get(position)] for position in sorted(attended)},
    }


def render_page(data: dict) -> str:
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(f"wasmformer explain: {data.get('source_name') or 'a run'}")
    return _TEMPLATE.replace("__TITLE__", title).replace("__DATA__", payload)


def write_html(path: Path, run: Run, steps: list[Step], explanations: list[TokenExplanation],
               source_text: str | None, source_name: str | None, source_lines: dict | None = None) -> None:
    data = page_data(run, steps, explanations, source_text, source_name, source_lines)
    path.write_text(render_page(data), encoding="utf-8")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 13px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 12px; color: #222; }
h1 { font-size: 16px; margin: 0 0 8px; }
#layout { display: flex; gap: 12px; align-items: flex-start; }
#left { flex: 3; min-width: 0; }
#right { flex: 2; min-width: 0; position: sticky; top: 8px; max-height: 96vh; overflow: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; }
tr.problem td { color: #b00; }
.tok { cursor: pointer; padding: 0 2px; border-radius: 3px; }
.tok:hover { background: #def; }
.tok.selected { background: #3b7ddd; color: #fff; }
.tok.attended { background: #ffd966; }
.tok.explained { text-decoration: underline dotted; }
.tok.focus { outline: 2px solid #e06000; }
#heads tbody tr:hover { background: #fff3e0; }
pre#source { background: #fafafa; border: 1px solid #ddd; padding: 6px; overflow: auto; max-height: 40vh; }
#heads-title { font-weight: bold; margin: 8px 0 4px; }
.muted { color: #777; }
td.line { cursor: pointer; color: #1a5fb4; }
#source .current { background: #ffd966; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div id="summary" class="muted"></div>
<div id="layout">
  <div id="left">
    <table id="steps">
      <thead><tr><th>step</th><th>pos</th><th>pc</th><th>function</th><th>instruction</th><th>pushed</th>
      <th>writes</th><th>out</th><th>note</th><th>line</th><th>tokens</th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
  <div id="right">
    <div id="source-box"><div class="muted" id="source-name"></div><pre id="source"></pre></div>
    <div id="heads-title">Click an underlined token to see the heads of the pass that produced it.</div>
    <div id="prompt-attended" class="muted"></div>
    <table id="heads">
      <thead><tr><th>layer</th><th>head</th><th>lookup</th><th>kind</th><th>query &rarr; key</th>
      <th>won</th><th>token</th><th>step</th><th>wrote</th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
</div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const cell = (row, text, cls) => { const td = document.createElement("td"); td.textContent = text;
  if (cls) td.className = cls; row.appendChild(td); return td; };
const number = (value) => value === null || value === undefined ? "" :
  (Number.isInteger(value) ? String(value) : value.toPrecision(4));
const tokenAt = {};
document.getElementById("title").textContent = "wasmformer explain: " + (data.source_name || "a run");
document.getElementById("summary").textContent = data.steps.length + " of " + data.steps_total + " steps, " +
  data.prompt_tokens + "-token prompt, " + data.generated_tokens + " generated tokens; " +
  Object.keys(data.explained).length + " tokens explained";
const body = document.querySelector("#steps tbody");
for (const step of data.steps) {
  const row = document.createElement("tr");
  if (step.problem) row.className = "problem";
  row.dataset.step = step.step;
  cell(row, step.step, "num"); cell(row, step.start, "num"); cell(row, step.pc, "num");
  cell(row, step.function); cell(row, step.instruction); cell(row, step.pushed, "num");
  cell(row, step.writes); cell(row, step.out); cell(row, step.note);
  const line = cell(row, step.line === null ? "" : step.line, "num");
  if (step.line !== null) { line.className = "num line"; line.addEventListener("click", () => showLine(step.line)); }
  const tokens = cell(row, "");
  step.tokens.forEach((text, offset) => {
    const span = document.createElement("span");
    const position = step.start + offset;
    span.className = "tok" + (data.explained[position] ? " explained" : "");
    span.dataset.pos = position; span.textContent = text; span.title = "position " + position;
    span.addEventListener("click", () => show(position));
    tokenAt[position] = span; tokens.appendChild(span); tokens.appendChild(document.createTextNode(" "));
  });
  body.appendChild(row);
}
if (data.source) {
  document.getElementById("source-name").textContent = data.source_name || "";
  const source = document.getElementById("source");
  data.source.split("\\n").forEach((line, index) => {
    const span = document.createElement("span");
    span.id = "line-" + (index + 1);
    span.textContent = String(index + 1).padStart(4) + "  " + line + "\\n";
    source.appendChild(span);
  });
} else {
  document.getElementById("source-box").style.display = "none";
}
function showLine(number) {
  document.querySelectorAll("#source .current").forEach((span) => span.classList.remove("current"));
  const span = document.getElementById("line-" + number);
  if (span) { span.classList.add("current"); span.scrollIntoView({block: "nearest"}); }
}
function show(position) {
  document.querySelectorAll(".tok.selected, .tok.attended").forEach((span) =>
    span.classList.remove("selected", "attended"));
  const record = data.explained[position];
  const headsBody = document.querySelector("#heads tbody");
  headsBody.textContent = "";
  const title = document.getElementById("heads-title");
  if (tokenAt[position]) tokenAt[position].classList.add("selected");
  if (!record) { title.textContent = "Token " + position + " was not explained (explain fewer steps, or use --token)."; return; }
  title.textContent = "token " + position + " " + record.produced + " is the argmax of the pass at position " +
    record.pass + (record.expected && record.expected !== record.produced ? " (the run has " + record.expected + ")" : "");
  const prompt = new Set();
  for (const [index, winners, count, query, key, values] of record.heads) {
    const head = data.heads[index];
    const row = document.createElement("tr");
    row.dataset.head = head.name;
    const newest = winners[winners.length - 1];
    const where = data.positions[newest] || ["?", null];
    cell(row, head.layer, "num"); cell(row, head.head, "num"); cell(row, head.name); cell(row, head.tie || "");
    cell(row, query === null ? "" : number(query) + " \\u2192 " + number(key));
    cell(row, count === 1 ? String(newest) : "mean of " + count, "num");
    cell(row, where[0]); cell(row, where[1] === null ? "prompt" : where[1], "num");
    cell(row, head.outputs.map((name, k) => name + "=" + number(values[k])).join(" "));
    if (head.tie !== "average") {  // a mean attends to every position: highlighting them all says nothing
      for (const winner of winners) {
        if (tokenAt[winner]) tokenAt[winner].classList.add("attended");
        else prompt.add(winner + " " + (data.positions[winner] || ["?"])[0]);
      }
    }
    row.addEventListener("mouseenter", () => winners.forEach((winner) =>
      tokenAt[winner] && tokenAt[winner].classList.add("focus")));
    row.addEventListener("mouseleave", () => document.querySelectorAll(".tok.focus").forEach((span) =>
      span.classList.remove("focus")));
    headsBody.appendChild(row);
  }
  document.getElementById("prompt-attended").textContent = prompt.size ?
    "attended outside the table: " + Array.from(prompt).slice(0, 40).join(", ") : "";
}
const wanted = /token=(\\d+)/.exec(window.location.hash);
if (wanted) show(Number(wanted[1]));
</script>
</body>
</html>
"""
