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
                  "call_indirect.wast": 88, "func_ptrs.wast": 29, "f32.wast": 2513, "f64.wast": 2513,
                  "conversions.wast": 618, "float_exprs.wast": 819}

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not SCRIPTS, reason=f"spec tests not found in {SPEC_DIR} (set {SPEC_TESTS_ENV})"),
]


COMMANDS = ("assert_return", "assert_trap", "assert_exhaustion", "assert_invalid", "assert_malformed",
            "assert_unlinkable")


# The float scripts: over 13,000 assertions of soft float, minutes of the Python reference VM. They run in
# `make test-all` (here and through the transformer, tests/machine/test_spec_on_model.py); `make test` checks
# every float instruction against wasmtime on edge cases and random bits (tests/frontend/test_float_oracle.py)
# and float_memory.wast, f32_bitwise.wast and f64_bitwise.wast here.
FLOAT_ARITHMETIC_SCRIPTS = ("f32.wast", "f64.wast", "f32_cmp.wast", "f64_cmp.wast", "float_exprs.wast",
                            "float_misc.wast", "conversions.wast", "const.wast", "float_literals.wast")
# memory_copy.wast: thousands of byte-by-byte checks after each copy, nearly three minutes of the Python reference
# VM; memory.copy stays in `make test` through bulk.wast and memory_init.wast here and the bulk-memory programs on
# the model (tests/machine/test_model_traces.py, tests/frontend/test_bulk_memory_oracle.py).
LONG_ON_THE_REFERENCE_VM = ("memory_copy.wast",)


# One test per script, so that pytest-xdist spreads them over its workers.
@pytest.mark.parametrize("path", [pytest.param(path, marks=[pytest.mark.slow]
                                               if path.name in FLOAT_ARITHMETIC_SCRIPTS + LONG_ON_THE_REFERENCE_VM
                                               else [], id=path.name) for path in SCRIPTS])
def test_every_supported_assertion_passes(path):
    tally = run_script(path)
    print("\n" + format_summary({path.name: tally}))
    assert not tally.failures, "\n".join(tally.failures[:40])
    # the counts are consistent: every assertion of the script lands in exactly one bucket
    text = path.read_text()
    assert tally.passed + sum(tally.unsupported.values()) + len(tally.failures) == tally.total
    assert tally.total == sum(text.count(f"({command}") for command in COMMANDS), path.name
    # a guard against the harness silently classifying everything as unsupported
    assert tally.passed >= MINIMUM_PASSED.get(path.name, 0), f"{path.name}: only {tally.passed} passed"
