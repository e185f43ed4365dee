"""What a batch runs and what it wrote: manifest entries in, one JSON line per finished run out.

A manifest is a JSONL file, one run per line: ``{"program": PATH, "input": TEXT, "args": [...],
"max_new_tokens": N, "id": NAME}`` (only ``program`` is required; ``input_file`` may replace ``input``;
relative paths are relative to the manifest), or a directory whose ``*.c``, ``*.wat`` and ``*.wasm`` files
are the runs (with ``NAME.input`` beside a program as its input). Each entry has an ``id`` (given, else
its line number and program), and the results file is keyed by it: a rerun skips the ids already there,
so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from wasmformer.api import SOURCE_SUFFIXES
from wasmformer.vm.errors import ProgramError

ENTRY_KEYS = {"id", "program", "input", "input_file", "args", "max_new_tokens"}


class ManifestError(ProgramError):
    """A manifest line or a results file that cannot be read, naming the file and line."""


@dataclass(frozen=True)
class Entry:
    """One run of a batch: a program path, its input and arguments, its token cap."""

    id: str
    program: str
    input: bytes = b""
    args: tuple[str, ...] = ()
    max_new_tokens: int | None = None


@dataclass
class Outcome:
    """One finished run as the results file records it (``error`` set when wasmformer could not run it)."""

    id: str
    program: str
    exit_status: int | None
    ending: str | None
    stdout: bytes = b""
    stderr: bytes = b""
    tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    engine: str | None = None
    trace_file: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        record = {"id": self.id, "program": self.program, "exit_status": self.exit_status, "ending": self.ending}
        record.update(_bytes_field("stdout", self.stdout))
        record.update(_bytes_field("stderr", self.stderr))
        record.update({"tokens": self.tokens, "prompt_tokens": self.prompt_tokens, "seconds": round(self.seconds, 6),
                       "engine": self.engine})
        if self.trace_file is not None:
            record["trace_file"] = self.trace_file
        if self.error is not None:
            record["error"] = self.error
        return record


def _bytes_field(name: str, data: bytes) -> dict:
    """Output as text when it is UTF-8 (the usual case), else as base64 under NAME_base64."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(data).decode("ascii")}


def read_manifest(path: str | os.PathLike) -> list[Entry]:
    """The entries of a JSONL manifest or a directory of programs; ManifestError names a bad line."""
    path = Path(path)
    if path.is_dir():
        return _directory_entries(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest (a JSONL file or a directory of programs)")
    entries, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            entry = _entry(line, f"{path}:{number}", path.parent, number)
            if entry.id in seen:
                raise ManifestError(f"{path}:{number}: the id {entry.id!r} is used twice")
            seen.add(entry.id)
            entries.append(entry)
    return entries


def _directory_entries(directory: Path) -> list[Entry]:
    entries = []
    for program in sorted(path for path in directory.iterdir() if path.suffix.lower() in SOURCE_SUFFIXES):
        input_file = program.with_suffix(".input")
        entries.append(Entry(program.name, str(program), input_file.read_bytes() if input_file.is_file() else b""))
    if not entries:
        raise ManifestError(f"{directory}: no .c, .wat or .wasm programs in this directory")
    return entries


def _entry(line: str, where: str, base: Path, number: int) -> Entry:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: not JSON ({error.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get("program"), str):
        raise ManifestError(f"{where}: each line is an object with a \"program\" path")
    unknown = sorted(set(record) - ENTRY_KEYS)
    if unknown:
        raise ManifestError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(ENTRY_KEYS))})")
    program = str(base / record["program"])
    args = record.get("args", [])
    if not isinstance(args, list) or not all(isinstance(argument, str) for argument in args):
        raise ManifestError(f"{where}: \"args\" is a list of strings")
    limit = record.get("max_new_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ManifestError(f"{where}: \"max_new_tokens\" is a positive integer")
    return Entry(str(record.get("id", f"{number}:{record['program']}")), program, _input(record, where, base),
                 tuple(args), limit)


def _input(record: dict, where: str, base: Path) -> bytes:
    if "input" in record and "input_file" in record:
        raise ManifestError(f"{where}: give \"input\" or \"input_file\", not both")
    if "input_file" in record:
        input_path = base / str(record["input_file"])
        if not input_path.is_file():
            raise ManifestError(f"{where}: {input_path}: no such input file")
        return input_path.read_bytes()
    text = record.get("input", "")
    if not isinstance(text, str):
        raise ManifestError(f"{where}: \"input\" is a string")
    return text.encode("utf-8")


def finished_ids(results: str | os.PathLike) -> set[str]:
    """The ids a results file already holds (a torn last line, from an interrupted batch, does not count)."""
    path = Path(results)
    if not path.is_file():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            ids.add(record["id"])
    return ids


def pending(entries: Iterable[Entry], done: set[str]) -> Iterator[Entry]:
    return (entry for entry in entries if entry.id not in done)


class ResultsFile:
    """Appends one JSON line per outcome, flushed at once, so a crash loses no finished run."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_line()
        self.file = self.path.open("a", encoding="utf-8")

    def _repair_torn_line(self) -> None:
        """An interrupted write may leave a last line without its newline: end it, so the next record
        starts a line of its own (the torn one is not JSON and is skipped when read)."""
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open("rb") as file:
                file.seek(-1, os.SEEK_END)
                ends_with_newline = file.read(1) == b"\n"
            if not ends_with_newline:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write("\n")

    def write(self, outcome: Outcome) -> None:
        self.file.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
