"""Running prompts through a model: the fastest decoding loop, streamed output, live progress.

``run_prompt`` assembles every run: ``wasmformer run``, ``demo``, ``bench``,
the benchmarks and the tests' runs of programs (``machine/execute.py``). It
picks an engine (``engines.make_engine``; the fastest one that can run the
model unless one is named), decodes with the native engine's C++ loop
(``native.generate_fast``) when that engine runs and with ``base.generate``
otherwise, streams the program's output bytes and reports progress as tokens
arrive, and returns the one result type, ``base.RunResult``. Two numbers
bound a run: the model's ``max_exact_tokens`` (the precision horizon: both
loops refuse a position beyond it with ``PrecisionHorizonError``; nothing
here re-implements that check) and ``max_new_tokens`` (how many tokens this
run may generate).

The rest serves the commands built on it: the live progress line, the
universal model (``machine/universal.py``), the bundled examples as
workloads, and the per-example benchmark behind ``wasmformer bench``.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

from wasmformer.engines import ENGINE_NAMES, hull_available, make_engine, native_available
from wasmformer.errors import WasmformerError
from wasmformer.engines.base import EngineError, OutputCallback, RunResult, encode, generate
from wasmformer.machine import purpose
from wasmformer.model import BUILT_FOR_KEY, Model

# Generated tokens per visit of the native C++ loop to Python (streaming and
# progress granularity). Each visit costs tens of microseconds; 1024 tokens
# take at least a millisecond even on the smallest models, so streaming costs a
# few percent at most and output appears well within a tenth of a second.
STREAM_BATCH = 1024

PROGRESS_INTERVAL = 0.1  # seconds between two redraws of the progress line (at most ~10 per second)

# max_new_tokens of the slow engines in `wasmformer bench`: dense is O(t) per
# token (softmax over the whole cache), hull is the O(log t) algorithm in Python.
BENCH_MAX_NEW_TOKENS = {"native": None, "hull": 30_000, "dense": 3_000}

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"  # the source tree's examples/

ProgressCallback = Callable[[int, float], None]  # (generated tokens, elapsed seconds)


class ExamplesUnavailableError(WasmformerError, RuntimeError):
    """The bundled examples are missing or a requested one does not exist."""


# ---------------------------------------------------------------------------
# one run


def choose_engine(model: Model, engine_name: str | None = None):
    """(engine, note): the named engine, else the fastest that can run ``model`` and why not a faster one."""
    if engine_name is not None:
        return make_engine(model, engine_name), None
    if native_available():
        try:
            return make_engine(model, "native"), None
        except EngineError as error:  # e.g. a model the C++ engine refuses
            reason = str(error)
    else:
        from wasmformer.engines import native

        reason = native.unavailable_reason()
    engine = make_engine(model, "hull" if hull_available() else "dense")
    return engine, f"{reason}; running on the {engine.name} engine"


def default_max_new_tokens(model: Model, prompt_tokens: int) -> int:
    """As many generated tokens as the precision horizon leaves after the prompt (at least one)."""
    return max(1, model.max_exact_tokens - prompt_tokens)


def run_prompt(
    model: Model,
    prompt_ids: list[int],
    *,
    engine_name: str | None = None,
    engine=None,
    max_new_tokens: int | None = None,
    on_output: OutputCallback | None = None,
    progress: ProgressCallback | None = None,
    batch: int = STREAM_BATCH,
    on_error: OutputCallback | None = None,
) -> RunResult:
    """Decode ``prompt_ids`` until the halt token or ``max_new_tokens`` generated tokens.

    ``max_new_tokens`` defaults to what the precision horizon allows
    (``default_max_new_tokens``). ``engine`` is a fresh engine from
    ``choose_engine`` (engines keep their position, so each serves one run);
    without it one is chosen from ``engine_name``. ``on_output(chunk)``
    receives the program's output bytes in order as they are produced (``on_error(chunk)`` its error
    stream's);
    ``progress(generated, elapsed)`` is called as tokens arrive (every
    ``batch`` tokens on the native engine, every token on the others). Raises
    ``PrecisionHorizonError`` instead of generating a token past
    ``model.max_exact_tokens``; the output streamed until then stands.
    """
    note = None
    if engine is None:
        engine, note = choose_engine(model, engine_name)
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(model, len(prompt_ids))
    on_tokens = _ProgressCounter(progress) if progress is not None else None
    if engine.name == "native":
        from wasmformer.engines.native import generate_fast

        result = generate_fast(engine, prompt_ids, max_new_tokens, on_output, on_tokens, batch=batch,
                               on_error=on_error)
    else:
        result = generate(engine, prompt_ids, max_new_tokens, on_output, on_tokens, on_error)
    result.engine_note = note
    return result


class _ProgressCounter:
    """Counts the generated tokens as they arrive and reports (generated, elapsed seconds) to a progress callback."""

    def __init__(self, progress: ProgressCallback):
        self.progress = progress
        self.generated = 0
        self.started = time.perf_counter()

    def __call__(self, token_ids: list[int]) -> None:
        self.generated += len(token_ids)
        self.progress(self.generated, time.perf_counter() - self.started)


def prompt_ids_or_error(model: Model, prompt_tokens: list[str], origin: str) -> list[int]:
    """The ids of the prompt's tokens; an unknown token is an EngineError naming it, its index and ``origin``."""
    if not prompt_tokens:
        raise EngineError(f"{origin}: the prompt is empty")
    try:
        return encode(model, prompt_tokens)
    except EngineError as error:
        raise EngineError(f"{origin}: {error}") from None


# A prompt file's first line may say which model the prompt is for:
# "# wasmformer-prompt KIND [key=value ...]", the model's built_for (machine/purpose.py).
PROMPT_HEADER = "# wasmformer-prompt"
COMMENT = "#"  # a line whose first word is this is a comment, not tokens


@dataclass(frozen=True)
class PromptFile:
    """A prompt file's tokens and what its header says it is for (None without a header)."""

    tokens: list[str]
    made_for: dict | None


def prompt_header(made_for: dict) -> str:
    """The header line for a prompt made for a model with this built_for: kind, then key=value words."""
    fields = [f"{key}={value}" for key, value in made_for.items()
              if key != "kind" and value and not any(c.isspace() or c == "=" for c in value)]
    return " ".join([PROMPT_HEADER, made_for["kind"], *fields])


def write_prompt_file(path: Path, tokens: list[str], made_for: dict | None) -> None:
    """The tokens separated by spaces, after the header line when ``made_for`` is known."""
    header = prompt_header(made_for) + "\n" if made_for is not None else ""
    path.write_text(header + " ".join(tokens) + "\n", encoding="utf-8")


def read_prompt_file(path: Path) -> PromptFile:
    """A prompt file: UTF-8 text, tokens separated by whitespace; lines whose first word is '#' are comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise EngineError(f"{path}: not a prompt file (not UTF-8 text)") from None
    made_for = _parse_header(lines[0]) if lines else None
    tokens = [token for line in lines if not _is_comment(line) for token in line.split()]
    return PromptFile(tokens, made_for)


def _is_comment(line: str) -> bool:
    words = line.split(maxsplit=1)
    return bool(words) and words[0] == COMMENT


def _parse_header(line: str) -> dict | None:
    if not line.startswith(PROMPT_HEADER + " "):
        return None
    words = line[len(PROMPT_HEADER):].split()
    if not words:
        return None
    made_for = {"kind": words[0]}
    for field in words[1:]:
        key, _, value = field.partition("=")
        made_for[key] = value
    return made_for


def write_trace_file(path: Path, trace: list[str]) -> None:
    """The generated token strings separated by spaces (the trace only, not the prompt)."""
    lines_of = 1 << 16  # tokens joined at a time, so a long trace is never one giant string
    with path.open("w", encoding="utf-8") as file:
        for start in range(0, len(trace), lines_of):
            separator = " " if start else ""
            file.write(separator + " ".join(trace[start:start + lines_of]))
        file.write("\n")


# ---------------------------------------------------------------------------
# the live progress line


class ProgressLine:
    """'N tokens, R tok/s, T s' on one terminal line, redrawn at most every PROGRESS_INTERVAL seconds.

    Call it with (generated, elapsed) as tokens arrive; ``hide()`` before
    anything else is written to the terminal, ``close()`` at the end. While
    ``paused`` (the program's output left the cursor mid-line on the same
    terminal) it draws nothing, so it never overwrites program output.
    """

    def __init__(self, stream: TextIO, label: str = ""):
        self.stream = stream
        self.label = label
        self.paused = False
        self.shown = False
        self.last_draw = float("-inf")

    def __call__(self, generated: int, elapsed: float) -> None:
        now = time.monotonic()
        if self.paused or now - self.last_draw < PROGRESS_INTERVAL:
            return
        self.last_draw = now
        rate = generated / elapsed if elapsed > 0 else 0.0
        self.stream.write(f"\r\x1b[K{self.label}{generated:,} tokens  {rate:,.0f} tok/s  {elapsed:.1f} s")
        self.stream.flush()
        self.shown = True

    def hide(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        self.hide()


def progress_line(stream: TextIO, *, quiet: bool = False, label: str = "") -> ProgressLine | None:
    """A progress line on ``stream`` when it is a terminal and the user did not ask for quiet."""
    if quiet or not _is_terminal(stream):
        return None
    return ProgressLine(stream, label)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


# ---------------------------------------------------------------------------
# the universal model


def load_universal_model(log: Callable[[str], None] | None = None) -> Model:
    """The universal model (built once and cached on disk by machine/universal.py)."""
    from wasmformer.machine.universal import universal_model

    with stdout_to_stderr():
        model = universal_model(log=log)
    # the compiler does not know what a graph is for: this one is the universal machine
    model.extra.setdefault(BUILT_FOR_KEY, purpose.universal())
    return model


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what C libraries print to file descriptor 1 to stderr meanwhile.

    Building a model runs the MILP solver, which prints a banner on the
    process's stdout; stdout carries only the program's output.
    """
    try:
        stdout_fd, stderr_fd = sys.__stdout__.fileno(), sys.__stderr__.fileno()
    except (AttributeError, ValueError, OSError):  # no real descriptors (embedded interpreters)
        yield
        return
    sys.stdout.flush()
    saved = os.dup(stdout_fd)
    try:
        os.dup2(stderr_fd, stdout_fd)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, stdout_fd)
        os.close(saved)


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # not a POSIX C library: nothing buffered we know of
        pass


# ---------------------------------------------------------------------------
# workloads: the bundled examples, or prompt files


@dataclass(frozen=True)
class Workload:
    """A prompt to run and what its output should be (None when unknown)."""

    name: str
    prompt: list[str]
    expected: bytes | None = None
    source: str = ""  # what the prompt was made from, for messages
    made_for: dict | None = None  # a prompt file's header: the model it was made for (machine/purpose.py)


@dataclass(frozen=True)
class Example:
    """A bundled example run: NAME.c (or a shared source), NAME.input, NAME.expected."""

    name: str
    source: Path
    input_file: Path | None
    expected_file: Path | None

    def workload(self, clang: str | None = None) -> Workload:
        from wasmformer.frontend import load_program
        from wasmformer.machine.prompt import encode_prompt

        input_bytes = self.input_file.read_bytes() if self.input_file else b""
        prompt = encode_prompt(load_program(self.source, clang=clang), input_bytes)
        expected = self.expected_file.read_bytes() if self.expected_file else None
        label = self.source.name + (f" < {self.input_file.name}" if self.input_file else "")
        return Workload(self.name, prompt, expected, label)


def bundled_examples(names: list[str] | None = None, directory: Path = EXAMPLES_DIR) -> list[Example]:
    """The example runs in ``directory``, by name; all of them unless ``names`` picks some.

    Every NAME.c is a run (with NAME.input when present), and so is every
    NAME.input without a NAME.c whose name extends a C file's (sudoku_hard.input
    runs sudoku.c): one program, another input.
    """
    if not directory.is_dir():
        raise ExamplesUnavailableError(f"the bundled examples are not here ({directory} is missing; "
                                       "they live in the source tree's examples/)")
    sources = {path.stem: path for path in directory.glob("*.c")}
    runs = {name: path for name, path in sources.items()}
    for input_file in directory.glob("*.input"):
        if input_file.stem not in runs:
            shared = _shared_source(input_file.stem, sources)
            if shared is not None:
                runs[input_file.stem] = shared
    if names:
        unknown = [name for name in names if name not in runs]
        if unknown:
            raise ExamplesUnavailableError(f"no example named {', '.join(unknown)}; "
                                           f"the examples are {', '.join(sorted(runs))}")
    chosen = names or sorted(runs)
    return [_example(name, runs[name], directory) for name in chosen]


def _shared_source(run_name: str, sources: dict[str, Path]) -> Path | None:
    candidates = [stem for stem in sources if run_name.startswith(stem + "_")]
    return sources[max(candidates, key=len)] if candidates else None


def _example(name: str, source: Path, directory: Path) -> Example:
    input_file, expected_file = directory / f"{name}.input", directory / f"{name}.expected"
    return Example(name, source, input_file if input_file.is_file() else None,
                   expected_file if expected_file.is_file() else None)


def prompt_file_workload(path: Path) -> Workload:
    """A prompt file as a workload; PATH.expected (beside it, same stem) holds the expected output if present."""
    expected_file = path.with_suffix(".expected")
    expected = expected_file.read_bytes() if expected_file.is_file() else None
    prompt_file = read_prompt_file(path)
    return Workload(path.stem, prompt_file.tokens, expected, str(path), prompt_file.made_for)


def output_verdict(result: RunResult, expected: bytes | None) -> str:
    """How the output compares with the expected bytes: 'ok', 'prefix ok' (a partial run), 'WRONG' or '-'."""
    if expected is None:
        return "-"
    if result.halted and result.trap is None:
        return "ok" if result.output == expected else "WRONG"
    return "prefix ok" if expected.startswith(result.output) else "WRONG"


# ---------------------------------------------------------------------------
# wasmformer bench: every workload on every engine


@dataclass
class BenchRow:
    workload: str
    engine: str
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    tokens_per_second: float
    max_new_tokens: int | None  # the engine stopped at this many generated tokens (None: it was not capped)
    halted: bool
    verdict: str  # output_verdict
    note: str = ""


def parse_engine_list(text: str | None) -> list[str]:
    """'native,hull' -> ['native', 'hull']; None -> every engine that is available here."""
    if text is None:
        return [name for name in ENGINE_NAMES if name != "native" or native_available()]
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINE_NAMES]
    if unknown or not names:
        raise EngineError(f"unknown engine {', '.join(unknown) or repr(text)}; choose from {', '.join(ENGINE_NAMES)}")
    return names


def bench_workloads(
    model: Model,
    workloads: list[Workload],
    engine_names: list[str],
    max_new_tokens: dict[str, int | None] | None = None,
    progress_for: Callable[[str], ProgressCallback | None] | None = None,
) -> list[BenchRow]:
    """Run every workload on every engine; an engine stops at its max_new_tokens (BENCH_MAX_NEW_TOKENS)."""
    caps = {**BENCH_MAX_NEW_TOKENS, **(max_new_tokens or {})}
    rows = []
    for workload in workloads:
        prompt_ids = prompt_ids_or_error(model, workload.prompt, workload.name)
        for engine_name in engine_names:
            progress = progress_for(f"{workload.name} on {engine_name}: ") if progress_for else None
            rows.append(_bench_one(model, workload, prompt_ids, engine_name, caps.get(engine_name), progress))
    return rows


def _bench_one(model, workload, prompt_ids, engine_name, engine_max_new_tokens, progress) -> BenchRow:
    horizon_max_new_tokens = default_max_new_tokens(model, len(prompt_ids))
    max_new_tokens = (horizon_max_new_tokens if engine_max_new_tokens is None
                      else min(engine_max_new_tokens, horizon_max_new_tokens))
    try:
        result = run_prompt(model, prompt_ids, engine_name=engine_name, max_new_tokens=max_new_tokens,
                            progress=progress)
    finally:
        if isinstance(progress, ProgressLine):
            progress.close()
    capped = (engine_max_new_tokens is not None and not result.halted
              and result.generated_tokens >= engine_max_new_tokens)
    note = f"trap: {result.trap}" if result.trap else ""
    if not result.halted and not capped:
        note = note or "stopped at the precision horizon"
    return BenchRow(workload.name, result.engine, result.prompt_tokens, result.generated_tokens,
                    result.seconds, result.tokens_per_second, engine_max_new_tokens if capped else None,
                    result.halted, output_verdict(result, workload.expected), note)


def bench_table(rows: list[BenchRow], title: str = "wasmformer bench"):
    """The rows as a rich table; capped runs say how many tokens they covered."""
    from rich.table import Table

    table = Table(title=title)
    for column, justify in (("example", "left"), ("engine", "left"), ("prompt", "right"), ("generated", "right"),
                            ("seconds", "right"), ("tok/s", "right"), ("run", "left"), ("output", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "run")
    for row in rows:
        table.add_row(row.workload, row.engine, f"{row.prompt_tokens:,}", f"{row.generated_tokens:,}",
                      f"{row.seconds:.2f}", f"{row.tokens_per_second:,.0f}", _run_description(row), row.verdict)
    caps = sorted({(row.engine, row.max_new_tokens) for row in rows if row.max_new_tokens is not None})
    if caps:
        table.caption = "capped: " + ", ".join(f"{engine} ran the first {count:,} generated tokens only"
                                               for engine, count in caps)
    return table


def _run_description(row: BenchRow) -> str:
    if row.max_new_tokens is not None:
        return f"first {row.max_new_tokens:,} tokens (cap)"
    return (row.note or "halted") if row.halted else (row.note or "stopped")


def bench_markdown(rows: list[BenchRow]) -> str:
    """The rows as a Markdown table (docs/benchmarks.md, ``bench --out``)."""
    lines = ["| example | engine | prompt | generated | seconds | tok/s | run | output |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for row in rows:
        lines.append(f"| {row.workload} | {row.engine} | {row.prompt_tokens:,} | {row.generated_tokens:,} | "
                     f"{row.seconds:.2f} | {row.tokens_per_second:,.0f} | {_run_description(row)} | {row.verdict} |")
    return "\n".join(lines) + "\n"


def write_bench_results(directory: Path, rows: list[BenchRow], model: Model) -> list[Path]:
    """results.json (rows, machine, model sizes) and results.md in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine_description(), "model": model_description(model),
              "rows": [asdict(row) for row in rows]}
    json_path, markdown_path = directory / "results.json", directory / "results.md"
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    markdown_path.write_text(f"Machine: {record['machine']['summary']}\n\n{bench_markdown(rows)}")
    return [json_path, markdown_path]


def model_description(model: Model) -> dict:
    return {"d_model": model.d_model, "n_layers": len(model.layers), "n_heads": model.n_heads,
            "d_ffn": model.d_ffn, "vocab": len(model.vocab), "nonzero_weights": model.nonzero_weights(),
            "max_exact_tokens": model.max_exact_tokens}


def machine_description() -> dict:
    """CPU model and core count (from /proc/cpuinfo where there is one), Python and the native engine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    summary = (f"{cpu}, {cores} cores, Python {platform.python_version()}, "
               f"native engine {'built' if native_available() else 'not built'}")
    return {"cpu": cpu, "cores": cores, "python": platform.python_version(), "summary": summary}
