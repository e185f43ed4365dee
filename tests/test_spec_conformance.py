"""The official WebAssembly spec scripts, run on the reference VM through the front end.

The scripts are not in this repository: they are read from ../shared/spec-tests
(next to the repo root) or from $WASMFORMER_SPEC_TESTS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmformer.conformance.spectest import SPEC_TESTS_ENV, format_summary, run_script, spec_tests_dir

pytest.importorskip("wasmtime")

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = spec_tests_dir(REPO_ROOT)
SCRIPTS = sorted(SPEC_DIR.glob("*.wast")) if SPEC_DIR.is_dir() else []
# Scripts whose i32 assertions must all run (not be counted away as unsupported):
# a guard against the harness silently classifying everything as unsupported.
MINIMUM_PASSED = {"i32.wast": 459, "load.wast": 96, "store.wast": 67, "labels.wast": 28, "br_table.wast": 152,
                  "call_indirect.wast": 88, "func_ptrs.wast": 29}

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not SCRIPTS, reason=f"spec tests not found in {SPEC_DIR} (set {SPEC_TESTS_ENV})"),
]


@pytest.fixture(scope="module")
def tallies():
    return {path.name: run_script(path) for path in SCRIPTS}


def test_every_supported_assertion_passes(tallies):
    print("\n" + format_summary(tallies))
    failures = [failure for tally in tallies.values() for failure in tally.failures]
    assert not failures, "\n".join(failures[:40])


def test_counts_are_consistent(tallies):
    for name, tally in tallies.items():
        text = (SPEC_DIR / name).read_text()
        assertions = sum(text.count(f"({command}") for command in
                         ("assert_return", "assert_trap", "assert_exhaustion", "assert_invalid",
                          "assert_malformed", "assert_unlinkable"))
        assert tally.passed + sum(tally.unsupported.values()) + len(tally.failures) == tally.total
        assert tally.total == assertions, f"{name}: {tally.total} counted, {assertions} assertions in the script"


def test_core_scripts_really_run(tallies):
    for name, minimum in MINIMUM_PASSED.items():
        if name in tallies:
            assert tallies[name].passed >= minimum, f"{name}: only {tallies[name].passed} passed"
