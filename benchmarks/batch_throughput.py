"""Batch throughput: programs/s and tok/s of 200 small C programs at 1 and 2 local workers and on local Ray.

    .venv/bin/python benchmarks/batch_throughput.py [--programs 200] [--workers 1,2] [--ray] [--out DIR]

The programs are one small C source with 200 different constants (a loop of a few thousand VM steps and a
printf), so each run loads compiled C, builds its prompt and decodes ~20-60K tokens: the mix a trace-dataset
or grading batch has. The programs are compiled once before any timing (the front end caches compiled C by
source), so every configuration finds them compiled and the first is not charged for compiles the others
skip. Every configuration runs the same manifest into a fresh results file; the wall clock includes
starting the workers and loading the model in each (what a user waits for).
Results go to DIR/batch.json and DIR/batch.md (default benchmarks/results/).

--ceiling measures what two cores give two processes that share nothing: RUNS `wasmformer run` processes of
one of the programs one after another, then two such streams at once. The ratio bounds the speedup any
batch can reach on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import wasmformer
from wasmformer.runner import machine_description

PROGRAM = """#include <stdio.h>
int main(void) {{
    volatile int turns = {turns};
    unsigned hash = {seed}u;
    for (int i = 0; i < turns; i++) hash = hash * 31u + (unsigned)i;
    printf("%u\\n", hash);
    return 0;
}}
"""


def write_programs(directory: Path, count: int) -> Path:
    for index in range(count):
        (directory / f"p{index:03d}.c").write_text(PROGRAM.format(turns=200 + 7 * (index % 50), seed=index))
    return directory


def measure(programs: Path, results: Path, workers: int, ray: str | None) -> dict:
    started = time.perf_counter()
    outcomes = list(wasmformer.batch(programs, results=results, workers=workers, ray=ray))
    seconds = time.perf_counter() - started
    failures = [outcome.id for outcome in outcomes if outcome.error or outcome.exit_status != 0]
    if failures:
        raise SystemExit(f"{len(failures)} runs failed, e.g. {failures[:3]}")
    tokens = sum(outcome.tokens + outcome.prompt_tokens for outcome in outcomes)
    return {"configuration": f"{'ray local, ' if ray else ''}{workers} worker{'s' if workers > 1 else ''}",
            "workers": workers, "ray": bool(ray), "programs": len(outcomes), "seconds": round(seconds, 2),
            "programs_per_second": round(len(outcomes) / seconds, 3), "tokens_per_second": round(tokens / seconds)}


def run_stream(program: Path, runs: int) -> None:
    for _ in range(runs):
        subprocess.run([sys.executable, "-m", "wasmformer", "run", str(program), "-q"], check=True,
                       stdout=subprocess.DEVNULL)


def measure_ceiling(program: Path, runs: int) -> dict:
    """Seconds per run of one stream of processes alone, and of each of two streams at once."""
    timings = {}
    for streams in (1, 2):
        started = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:  # threads only wait: each run is its own process
            list(pool.map(run_stream, [program] * streams, [runs] * streams))
        timings[streams] = (time.perf_counter() - started) / runs
    return {"runs": runs, "seconds_per_run_alone": round(timings[1], 3),
            "seconds_per_run_two_at_once": round(timings[2], 3), "ceiling": round(2 * timings[1] / timings[2], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="local worker counts to measure")
    parser.add_argument("--ray", action="store_true", help="also on a local Ray instance (needs wasmformer[ray])")
    parser.add_argument("--ceiling", type=int, metavar="RUNS", default=0,
                        help="only measure two independent process streams of RUNS runs each (see above)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    wasmformer.load_model()  # built and cached before any timing
    rows = []
    with tempfile.TemporaryDirectory(prefix="wasmformer-batch-") as scratch:
        programs = write_programs(Path(scratch), args.programs)
        if args.ceiling:
            wasmformer.compile(programs / "p000.c")
            print(json.dumps(measure_ceiling(programs / "p000.c", args.ceiling)))
            return 0
        for source in sorted(programs.glob("*.c")):  # compiled and cached before timing (see above)
            wasmformer.compile(source)
        configurations = [(int(count), None) for count in args.workers.split(",")]
        if args.ray:
            configurations.append((max(count for count, _ in configurations), "local"))
        for workers, ray in configurations:
            results = Path(scratch) / f"results-{workers}-{ray}.jsonl"
            rows.append(measure(programs, results, workers, ray))
            print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]["programs_per_second"]
    for row in rows:
        row["speedup"] = round(row["programs_per_second"] / base, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine_description(), "command": " ".join(["benchmarks/batch_throughput.py", *sys.argv[1:]]),
              "rows": rows}
    (args.out / "batch.json").write_text(json.dumps(record, indent=1) + "\n")
    table = ["| configuration | programs | seconds | programs/s | tok/s | speedup |", "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {row['configuration']} | {row['programs']} | {row['seconds']:.1f} | {row['programs_per_second']:.2f} "
              f"| {row['tokens_per_second']:,} | {row['speedup']:.2f}x |" for row in rows]
    (args.out / "batch.md").write_text(f"Machine: {record['machine']['summary']}\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
