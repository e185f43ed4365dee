"""The CLI fuzzer: generate cases, run each through `wasmformer` in a subprocess, check, report.

    .venv/bin/python -m fuzz --seed 1 --cases 600           # what `make fuzz` runs
    .venv/bin/python -m fuzz --seconds 120 --only options   # two minutes of hostile options only

A session builds its seeds once (fuzz/corpus.py, under OUT/work), then runs
cases 0, 1, 2, ... of the seed (fuzz/generators.py) with --jobs subprocesses at
a time, each in a fresh directory with a timeout. A failing case is saved to
OUT/failures/NNNNN-CATEGORY/ with its files, its output and `reproduce.sh` (OUT/cases.jsonl lists
every case and how it ended); at
most MAX_SAVED_PER_CLASS cases of one failure class are saved. The session ends
with a table by category and the list of failure classes; its exit status is 1
when any case failed. docs/fuzzing.md describes the whole.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .cases import Case, Failure, Outcome, check, describe_difference
from .corpus import REPO, Corpus, SetupError, build_corpus
from .generators import CATEGORIES, NEEDS_TOOL, make_case

DEFAULT_SEED = 1
DEFAULT_CASES = 600  # about 3 minutes on 2 cores
DEFAULT_JOBS = 2
DEFAULT_TIMEOUT = 60.0  # seconds per command: far above any bounded case, so only a hang reaches it
DEFAULT_OUT = REPO / "out" / "fuzz"
MAX_SAVED_PER_CLASS = 3
IN_FLIGHT_PER_JOB = 2  # cases generated ahead of the workers
TIMEOUT_SIGNAL = signal.SIGKILL
SUBPROCESS_ONLY = ("interrupt",)  # categories --in-process cannot run


@dataclass(frozen=True)
class Settings:
    seed: int = DEFAULT_SEED
    cases: int | None = DEFAULT_CASES
    seconds: float | None = None
    jobs: int = DEFAULT_JOBS
    timeout: float = DEFAULT_TIMEOUT
    out: Path = DEFAULT_OUT
    only: tuple[str, ...] = ()  # categories to generate (empty: all)
    in_process: bool = False
    progress: bool = True


@dataclass(frozen=True)
class CaseResult:
    case: Case | None  # None when the generator itself failed
    index: int
    category: str
    outcome: Outcome | None
    failures: tuple[Failure, ...]


@dataclass
class Summary:
    """Totals of a session; ``classes`` maps 'category | failure signature' to the saved reproducers."""

    cases: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    classes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    class_counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total_failed(self) -> int:
        return sum(self.failed.values())

    def as_json(self) -> dict:
        return {"cases": dict(self.cases), "failed": dict(self.failed), "seconds": round(self.seconds, 1),
                "classes": {name: {"count": self.class_counts[name], "saved": saved}
                            for name, saved in self.classes.items()}}


# -- running one case ----------------------------------------------------------------------------------


def wasmformer_command() -> tuple[str, ...]:
    """The installed console script next to this interpreter, else `python -m wasmformer`."""
    script = Path(sys.executable).parent / "wasmformer"
    return (str(script),) if script.exists() else (sys.executable, "-m", "wasmformer")


def materialise(case: Case, directory: Path) -> None:
    """Write the case's empty directories, copies and files (a file may replace a copy) under ``directory``."""
    directory.mkdir(parents=True)
    for name in case.dirs:
        (directory / name).mkdir(parents=True, exist_ok=True)
    for name, source in case.copies.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, directory / name)
    for name, data in case.files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


def case_environment(case: Case, directory: Path) -> dict[str, str]:
    """This process's environment plus the case's variables (their values are paths in the case directory)."""
    return {**os.environ, **{name: str(directory / value) for name, value in case.env.items()}}


def run_subprocess(command: tuple[str, ...], case: Case, directory: Path, timeout: float) -> Outcome:
    """Run the command in its own process group, killed as a group when the timeout passes.

    A case with ``interrupt`` gets SIGINT (Ctrl-C) once the program's first output byte arrives, so the
    signal lands inside the run rather than during start-up.
    """
    started = time.perf_counter()
    with subprocess.Popen([*command, *case.argv], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_interactive_signals,
                          env=case_environment(case, directory)) as process:
        first = _interrupt_after_first_byte(process, timeout) if case.interrupt else b""
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, TIMEOUT_SIGNAL)
            stdout, stderr = process.communicate()
            return Outcome(None, first + stdout, stderr.decode(errors="replace"), time.perf_counter() - started)
    return Outcome(process.returncode, first + stdout, stderr.decode(errors="replace"), time.perf_counter() - started)


def _interactive_signals() -> None:
    """In the child, before exec: SIGINT as an interactive shell gives it (default action, not blocked).
    Ignored or blocked signals survive exec, and a test runner may have changed them in the process that
    spawns the cases; an interrupt case must test the CLI, not that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _interrupt_after_first_byte(process: subprocess.Popen, timeout: float) -> bytes:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    first = os.read(process.stdout.fileno(), 1) if ready else b""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    return first


def run_in_process(case: Case, directory: Path) -> Outcome:
    """wasmformer.cli.main in this process (no timeout, no interrupt; one case at a time: it changes
    directory and environment)."""
    from wasmformer.cli import main

    stdout, stderr = io.BytesIO(), io.StringIO()
    stdout_text = io.TextIOWrapper(stdout, encoding="utf-8", write_through=True)
    started, previous, environment = time.perf_counter(), os.getcwd(), dict(os.environ)
    os.chdir(directory)
    os.environ.update({name: str(directory / value) for name, value in case.env.items()})
    try:
        with contextlib.redirect_stdout(stdout_text), contextlib.redirect_stderr(stderr):
            try:
                status = main([os.fsdecode(arg) for arg in case.argv])
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException:  # noqa: BLE001 - an escaping exception is what the check looks for
                traceback.print_exc(file=stderr)
                status = 1
    finally:
        os.chdir(previous)
        os.environ.clear()
        os.environ.update(environment)
    stdout_text.flush()
    return Outcome(status, stdout.getvalue(), stderr.getvalue(), time.perf_counter() - started)


def run_case(settings: Settings, corpus: Corpus, index: int, cases_dir: Path) -> CaseResult:
    try:
        case = make_case(settings.seed, index, corpus, settings.only)
    except Exception as error:  # noqa: BLE001 - a generator bug is reported like any failure
        detail = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        return CaseResult(None, index, "generator", None, (Failure("generator", detail),))
    directory = cases_dir / f"{index:05d}"
    shutil.rmtree(directory, ignore_errors=True)
    materialise(case, directory)
    if settings.in_process:
        outcome = run_in_process(case, directory)
    else:
        outcome = run_subprocess(corpus.wasmformer, case, directory, settings.timeout)
    return CaseResult(case, index, case.category, outcome, tuple(check(case, outcome)))


# -- saving failures -------------------------------------------------------------------------------


def shell_word(arg: str | bytes) -> str:
    """One argument quoted for bash; bytes that are not UTF-8 as $'\\xNN'."""
    if isinstance(arg, bytes):
        return "$'" + "".join(f"\\x{byte:02x}" for byte in arg) + "'"
    return shlex.quote(arg)


def reproducer(command: tuple[str, ...], case: Case) -> str:
    """The command line (with the case's environment variables) to run in the case's directory."""
    environment = [f"{name}={shlex.quote(value)}" for name, value in case.env.items()]
    note = ["# then press Ctrl-C once it has printed"] if case.interrupt else []
    return " ".join([*environment, *map(shlex.quote, command), *map(shell_word, case.argv), *note])


def save_failure(result: CaseResult, corpus: Corpus, cases_dir: Path, failures_dir: Path) -> Path:
    """Move the case's directory to failures_dir with its output, what failed and reproduce.sh."""
    case, outcome = result.case, result.outcome
    target = failures_dir / f"{result.index:05d}-{result.category}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(cases_dir / f"{result.index:05d}", target)
    (target / "reproduce.sh").write_text(f"#!/bin/bash\ncd \"$(dirname \"$0\")\"\n{reproducer(corpus.wasmformer, case)}\n")
    (target / "reproduce.sh").chmod(0o755)
    (target / "stdout.bin").write_bytes(outcome.stdout)
    (target / "stderr.txt").write_text(outcome.stderr)
    lines = [f"case {result.index} ({result.category}): {case.description}",
             *(f"FAILED {failure.signature}" for failure in result.failures),
             describe_difference(case.expected, outcome)]
    (target / "failure.txt").write_text("\n".join(lines) + "\n")
    return target


# -- the session -----------------------------------------------------------------------------------


def run_session(settings: Settings, log=print) -> Summary:
    """Set up, run the cases, save failures; returns the totals (also written to OUT/summary.json)."""
    work, failures_dir = settings.out / "work", settings.out / "failures"
    cases_dir = work / "cases"
    for directory in (cases_dir, failures_dir):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    _check_tools(settings.only or CATEGORIES)
    log(f"fuzz: setting up seeds in {work}")
    corpus = build_corpus(work, settings.seed, wasmformer_command())
    summary = Summary()
    started = time.perf_counter()
    with _progress(settings) as progress, (settings.out / "cases.jsonl").open("w") as case_log:
        for result in _results(settings, corpus, cases_dir, started):
            case_log.write(json.dumps(_log_entry(result)) + "\n")
            _record(result, summary, corpus, cases_dir, failures_dir)
            progress(result, summary)
    summary.seconds = time.perf_counter() - started
    (settings.out / "summary.json").write_text(json.dumps(summary.as_json(), indent=1) + "\n")
    return summary


def _check_tools(categories: tuple[str, ...]) -> None:
    """Stop before any work when a chosen category needs a tool this machine lacks (Csmith)."""
    for category in categories:
        reason = NEEDS_TOOL[category]() if category in NEEDS_TOOL else None
        if reason is not None:
            raise SetupError(f"the {category} cases need it: {reason}; or leave them out with --skip {category}")


def _results(settings: Settings, corpus: Corpus, cases_dir: Path, started: float):
    """CaseResults in completion order, --jobs at a time, until --cases or --seconds is reached."""
    jobs = 1 if settings.in_process else settings.jobs

    def more(index: int) -> bool:
        within_count = settings.cases is None or index < settings.cases
        within_time = settings.seconds is None or time.perf_counter() - started < settings.seconds
        return within_count and within_time

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        pending, index = set(), 0
        while pending or more(index):
            while more(index) and len(pending) < jobs * IN_FLIGHT_PER_JOB:
                pending.add(pool.submit(run_case, settings, corpus, index, cases_dir))
                index += 1
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            yield from (future.result() for future in done)


def _log_entry(result: CaseResult) -> dict:
    """One line of OUT/cases.jsonl: what ran and how it ended, for every case."""
    case, outcome = result.case, result.outcome
    return {"index": result.index, "category": result.category,
            "description": case.description if case else None,
            "argv": [arg if isinstance(arg, str) else repr(arg) for arg in case.argv] if case else None,
            "status": outcome.status if outcome else None,
            "seconds": round(outcome.seconds, 2) if outcome else None,
            "stderr_tail": outcome.stderr.strip().splitlines()[-1][:200] if outcome and outcome.stderr.strip() else "",
            "failures": [failure.signature for failure in result.failures]}


def _record(result: CaseResult, summary: Summary, corpus: Corpus, cases_dir: Path, failures_dir: Path) -> None:
    summary.cases[result.category] += 1
    if not result.failures:
        shutil.rmtree(cases_dir / f"{result.index:05d}", ignore_errors=True)
        return
    summary.failed[result.category] += 1
    names = [f"{result.category} | {failure.signature}" for failure in result.failures]
    for name in names:
        summary.class_counts[name] += 1
    if result.case is None:
        return
    worth_saving = [name for name in names if len(summary.classes[name]) < MAX_SAVED_PER_CLASS]
    if worth_saving:
        saved = save_failure(result, corpus, cases_dir, failures_dir)
        for name in worth_saving:
            summary.classes[name].append(str(saved / "reproduce.sh"))
    else:
        shutil.rmtree(cases_dir / f"{result.index:05d}", ignore_errors=True)


@contextlib.contextmanager
def _progress(settings: Settings):
    """A rich progress bar with the failure count; yields update(result, summary)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not settings.progress:
        yield lambda result, summary: None
        return
    total = settings.cases if settings.seconds is None else None
    columns = (TextColumn("fuzz"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
               TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("cases", total=total, failed=0)
        yield lambda result, summary: progress.update(task, advance=1, failed=summary.total_failed)


def print_summary(summary: Summary, settings: Settings) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"CLI fuzz, seed {settings.seed}: {sum(summary.cases.values())} cases "
                        f"in {summary.seconds:.0f} s")
    for column in ("category", "cases", "passed", "failed"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for category in sorted(summary.cases, key=lambda name: CATEGORIES.index(name) if name in CATEGORIES else 99):
        failed = summary.failed[category]
        table.add_row(category, str(summary.cases[category]), str(summary.cases[category] - failed),
                      f"[red]{failed}[/red]" if failed else "0")
    console.print(table)
    for name, count in summary.class_counts.most_common():
        console.print(f"[red]FAIL[/red] {count:4d} x {name}", markup=True, highlight=False)
        for path in summary.classes.get(name, [])[:1]:
            console.print(f"       reproduce: {path}", highlight=False)


# -- command line ------------------------------------------------------------------------------------


def parse_settings(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--cases", type=int, default=None, help=f"cases to run (default {DEFAULT_CASES}, "
                        "or unlimited with --seconds)")
    parser.add_argument("--seconds", type=float, default=None, help="stop starting cases after this long")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="cases run at once")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per command (a hang)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work and failures directory")
    parser.add_argument("--only", default="", metavar="CATEGORY,...",
                        help=f"generate only these categories: {', '.join(CATEGORIES)}")
    parser.add_argument("--skip", default="", metavar="CATEGORY,...", help="leave out these categories")
    parser.add_argument("--in-process", action="store_true",
                        help="call wasmformer.cli.main in this process (faster; no timeout, one job)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    only, skip = _category_list(args.only), _category_list(args.skip)
    unknown = set(only + skip) - set(CATEGORIES)
    if unknown:
        parser.error(f"unknown categories {sorted(unknown)}; choose from {', '.join(CATEGORIES)}")
    if skip:
        only = tuple(name for name in only or CATEGORIES if name not in skip)
        if not only:
            parser.error("--skip leaves no category to run")
    if args.in_process:  # no signals in process: leave out the interrupt cases
        only = tuple(name for name in only or CATEGORIES if name not in SUBPROCESS_ONLY)
    cases = args.cases if args.cases is not None or args.seconds is not None else DEFAULT_CASES
    return Settings(seed=args.seed, cases=cases, seconds=args.seconds, jobs=max(1, args.jobs), timeout=args.timeout,
                    out=args.out.resolve(), only=only, in_process=args.in_process, progress=not args.no_progress)


def _category_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    try:
        summary = run_session(settings)
    except SetupError as error:
        print(f"fuzz: {error}", file=sys.stderr)
        return 1
    print_summary(summary, settings)
    print(f"summary: {settings.out / 'summary.json'}; failures: {settings.out / 'failures'}")
    return 1 if summary.total_failed else 0

