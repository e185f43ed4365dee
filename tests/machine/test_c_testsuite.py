"""c-testsuite (../shared/c-testsuite): 220 C programs compiled by the front end, each checked against the exact
stdout it must print and exit status 0 (conformance/ctestsuite.py).

Every case runs on the reference VM (the front end, wasi-libc and the lowering against the corpus), but for
the one too long for it, which wasmtime checks. On the transformer: QUICK_ON_MODEL in `make test` (the cases
with floats and 64-bit integers, the libc, and the out-of-scope one), every case in `make test-all`. The
out-of-scope case must fail in the documented way, so a fix shows up as a failure to update the list; the
cases longer than the precision horizon must stop at it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmformer.conformance.ctestsuite import (BEYOND_HORIZON, BEYOND_REFERENCE_VM, C_TESTSUITE_ENV, OUT_OF_SCOPE,
                                               c_testsuite_dir, load_cases, verdict)
from wasmformer.frontend import load_program
from wasmformer.machine.execute import run_program, trap_reason
from wasmformer.oracles import refvm
from wasmformer.runner import default_max_new_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOT = c_testsuite_dir(REPO_ROOT)
CASES = load_cases(ROOT)
BY_NAME = {case.name: case for case in CASES}
EXPECTED_CASES = 220
MAX_STEPS = 6_000_000  # above every case the reference VM runs (00204: 5.2 million steps)
WASMTIME_FUEL = 2_000_000_000  # wasm instructions for the cases too long for the reference VM
# f32/f64 (00113 00119 00123 00140 00175 00178 00195), long long (00081 00128 00200 00203 00212 00217 00219),
# the libc (00143), the out-of-scope fopen (00187): each a few seconds on the model at most.
QUICK_ON_MODEL = ("00081", "00113", "00119", "00123", "00128", "00140", "00143", "00175", "00178", "00187",
                  "00195", "00200", "00203", "00212", "00217", "00219")

pytestmark = pytest.mark.skipif(not CASES, reason=f"c-testsuite not found in {ROOT} (set {C_TESTSUITE_ENV})")


def _ids(cases):
    return [case.name for case in cases]


def test_the_corpus_is_whole_and_the_lists_name_its_cases():
    assert len(CASES) == EXPECTED_CASES
    assert set(QUICK_ON_MODEL) | set(BEYOND_HORIZON) | set(OUT_OF_SCOPE) | set(BEYOND_REFERENCE_VM) <= set(BY_NAME)


def _status(exit_status, trap):
    """main's return value reaches the VM as an EXIT; a run that halts without one exited 0."""
    return exit_status if exit_status is not None else (None if trap else 0)


def _check(case, exit_status, output, trap):
    problem = verdict(case, _status(exit_status, trap), output, trap is not None)
    if case.out_of_scope:
        assert problem is not None and trap is not None, f"{case.name} passes now: update OUT_OF_SCOPE"
    else:
        assert problem is None, problem


# Cases of millions of reference-VM steps (10 to 25 s each in Python) run in `make test-all`.
LONG_ON_THE_REFERENCE_VM = ("00041", "00204")
REFERENCE_CASES = [pytest.param(case, id=case.name, marks=[pytest.mark.slow] if case.name in LONG_ON_THE_REFERENCE_VM
                                else []) for case in CASES if case.name not in BEYOND_REFERENCE_VM]


@pytest.mark.oracle
@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_case_on_the_reference_vm(case):
    result = refvm.run(load_program(case.source), max_steps=MAX_STEPS)
    assert result.halted, f"{case.name}: not halted after {MAX_STEPS} steps"
    _check(case, result.exit_status, result.output, result.trap)


@pytest.mark.oracle
@pytest.mark.parametrize("name", BEYOND_REFERENCE_VM)
def test_cases_too_long_for_the_reference_vm_pass_under_wasmtime(name):
    from wasmformer.frontend import module_bytes
    from wasmformer.oracles.wasmtime_runner import execute_wasm

    run = execute_wasm(module_bytes(BY_NAME[name].source), b"", fuel=WASMTIME_FUEL)
    _check(BY_NAME[name], run.exit_status, run.output, None)


def _check_on_model(universal, case):
    program = load_program(case.source)
    run = run_program(universal, program)
    assert run.halted, f"{case.name}: stopped after {len(run.trace)} tokens"
    trap = trap_reason(run)
    reference = refvm.run(program, max_steps=MAX_STEPS)
    assert (run.output, trap) == (reference.output, reference.trap), case.name  # the whole output, and the trap
    _check(case, run.exit_status, run.output, trap)


@pytest.mark.parametrize("name", QUICK_ON_MODEL)
def test_quick_cases_on_the_transformer(universal, name):
    _check_on_model(universal, BY_NAME[name])


ON_MODEL_SLOW = [case for case in CASES if not case.beyond_horizon and case.name not in QUICK_ON_MODEL]


@pytest.mark.slow
@pytest.mark.parametrize("case", ON_MODEL_SLOW, ids=_ids(ON_MODEL_SLOW))
def test_every_case_on_the_transformer(universal, case):
    _check_on_model(universal, case)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BEYOND_HORIZON))
def test_cases_beyond_the_horizon_stop_there(universal, name):
    run = run_program(universal, load_program(BY_NAME[name].source))
    assert not run.halted and run.stop_reason == "max_new_tokens"
    assert len(run.trace) == default_max_new_tokens(universal, run.prompt_tokens)  # stopped at the horizon
