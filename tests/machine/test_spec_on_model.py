"""The spec-conformance scripts through the transformer: what passes on the reference VM passes on the model.

Each assertion's program runs on the universal model (native engine when built);
its output and trap are read from the generated tokens. The reference VM runs
too, only to size the token budget and to classify limits exactly as the
reference harness does. A quick subset runs in `make test`, every script in
`make test-all`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmformer.machine import tokens as T
from wasmformer.machine.execute import run_program, trap_reason
from wasmformer.oracles import refvm
from wasmformer.vm.ops import QUOTIENT_BYTES, VALUE_BYTES
from wasmformer.conformance.spectest import (MAX_STEPS_PER_ASSERTION, SPEC_TESTS_ENV, format_summary, run_script,
                                         spec_tests_dir)

pytest.importorskip("wasmtime")

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = spec_tests_dir(REPO_ROOT)
SCRIPTS = sorted(SPEC_DIR.glob("*.wast")) if SPEC_DIR.is_dir() else []
# The scripts of `make test` (each under half a minute here); call_indirect.wast (about 3 minutes), call.wast and
# loop.wast (most of a minute each: deep recursion, long loops), br_table.wast and endianness.wast (the WAT edge
# cases of tests/machine/test_model_traces.py cover them on the model) run with every other script in
# `make test-all`.
QUICK = ["i32.wast", "i64.wast", "labels.wast", "load.wast", "store.wast", "local_tee.wast", "select.wast",
         "memory_size.wast"]
MAX_TOKENS_PER_STEP = QUOTIENT_BYTES + VALUE_BYTES + 1  # the longest step: a division (docs/token-language.md)

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(not SCRIPTS, reason=f"spec tests not found in {SPEC_DIR} (set {SPEC_TESTS_ENV})"),
]


@pytest.fixture(scope="module")
def on_model(universal):
    def execute(program):
        reference = refvm.run(program, max_steps=MAX_STEPS_PER_ASSERTION)
        if not reference.halted:  # past the harness's step budget (soft float): counted so, not run on the model
            return reference
        run = run_program(universal, program,
                          max_new_tokens=MAX_TOKENS_PER_STEP * reference.steps + MAX_TOKENS_PER_STEP)
        return refvm.RefResult(output=run.output, steps=reference.steps, halted=run.halted, trap=trap_reason(run),
                               helper_steps=0, trap_address=reference.trap_address,
                               failed_grows=reference.failed_grows)
    return execute


def compare(paths, on_model):
    reference = {path.name: run_script(path, memory_limit=T.MAX_MEMORY) for path in paths}
    model = {path.name: run_script(path, memory_limit=T.MAX_MEMORY, executor=on_model) for path in paths}
    print("\nreference VM:\n" + format_summary(reference) + "\n\ntransformer:\n" + format_summary(model))
    for name in reference:
        assert not model[name].failures, "\n".join(model[name].failures[:20])
        assert model[name].passed == reference[name].passed, name
        assert model[name].unsupported == reference[name].unsupported, name
    return model


@pytest.mark.parametrize("name", QUICK)
def test_quick_scripts_on_the_transformer(on_model, name):
    model = compare([path for path in SCRIPTS if path.name == name], on_model)
    assert model[name].passed > 0


@pytest.mark.parametrize("name", ["int_exprs.wast", "address.wast", "memory.wast", "memory_init.wast",
                                  "float_memory.wast", "global.wast"])
def test_i64_memory_and_float_bits_scripts_on_the_transformer(on_model, name):
    compare([path for path in SCRIPTS if path.name == name], on_model)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conversions.wast", "f32_bitwise.wast", "f64_bitwise.wast", "float_literals.wast",
                                  "const.wast"])
def test_float_scripts_on_the_transformer(on_model, name):
    """Float arithmetic is soft float (thousands of tokens an instruction): conversions.wast alone takes about
    three minutes, so these run in `make test-all`."""
    compare([path for path in SCRIPTS if path.name == name], on_model)


# One test per script, so that pytest-xdist spreads them over its workers (the float scripts are over 13,000
# assertions of soft float).
@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_every_script_on_the_transformer(on_model, path):
    compare([path], on_model)
