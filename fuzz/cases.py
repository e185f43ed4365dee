"""One fuzz case: the files it needs, the command line, what must hold afterwards; and the check itself.

A Case is plain data (so it can be saved and replayed). ``check`` turns what a
command did (an Outcome) into a list of Failures; an empty list is a pass. The
invariants (docs/cli.md, "Conventions" and "Exit status"):

* the command ends before the timeout and prints no Python traceback;
* its exit status is documented for that command (for run and refvm any status 0..255 a program may exit
  with, and 124, 125, 134; else 0, 125, 130);
* status 125 from a tool error ends stderr with one line ``wasmformer: error: ...``
  (refvm reports a trap with its summary line instead), and that line does not
  leak Python internals (raw ``[Errno N]`` text, exception class names) or raw
  control characters;
* when the case has an Expected (valid programs, deliberate mistakes), the
  status, stdout and trap are the expected ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EXIT_STATUSES = {  # documented exit statuses per command (docs/cli.md, "Exit status")
    "run": set(range(256)),  # the program's own exit status, and 124, 125, 130, 134
    "refvm": set(range(256)),
    "default": {0, 125, 130},
}
TOOL_ERROR = 125  # wasmformer's own error (docs/cli.md)
TRAPPED = 134  # the program trapped
ERROR_PREFIX = "wasmformer: error: "
# Text in an error line that means Python internals reached the user instead of a message.
INTERNAL_ERROR_SMELLS = ("[Errno", "Traceback", "TypeError", "KeyError", "AttributeError", "IndexError",
                         "UnicodeDecodeError", "UnicodeEncodeError", "SafetensorError", "nanobind",
                         "object has no attribute", "NoneType", "not subscriptable", "unhashable",
                         "OverflowError", "RecursionError", "MemoryError", "JSONDecodeError")
# Control characters other than tab: a carriage return, NUL or escape in an error line garbles the terminal.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
REFVM_SUMMARY = re.compile(r"^reference VM: \d+ steps, (halted|stopped)")
TRAP_LINE = re.compile(r"^wasmformer: error: the program trapped: (trap\.[a-z_]+)")
STDOUT_SHOWN = 200  # bytes of stdout quoted in a failure


@dataclass(frozen=True)
class Expected:
    """What a case must produce; None fields are not checked."""

    status: int | None = None
    stdout: bytes | None = None
    trap: str | None = None  # the trap token on stderr (trap.divide_by_zero...), with status 134
    stderr_lacks: tuple[str, ...] = ()  # texts the error message must not contain
    why: str = ""  # where the expectation comes from (wasmtime, docs/cli.md...)


@dataclass(frozen=True)
class Case:
    """A command line run in a fresh directory holding ``files`` (relative path -> bytes), ``copies``
    (relative path -> a file to copy there, for large seeds) and empty ``dirs``."""

    index: int
    category: str
    description: str
    argv: tuple[str | bytes, ...]  # after `wasmformer`; bytes for arguments that are not UTF-8
    files: dict[str, bytes] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # variables set to paths inside the case directory
    interrupt: bool = False  # send SIGINT once the program has printed its first byte
    expected: Expected = Expected()

    @property
    def command(self) -> str:
        return next((arg for arg in self.argv if isinstance(arg, str) and not arg.startswith("-")), "")


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None when the command timed out
    stdout: bytes
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Failure:
    kind: str  # the failure class: "traceback", "timeout", "status", "stdout"...
    detail: str  # what exactly; the same class with another detail is the same bug

    @property
    def signature(self) -> str:
        return f"{self.kind}: {self.detail}"


def check(case: Case, outcome: Outcome) -> list[Failure]:
    if outcome.status is None:
        return [Failure("timeout", f"no exit after {outcome.seconds:.0f} s")]
    traceback = _traceback_failure(outcome.stderr)
    if traceback is not None:
        return [traceback]
    failures = _status_failures(case, outcome)
    failures += _error_message_failures(case, outcome)
    failures += _expectation_failures(case.expected, outcome)
    return failures


def _traceback_failure(stderr: str) -> Failure | None:
    if "Traceback (most recent call last)" not in stderr:
        return None
    lines = [line for line in stderr.strip().splitlines() if line and not line.startswith(" ")]
    last = lines[-1] if lines else "?"
    return Failure("traceback", last.split(":")[0])


def _status_failures(case: Case, outcome: Outcome) -> list[Failure]:
    allowed = EXIT_STATUSES.get(case.command, EXIT_STATUSES["default"])
    if outcome.status in allowed:
        return []
    return [Failure("status", f"{case.command or '(no command)'} exited {outcome.status}, not one of {sorted(allowed)}")]


def _error_message_failures(case: Case, outcome: Outcome) -> list[Failure]:
    if outcome.status != TOOL_ERROR or (case.expected is not None and case.expected.stdout is not None
                                         and case.expected.status == TOOL_ERROR):
        return []  # (a program run that exits with 125 itself has no error line)
    lines = _lines(outcome.stderr)
    if case.command == "refvm" and lines and REFVM_SUMMARY.match(lines[-1]):
        return []  # a trap or --max-steps: reported by the summary line
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if not lines or not lines[-1].startswith(ERROR_PREFIX) or len(errors) != 1:
        last = lines[-1] if lines else "(empty stderr)"
        return [Failure("message", f"status 125 without one final `wasmformer: error:` line (last line: {last[:80]!r})")]
    smells = [smell for smell in INTERNAL_ERROR_SMELLS if smell in errors[0]]
    if smells:
        return [Failure("message", f"error line shows Python internals ({smells[0]})")]
    if CONTROL_CHARACTERS.search(errors[0]):
        return [Failure("message", "error line holds raw control characters (from the input?)")]
    return []


def _lines(text: str) -> list[str]:
    """Non-blank lines as a terminal shows them: split at newlines only (str.splitlines also splits at
    \x1c-\x1e, \x85..., which the control-character check reports instead)."""
    return [line for line in text.split("\n") if line.strip()]


def _expectation_failures(expected: Expected, outcome: Outcome) -> list[Failure]:
    failures = []
    source = f" ({expected.why})" if expected.why else ""
    if expected.status is not None and outcome.status != expected.status:
        failures.append(Failure("status", f"exit {outcome.status}, expected {expected.status}{source}"))
    if expected.stdout is not None and outcome.stdout != expected.stdout:
        failures.append(Failure("stdout", f"stdout differs{source}"))
    if expected.trap is not None and outcome.status == TRAPPED:
        found = [match.group(1) for line in _lines(outcome.stderr) if (match := TRAP_LINE.match(line))]
        if found != [expected.trap]:
            failures.append(Failure("trap", f"trap {found[0] if found else 'none'}, expected {expected.trap}"))
    error_lines = [line for line in _lines(outcome.stderr) if line.startswith(ERROR_PREFIX)]
    for text in expected.stderr_lacks:
        if any(text in line for line in error_lines):
            failures.append(Failure("message", f"error says {text!r}"))
    return failures


def describe_difference(expected: Expected, outcome: Outcome) -> str:
    """A few lines showing expected against actual stdout and status, for a failure report."""
    lines = [f"status: {outcome.status} (expected {expected.status})"]
    if expected.stdout is not None:
        lines.append(f"stdout:   {outcome.stdout[:STDOUT_SHOWN]!r}")
        lines.append(f"expected: {expected.stdout[:STDOUT_SHOWN]!r}")
    return "\n".join(lines)
