"""Every benchmark in one command: tok/s per example and engine, scaling with trace length, a plot.

    .venv/bin/python benchmarks/run_all.py            # the universal model; rewrites docs/benchmarks.md
    .venv/bin/python benchmarks/run_all.py --quick    # smaller sizes (docs untouched)
    .venv/bin/python benchmarks/run_all.py --model DIR --prompt FILE   # another model and its prompt

(a) every bundled example (examples/*.c and its input) on every engine, dense
    and hull on a token-capped prefix (3,000 and 30,000 generated tokens);
(b) tok/s and peak RSS against trace length, each run in a fresh process
    (benchmarks/measure_run.py): the loop of benchmarks/programs/spin.wat with
    its turn count sized to each length, native up to 10M tokens (cut to what
    the model's precision horizon allows after the prompt), hull up to 100K,
    dense up to 10K; an engine's series stops early when the next run is
    estimated to take longer than --max-seconds;
(c) a PNG plot of tok/s (and peak RSS) against trace length per engine
    (needs matplotlib: `.venv/bin/pip install -e '.[bench]'`);
(d) start-up time, cold and warm (benchmarks/warm_start.py, universal model only).

Results go to --out (results.json, results.md, tok_per_s.png, warm_start.*; default
benchmarks/results/) and, for a full run on the universal model, into the
results block of docs/benchmarks.md. With --model DIR --prompt FILE the
examples part runs that prompt instead, and scaling caps that prompt's run
at each length (it cannot be resized).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from rich.console import Console

from wasmformer import runner
from wasmformer.model import Model, load_model, save_model

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCHMARKS_DIR.parent
SPIN_SOURCE = BENCHMARKS_DIR / "programs" / "spin.wat"
DOCS_FILE = REPO_DIR / "docs" / "benchmarks.md"
RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"

ONE_TWO_FIVE = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000]
TRACE_LENGTHS = {  # generated tokens per scaling run
    "native": ONE_TWO_FIVE,
    "hull": [n for n in ONE_TWO_FIVE if n <= 100_000],
    "dense": [n for n in ONE_TWO_FIVE if n <= 10_000],
}
QUICK_LENGTHS = {"native": [n for n in ONE_TWO_FIVE if n <= 1_000_000], "hull": [1_000, 3_000, 10_000],
                 "dense": [1_000, 3_000]}
# Time per run grows as the length (native, hull: O(log t) per token) or its square (dense: O(t)).
TIME_GROWTH_EXPONENT = {"native": 1, "hull": 1, "dense": 2}
CALIBRATION_TURNS = (4, 8)


@dataclass
class ScalingPoint:
    engine: str
    target_tokens: int
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    peak_rss_mib: float = 0.0
    rss_before_run_mib: float = 0.0
    attention_state_mib: float | None = None
    halted: bool = False
    output_ok: bool | None = None
    output_hex: str = ""
    note: str = ""


# ---------------------------------------------------------------------------
# (b) workloads sized to a trace length


def spin_reference(turns: int) -> int:
    """What spin(turns) in programs/spin.wat returns (i32 arithmetic)."""
    words, slot, total, mask = [0] * 64, 0, 0, (1 << 32) - 1
    for i in range(turns):
        slot = 0 if slot >= 252 else slot + 4
        words[slot // 4] = (words[slot // 4] + i) & mask
        total = (total + words[slot // 4]) & mask
    return total


class SpinSizer:
    """Prompt files of the spin loop whose run generates (close to) a wanted number of tokens.

    Every turn of the loop generates the same tokens, so the trace length is
    base + per_turn * turns; two short runs measure both.
    """

    resizable = True

    def __init__(self, model: Model, scratch: Path):
        self.model, self.scratch = model, scratch
        (few, more) = CALIBRATION_TURNS
        tokens_few, tokens_more = (self._run_length(turns) for turns in (few, more))
        self.per_turn = (tokens_more - tokens_few) // (more - few)
        self.base = tokens_few - few * self.per_turn
        self.prompt_tokens = len(self._prompt(0))

    def describe(self) -> str:
        return (f"programs/spin.wat, spin(n): {self.base:,} + {self.per_turn:,}·n generated tokens "
                f"after a {self.prompt_tokens:,}-token prompt")

    def prompt_for(self, target: int) -> tuple[Path, int | None, bytes]:
        """(prompt file, max_new_tokens, expected output) for a run of about ``target`` generated tokens."""
        room = runner.default_max_new_tokens(self.model, self.prompt_tokens)
        turns = max(0, (min(target, room) - self.base) // self.per_turn)
        path = self.scratch / f"spin_{turns}.prompt"
        path.write_text(" ".join(self._prompt(turns)) + "\n")
        expected = spin_reference(turns).to_bytes(4, "little")
        return path, None, expected  # no cap: the loop halts by itself

    def _prompt(self, turns: int) -> list[str]:
        from wasmformer.frontend import load_program
        from wasmformer.machine.prompt import encode_prompt

        return encode_prompt(load_program(SPIN_SOURCE, invoke="spin", args=(turns,)))

    def _run_length(self, turns: int) -> int:
        prompt_ids = runner.prompt_ids_or_error(self.model, self._prompt(turns), "spin calibration")
        result = runner.run_prompt(self.model, prompt_ids)  # up to the precision horizon
        if not result.halted or result.output != spin_reference(turns).to_bytes(4, "little"):
            raise SystemExit(f"calibration run spin({turns}) went wrong (halted={result.halted}, "
                             f"output={result.output.hex()}); is this the universal model?")
        return result.generated_tokens


class FixedPromptSizer:
    """A prompt file that cannot be resized: each run is that prompt capped at the wanted length."""

    resizable = False

    def __init__(self, prompt_file: Path):
        self.prompt_file = prompt_file
        self.prompt_tokens = len(runner.read_prompt_file(prompt_file).tokens)

    def describe(self) -> str:
        return f"{self.prompt_file.name} ({self.prompt_tokens:,}-token prompt), capped at each length"

    def prompt_for(self, target: int) -> tuple[Path, int | None, bytes | None]:
        return self.prompt_file, target, None


# ---------------------------------------------------------------------------
# (b) the measured runs


def scaling_series(engine: str, lengths: list[int], sizer, model_dir: Path, horizon: int,
                   max_seconds: float, console: Console) -> list[ScalingPoint]:
    """One engine over increasing trace lengths, each run in its own process, until runs get too long."""
    points: list[ScalingPoint] = []
    for target in lengths:
        skip = _skip_reason(engine, target, points, max_seconds, sizer.resizable)
        if skip:
            points.append(ScalingPoint(engine, target, note=skip))
            console.print(f"  {engine} {target:>12,}: skipped ({skip})")
            continue
        prompt_file, max_new_tokens, expected = sizer.prompt_for(target)
        point = _measure_in_subprocess(engine, target, model_dir, prompt_file, max_new_tokens, max_seconds)
        if expected is not None and not point.note:
            point.output_ok = point.halted and bytes.fromhex(point.output_hex) == expected
        if point.seconds > 0 and target > horizon - point.prompt_tokens:
            point.note = point.note or f"limited by the precision horizon (max_exact_tokens = {horizon:,})"
        points.append(point)
        console.print(f"  {engine} {target:>12,}: {point.generated_tokens:>12,} tokens  {point.seconds:8.2f} s  "
                      f"{point.tokens_per_second:>12,.0f} tok/s  peak RSS {point.peak_rss_mib:8.1f} MiB  "
                      f"{'output ok' if point.output_ok else ''} {point.note}")
    return points


def _skip_reason(engine: str, target: int, done: list[ScalingPoint], max_seconds: float, resizable: bool) -> str:
    measured = [point for point in done if point.seconds > 0]
    if not measured:
        return ""
    last = measured[-1]
    if last.halted and not resizable:
        return "the prompt halts before this length"
    if last.note.startswith("limited by the precision horizon"):
        return "beyond the precision horizon"
    estimate = last.seconds * (target / max(last.generated_tokens, 1)) ** TIME_GROWTH_EXPONENT[engine]
    if estimate > max_seconds:
        return f"estimated {estimate:,.0f} s > --max-seconds {max_seconds:,.0f}"
    return ""


def _measure_in_subprocess(engine: str, target: int, model_dir: Path, prompt_file: Path,
                           max_new_tokens: int | None, max_seconds: float) -> ScalingPoint:
    command = [sys.executable, str(BENCHMARKS_DIR / "measure_run.py"), "--model", str(model_dir),
               "--prompt", str(prompt_file), "--engine", engine]
    if max_new_tokens is not None:
        command += ["--max-new-tokens", str(max_new_tokens)]
    try:
        # generous: the estimate that admitted this run may be off by a few times
        finished = subprocess.run(command, capture_output=True, text=True, timeout=4 * max_seconds + 60)
    except subprocess.TimeoutExpired:
        return ScalingPoint(engine, target, note="timed out")
    if finished.returncode != 0:
        last_line = (finished.stderr.strip().splitlines() or ["no message"])[-1]
        return ScalingPoint(engine, target, note=f"failed: {last_line}")
    record = json.loads(finished.stdout.strip().splitlines()[-1])
    point = ScalingPoint(engine, target, **{key: record[key] for key in (
        "prompt_tokens", "generated_tokens", "seconds", "tokens_per_second", "peak_rss_mib",
        "rss_before_run_mib", "halted", "output_hex")})
    point.attention_state_mib = record.get("attention_state_mib")
    return point


# ---------------------------------------------------------------------------
# (c) the plot


def plot_scaling(points: list[ScalingPoint], path: Path) -> str:
    """tok/s and peak RSS against generated tokens, one line per engine; returns what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (`.venv/bin/pip install -e '.[bench]'`)"
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine in sorted({point.engine for point in points}):
        measured = [point for point in points if point.engine == engine and point.seconds > 0]
        if not measured:
            continue
        lengths = [point.generated_tokens for point in measured]
        speed.plot(lengths, [point.tokens_per_second for point in measured], marker="o", label=engine)
        memory.plot(lengths, [point.peak_rss_mib for point in measured], marker="o", label=engine)
    speed.set_yscale("log")
    memory.set_ylim(bottom=0)
    for axes, label in ((speed, "tokens per second (prompt included)"), (memory, "peak RSS of the run (MiB)")):
        axes.set_xscale("log")
        axes.set_xlabel("generated tokens (trace length)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"plot: {path}"


# ---------------------------------------------------------------------------
# the report


def scaling_markdown(points: list[ScalingPoint]) -> str:
    lines = ["| engine | target | generated | seconds | tok/s | peak RSS (MiB) | before run (MiB) | "
             "attention state (MiB) | output | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for point in points:
        if point.seconds <= 0:
            lines.append(f"| {point.engine} | {point.target_tokens:,} | | | | | | | | {point.note} |")
            continue
        state = "" if point.attention_state_mib is None else f"{point.attention_state_mib:,.1f}"
        output = {True: "ok", False: "WRONG", None: "-"}[point.output_ok]
        lines.append(f"| {point.engine} | {point.target_tokens:,} | {point.generated_tokens:,} | "
                     f"{point.seconds:,.2f} | {point.tokens_per_second:,.0f} | {point.peak_rss_mib:,.1f} | "
                     f"{point.rss_before_run_mib:,.1f} | {state} | {output} | {point.note} |")
    return "\n".join(lines) + "\n"


def report_markdown(record: dict, example_rows: list[runner.BenchRow], points: list[ScalingPoint],
                    plot_note: str, plot_link: str | None) -> str:
    machine, sizes = record["machine"], record["model"]
    parts = [
        f"Measured {record['date']} on {machine['summary']}.",
        f"Model: {record['model_name']}: D={sizes['d_model']}, L={sizes['n_layers']}, H={sizes['n_heads']}, "
        f"F={sizes['d_ffn']}, vocab {sizes['vocab']:,}, {sizes['nonzero_weights']:,} nonzero weights, "
        f"max_exact_tokens {sizes['max_exact_tokens']:,}.",
        f"Command: `{record['command']}`",
    ]
    if example_rows:
        parts += ["### (a) The examples on each engine", runner.bench_markdown(example_rows).rstrip(),
                  "tok/s counts prompt and generated tokens (forward passes per second). "
                  "Capped runs cover only the first generated tokens of the example."]
    if points:
        parts += ["### (b) Speed and memory against trace length", f"Workload: {record['scaling_workload']}.",
                  scaling_markdown(points).rstrip(),
                  "Each row is a fresh process (benchmarks/measure_run.py). Peak RSS (VmHWM) includes the "
                  "interpreter, numpy and the model (the 'before run' column) and the trace kept as a Python list."]
    parts += ["### (c) Plot", f"![tok/s against trace length]({plot_link})" if plot_link else plot_note]
    return "\n\n".join(parts) + "\n"


def update_docs(markdown: str, docs_file: Path = DOCS_FILE) -> None:
    """Replace the results block of docs/benchmarks.md (between the two marker comments)."""
    text = docs_file.read_text()
    head, found, rest = text.partition(RESULTS_BEGIN)
    _, found_end, tail = rest.partition(RESULTS_END)
    if not found or not found_end:
        raise SystemExit(f"{docs_file} has no {RESULTS_BEGIN} ... {RESULTS_END} block to fill")
    docs_file.write_text(f"{head}{RESULTS_BEGIN}\n{markdown}{RESULTS_END}{tail}")


# ---------------------------------------------------------------------------
# main


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the universal model)")
    parser.add_argument("--prompt", type=Path, default=None,
                        help="with --model: the prompt to run (examples and scaling); required then")
    parser.add_argument("--engines", default=None, help="comma-separated (default: every available engine)")
    parser.add_argument("--examples", default=None, help="comma-separated example names (default: all)")
    parser.add_argument("--out", type=Path, default=BENCHMARKS_DIR / "results", help="results directory")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: native to 1M, hull 10K, dense 3K")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="trace lengths for every engine (overrides the defaults)")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="skip a scaling run estimated to take longer than this (default 900)")
    parser.add_argument("--skip-examples", action="store_true", help="leave out part (a)")
    parser.add_argument("--skip-scaling", action="store_true", help="leave out part (b)")
    parser.add_argument("--skip-warm-start", action="store_true", help="leave out part (d)")
    parser.add_argument("--docs", choices=("auto", "yes", "no"), default="auto",
                        help="rewrite the results block of docs/benchmarks.md (auto: for a full universal-model run)")
    args = parser.parse_args(argv)
    if (args.model is None) != (args.prompt is None):
        parser.error("--model and --prompt go together (a prompt only fits its own model)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    # plain lines, never wrapped; rich's 80 columns for a non-terminal are too narrow for the tables
    console = Console(file=sys.stderr, markup=False, highlight=False, soft_wrap=True,
                      width=None if sys.stderr.isatty() else 120)
    engines = runner.parse_engine_list(args.engines)
    with tempfile.TemporaryDirectory(prefix="wasmformer-bench-") as scratch_name:
        scratch = Path(scratch_name)
        model, model_dir, model_name = _model(args, scratch, console)
        record = {"date": date.today().isoformat(), "command": _command_line(argv),
                  "machine": runner.machine_description(), "model": runner.model_description(model),
                  "model_name": model_name}
        console.print(f"machine: {record['machine']['summary']}")
        example_rows = [] if args.skip_examples else _examples_part(model, args, engines, console)
        points: list[ScalingPoint] = []
        if not args.skip_scaling:
            sizer = FixedPromptSizer(args.prompt) if args.prompt else SpinSizer(model, scratch)
            record["scaling_workload"] = sizer.describe()
            console.print(f"scaling: {sizer.describe()}")
            for engine in engines:
                lengths = args.lengths or (QUICK_LENGTHS if args.quick else TRACE_LENGTHS)[engine]
                points += scaling_series(engine, lengths, sizer, model_dir, model.max_exact_tokens,
                                         args.max_seconds, console)
    _write_results(args, record, example_rows, points, console)
    if args.model is None and not args.skip_warm_start:
        _warm_start_part(args.out, console)
    return 0


def _warm_start_part(out: Path, console: Console) -> None:
    """(d): benchmarks/warm_start.py in a process of its own (it times fresh processes); its table and files."""
    console.print("warm start: `wasmformer run examples/hello.c` cold and warm, and a bare numpy import")
    result = subprocess.run([sys.executable, str(BENCHMARKS_DIR / "warm_start.py"), "--out", str(out)],
                            capture_output=True, text=True)
    console.print((result.stdout + result.stderr).rstrip())


def _model(args, scratch: Path, console: Console) -> tuple[Model, Path, str]:
    """(model, a directory holding it for the measuring subprocesses, its name for the report)."""
    if args.model is not None:
        return load_model(args.model), args.model, str(args.model)
    console.print("loading the universal model (built on first use)")
    model = runner.load_universal_model(log=lambda message: console.print(message, style="dim"))
    return model, save_model(model, scratch / "universal"), "the universal model"


def _examples_part(model: Model, args, engines: list[str], console: Console) -> list[runner.BenchRow]:
    if args.prompt:
        workloads = [runner.prompt_file_workload(args.prompt)]
    else:
        names = args.examples.split(",") if args.examples else None
        workloads = [example.workload() for example in runner.bundled_examples(names)]
    console.print(f"examples: {', '.join(workload.name for workload in workloads)} on {', '.join(engines)}")
    rows = runner.bench_workloads(model, workloads, engines,
                                  progress_for=lambda label: runner.progress_line(sys.stderr, label=label))
    console.print(runner.bench_table(rows))
    return rows


def _write_results(args, record: dict, example_rows, points, console: Console) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    plot_path = args.out / "tok_per_s.png"
    plot_note = plot_scaling(points, plot_path) if points else "no scaling runs"
    console.print(plot_note)
    plotted = plot_path.is_file() and plot_note.startswith("plot:")
    record.update(examples=[asdict(row) for row in example_rows], scaling=[asdict(point) for point in points])
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    link = _relative_link(plot_path, args.out) if plotted else None
    (args.out / "results.md").write_text(report_markdown(record, example_rows, points, plot_note, link))
    console.print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    full_universal_run = args.model is None and not (args.quick or args.skip_examples or args.skip_scaling
                                                     or args.lengths or args.examples)
    if args.docs == "yes" or (args.docs == "auto" and full_universal_run):
        docs_link = _relative_link(plot_path, DOCS_FILE.parent) if plotted else None
        update_docs(report_markdown(record, example_rows, points, plot_note, docs_link))
        console.print(f"updated {DOCS_FILE}")


def _relative_link(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())


def _command_line(argv: list[str] | None) -> str:
    arguments = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python benchmarks/run_all.py", *arguments])


if __name__ == "__main__":
    started = time.perf_counter()
    status = main()
    print(f"benchmarks done in {time.perf_counter() - started:,.0f} s", file=sys.stderr)
    sys.exit(status)
