"""Start-up time of `wasmformer run`: cold (empty cache), warm (cache filled), and a bare numpy import.

    .venv/bin/python benchmarks/warm_start.py                 # prints the table
    .venv/bin/python benchmarks/warm_start.py --out benchmarks/results   # also warm_start.json / .md

Each figure is the median wall time of --repeat fresh processes (default 5),
measured from outside (subprocess start to exit), so interpreter start-up and
imports count; the CPU time (user + system, the process and its children) is
given beside it, since it moves less than wall time when other work shares
the machine. Cold runs each get a new empty $WASMFORMER_CACHE: the universal
model is compiled and the C program compiled by clang. Warm runs share one
cache filled by an unmeasured first run: the model is loaded by its sources'
hash and the module comes from the compiled-C cache. `python -c "import numpy"`
is the floor: every run imports numpy. docs/benchmarks.md ("Warm start")
records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from wasmformer.disk_cache import CACHE_ENV

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCHMARKS_DIR.parent
DEFAULT_PROGRAM = REPO_DIR / "examples" / "hello.c"
DEFAULT_REPEAT = 5
RUN_TIMEOUT_SECONDS = 600


def wasmformer_command() -> list[str]:
    """The installed `wasmformer` script beside this interpreter (what a user types), else `python -m wasmformer`."""
    script = Path(sys.executable).parent / "wasmformer"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "wasmformer"]


def timed_run(command: list[str], cache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``command`` with ``cache`` as $WASMFORMER_CACHE; a failed run is an error."""
    cpu_before = _children_cpu_seconds()
    start = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, CACHE_ENV: str(cache)}, cwd=REPO_DIR,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return wall, _children_cpu_seconds() - cpu_before


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(program: Path, repeat: int) -> dict:
    run = wasmformer_command() + ["run", str(program)]
    numpy_import = [sys.executable, "-c", "import numpy"]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wasmformer-warm-start-") as scratch_name:
        scratch = Path(scratch_name)
        cold = [timed_run(run, scratch / f"cold-{index}") for index in range(repeat)]
        timed_run(run, scratch / "warm")  # fills the cache
        warm = [timed_run(run, scratch / "warm") for _ in range(repeat)]
        bare = [timed_run(numpy_import, scratch / "unused") for _ in range(repeat)]
    figures = {"cold": cold, "warm": warm, "numpy": bare}
    return {
        "date": date.today().isoformat(),
        "machine": f"{_cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"{platform.system()} {platform.release()}",
        "repeat": repeat,
        # the 1-minute load average before and after: how much else was running meanwhile
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "commands": {"run": shlex.join(_shown(run)), "numpy": shlex.join(_shown(numpy_import))},
        "wall_seconds": {name: [wall for wall, _ in runs] for name, runs in figures.items()},
        "cpu_seconds": {name: [cpu for _, cpu in runs] for name, runs in figures.items()},
        "median_wall": {name: statistics.median(wall for wall, _ in runs) for name, runs in figures.items()},
        "median_cpu": {name: statistics.median(cpu for _, cpu in runs) for name, runs in figures.items()},
    }


def _cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def _shown(command: list[str]) -> list[str]:
    """The command with paths relative to the repository where they lie inside it."""
    shown = []
    for word in command:
        path = Path(word)
        shown.append(os.path.relpath(path, REPO_DIR) if path.is_absolute() and REPO_DIR in path.parents else word)
    return shown


def table(record: dict) -> str:
    rows = [
        ("cold: `wasmformer run` with an empty cache", "cold"),
        ("warm: `wasmformer run`, cache filled", "warm"),
        ('`python -c "import numpy"`', "numpy"),
    ]
    lines = [f"| what | wall, median of {record['repeat']} (s) | min–max (s) | CPU, median (s) |",
             "|---|---:|---:|---:|"]
    for label, key in rows:
        walls = record["wall_seconds"][key]
        lines.append(f"| {label} | {record['median_wall'][key]:.3f} | {min(walls):.3f}–{max(walls):.3f} "
                     f"| {record['median_cpu'][key]:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", type=Path, default=DEFAULT_PROGRAM, help="the program to run (default hello.c)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per figure (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="directory for warm_start.json and warm_start.md")
    args = parser.parse_args(argv)
    record = measure(args.program.resolve(), args.repeat)
    before, after = record["load_average"]
    text = (f"{record['date']}, {record['machine']}, load average {before} before, {after} after\n"
            f"`{record['commands']['run']}`\n\n" + table(record))
    print(text, end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "warm_start.json").write_text(json.dumps(record, indent=1) + "\n")
        (args.out / "warm_start.md").write_text(text)
        print(f"wrote {args.out / 'warm_start.json'} and {args.out / 'warm_start.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
