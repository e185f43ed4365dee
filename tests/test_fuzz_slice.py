"""The CLI fuzzer (fuzz/, docs/fuzzing.md): its checks, its generators, and a fixed-seed slice of `make fuzz`.

The slice runs SLICE_CASES cases of seed SLICE_SEED through the real CLI in
subprocesses (about a minute on 2 cores) and requires every one to pass;
a failure message lists each failure class with its saved reproducer.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz import cli_fuzz, csmith, oracle  # fuzz/ is a top-level directory; pyproject puts the repository on the path
from fuzz.cases import Case, Expected, Outcome, check
from fuzz.corpus import SetupError
from fuzz.generators import CATEGORIES, make_case
from fuzz.random_wat import random_module

# A seed whose first 25 cases cover every category, Csmith's included (and without it): the smallest such
# count among seeds 20240600-20240699.
SLICE_SEED = 20240671
SLICE_CASES = 26
CSMITH_MISSING = csmith.missing()
# The slice's categories: Csmith's only where it is installed (then its cases run on the transformer and must
# match wasmtime like the rest; without it the Csmith test below skips, saying how to install it).
SLICE_CATEGORIES = tuple(name for name in CATEGORIES if name != "csmith" or CSMITH_MISSING is None)
LARGE_RUN_CASES = 400
RANDOM_MODULES_CHECKED = 40
ERROR = "wasmformer: error: "


def _case(*argv: str, expected: Expected | None = None) -> Case:
    return Case(0, "test", "a hand-made case", argv, expected=expected or Expected())


def _kinds(case: Case, status: int | None, stderr: str = "", stdout: bytes = b"") -> list[str]:
    return [failure.kind for failure in check(case, Outcome(status, stdout, stderr, 0.1))]


# -- the checks ------------------------------------------------------------------------------------


def test_a_clean_error_and_a_clean_run_pass():
    assert _kinds(_case("run", "x.wat"), 125, f"model loaded\n{ERROR}x.wat: no such file\n") == []
    assert _kinds(_case("run", "x.wat"), 124, "wasmformer: stopped after 5 tokens without halting\n") == []
    assert _kinds(_case("refvm", "x.wat"), 134, "reference VM: 12 steps, halted, trap: DIVIDE_BY_ZERO\n") == []


def test_tracebacks_timeouts_and_undocumented_statuses_fail():
    traceback = "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'vocab'\n"
    assert _kinds(_case("inspect", "m"), 125, traceback) == ["traceback"]
    assert _kinds(_case("run", "x.wat"), None) == ["timeout"]
    assert _kinds(_case("inspect", "m"), 124, "") == ["status"]  # 124 is only run's "not halted"
    assert _kinds(_case("run", "x.wat"), -11, "") == ["status"]  # killed by a signal


def test_error_messages_must_be_one_final_clean_line():
    assert _kinds(_case("run", "x.wat"), 125, "something went wrong\n") == ["message"]
    assert _kinds(_case("run", "x.wat"), 125, f"{ERROR}first\n{ERROR}second\n") == ["message"]
    assert _kinds(_case("compile", "x.wat"), 125, f"{ERROR}[Errno 21] Is a directory: 'out'\n") == ["message"]
    assert _kinds(_case("compile", "x.wat"), 125, f"{ERROR}invalid WAT near 'a\rb'\n") == ["message"]


def test_expectations_compare_status_stdout_trap_and_wording():
    expected = Expected(status=134, stdout=b"ab", trap="trap.divide_by_zero")
    trapped = f"{ERROR}the program trapped: trap.divide_by_zero (after 9 tokens)\n"
    assert _kinds(_case("run", "p.wat", expected=expected), 134, trapped, b"ab") == []
    assert _kinds(_case("run", "p.wat", expected=expected), 134, trapped, b"a") == ["stdout"]
    assert _kinds(_case("run", "p.wat", expected=expected), 0, "", b"ab") == ["status"]
    assert _kinds(_case("run", "p.wat", expected=expected), 134, trapped.replace("divide_by_zero", "unreachable"),
                  b"ab") == ["trap"]
    lacks = Expected(status=125, stderr_lacks=("no such file",))
    assert _kinds(_case("run", "d.wat", expected=lacks), 125, f"{ERROR}d.wat: no such file\n") == ["message"]


def test_reproducer_quotes_bytes_that_are_not_utf8():
    case = _case("run", "echo.wat", "--input")
    case = Case(0, "options", "bytes", (*case.argv, b"\xff a"))
    assert cli_fuzz.reproducer(("wasmformer",), case) == "wasmformer run echo.wat --input $'\\xff\\x20\\x61'"


# -- the generators --------------------------------------------------------------------------------


def test_random_modules_are_valid_and_wasmtime_answers_for_each():
    endings = set()
    for index in range(RANDOM_MODULES_CHECKED):
        module = random_module(random.Random(index), uses_getchar=index % 3 == 0)
        expected = oracle.expected_main(module.text({"main": "main"}), b"input")
        assert 0 <= expected.status <= 255 and (expected.status == 134) == (expected.trap is not None)
        endings.add("trap" if expected.trap else "halt")
    assert endings == {"halt", "trap"}  # both halting and trapping programs are generated


def test_invoke_oracle_prints_the_result_after_the_output():
    module = random_module(random.Random(7))
    last = len(module.functions) - 1
    expected, printed = oracle.expected_invoke(module, last, (), b"")
    plain = oracle.expected_main(module.text({"main": "main"}), b"")
    assert (expected.status == 134) == (plain.status == 134)  # a plain main's value is its exit status instead
    assert printed == len(plain.stdout)
    if expected.status == 0 and module.entry.has_result:
        assert expected.stdout.startswith(plain.stdout) and expected.stdout.endswith(b"\n")
        int(expected.stdout[len(plain.stdout):])  # one signed decimal


# -- the fixed-seed slice --------------------------------------------------------------------------


def _run(tmp_path: Path, cases: int, seed: int, only: tuple[str, ...] = SLICE_CATEGORIES) -> cli_fuzz.Summary:
    settings = cli_fuzz.Settings(seed=seed, cases=cases, jobs=2, out=tmp_path / "fuzz", progress=False, only=only)
    return cli_fuzz.run_session(settings, log=lambda message: None)


def _failure_report(summary: cli_fuzz.Summary) -> str:
    lines = [f"{count} x {name}\n    reproduce: {(summary.classes.get(name) or ['(not saved)'])[0]}"
             for name, count in summary.class_counts.most_common()]
    return f"{summary.total_failed} fuzz cases failed:\n" + "\n".join(lines)


def test_fixed_seed_slice_passes(tmp_path):
    summary = _run(tmp_path, SLICE_CASES, SLICE_SEED)
    assert sum(summary.cases.values()) == SLICE_CASES
    assert set(summary.cases) == set(SLICE_CATEGORIES), "the slice should cover every category"
    assert summary.total_failed == 0, _failure_report(summary)


def test_skip_leaves_categories_out_and_a_missing_tool_stops_the_session(tmp_path, monkeypatch):
    assert "csmith" not in cli_fuzz.parse_settings(["--skip", "csmith,cache"]).only
    assert "cache" not in cli_fuzz.parse_settings(["--skip", "csmith,cache"]).only
    with pytest.raises(SystemExit):
        cli_fuzz.parse_settings(["--skip", ",".join(CATEGORIES)])
    monkeypatch.setattr(csmith.shutil, "which", lambda name: None)
    settings = cli_fuzz.Settings(cases=1, out=tmp_path, progress=False, only=("csmith",))
    with pytest.raises(SetupError, match="apt-get install -y csmith libcsmith-dev.*--skip csmith"):
        cli_fuzz.run_session(settings, log=lambda message: None)


@pytest.mark.skipif(CSMITH_MISSING is not None, reason=str(CSMITH_MISSING))
def test_csmith_cases_are_reproducible_c_programs_with_floats():
    first, again = (make_case(SLICE_SEED, 3, corpus=None, only=("csmith",)) for _ in range(2))
    assert first == again  # a seed and a case number give the same program
    source = first.files["prog.c"]
    assert source.startswith(csmith.PRELUDE) and b"--float" in source and b'#include "csmith.h"' in source
    assert first.argv[:2] == ("run", "prog.c") and "csmith.h" in first.copies
    assert first.expected.status == 0 and first.expected.stdout.startswith(b"checksum = ")


@pytest.mark.slow
def test_larger_fuzz_run_passes(tmp_path):
    summary = _run(tmp_path, LARGE_RUN_CASES, SLICE_SEED + 1, only=SLICE_CATEGORIES)
    assert summary.total_failed == 0, _failure_report(summary)
