"""i32 mul, div_s/u, rem_s/u, clz, ctz and popcnt executed by the universal model.

Each op is one VM step (no helper call): edge rows (0, 1, -1, INT_MIN, INT_MAX,
powers of two, operands whose every column carries) and random pairs run
through the model in one batched program per case; the model's trace must
equal the trace oracle's token for token and its output wasmtime's. Traps
(division by zero, INT_MIN / -1) must be wasmtime's. The dense engine (the
definition) agrees with the fast engine on a program using every op.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmformer.engines import default_engine_name
from wasmformer.frontend import Call, Op, load_program
from wasmformer.machine.execute import run_program, trace_tokens, trap_reason
from wasmformer.machine.trace import expected_trace

pytestmark = [pytest.mark.oracle, pytest.mark.wasmtime]
wasmtime = pytest.importorskip("wasmtime")

from tests.frontend.frontend_oracle import _wat_binary, lowered, run_wasmtime

BINARY = ["mul", "div_s", "div_u", "rem_s", "rem_u"]
UNARY = ["clz", "ctz", "popcnt"]
MODULE = "(module (memory 1) " + " ".join(
    [f'(func (export "{op}") (param i32 i32) (result i32) (i32.{op} (local.get 0) (local.get 1)))' for op in BINARY]
    + [f'(func (export "{op}") (param i32) (result i32) (i32.{op} (local.get 0)))' for op in UNARY]) + ")"
NATIVE = {"mul": Op.MUL, "div_s": Op.DIV_S, "div_u": Op.DIV_U, "rem_s": Op.REM_S, "rem_u": Op.REM_U,
          "clz": Op.CLZ, "ctz": Op.CTZ, "popcnt": Op.POPCNT}
# 0xFFFFFFFF * 0xFFFFFFFF and 0x01010101-style operands make every column carry; 0xFF00FF00 ripples borrows
EDGES = [0, 1, -1, 2, -2, 3, 7, -7, 255, 256, 0xFFFF, 0x10000, 0x7FFFFFFF, -0x80000000, -0x7FFFFFFF,
         0x01010101, -0x00FF0100, 0x12345678, -0x12345678, 1 << 24, 1 << 30]
UNARY_EDGES = EDGES + [1 << k for k in range(32)] + [-(1 << k) for k in range(32)] + [(1 << k) - 1 for k in range(32)]
I32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def _traps(op: str, a: int, b: int) -> bool:
    return op in ("div_s", "div_u", "rem_s", "rem_u") and (b == 0 or (op == "div_s" and a == -(2**31) and b == -1))


def assert_model_matches(universal, op: str, argument_lists: list[tuple], module: str = MODULE,
                         native_ops: dict[str, Op] = NATIVE) -> None:
    """One program calling export ``op`` of ``module`` on every argument tuple: the model's trace is the
    oracle's, its output wasmtime's; an export in ``native_ops`` must run as that VM op, not a helper."""
    program = lowered(module, calls=[Call(op, args) for args in argument_lists])
    if op in native_ops:
        assert any(instr.op is native_ops[op] for instr in program.instrs), "the op must run natively"
    expected = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(expected.tokens) + 16)
    assert trace_tokens(universal, run) == expected.tokens
    wasm = _wat_binary(module)
    assert run.output == b"".join(run_wasmtime(wasm, op, args).output for args in argument_lists)


@pytest.mark.parametrize("op", BINARY)
def test_binary_edge_rows(universal, op):
    assert_model_matches(universal, op, [(a, b) for a in EDGES for b in EDGES if not _traps(op, a, b)])


@pytest.mark.parametrize("op", UNARY)
def test_unary_edge_rows(universal, op):
    assert_model_matches(universal, op, [(a,) for a in UNARY_EDGES])


@settings(max_examples=15, deadline=None)
@given(op=st.sampled_from(BINARY), pairs=st.lists(st.tuples(I32, I32 | st.integers(-300, 300)), min_size=1,
                                                  max_size=20))
def test_binary_random_pairs(universal, op, pairs):
    assert_model_matches(universal, op, [(a, b) for a, b in pairs if not _traps(op, a, b)] or [(1, 1)])


@settings(max_examples=10, deadline=None)
@given(op=st.sampled_from(UNARY), values=st.lists(I32, min_size=1, max_size=20))
def test_unary_random_values(universal, op, values):
    assert_model_matches(universal, op, [(a,) for a in values])


@pytest.mark.parametrize("op,a,b", [(op, 5, 0) for op in ("div_s", "div_u", "rem_s", "rem_u")]
                         + [(op, -(2**31), -1) for op in ("div_s", "div_u", "rem_s", "rem_u")])
def test_division_traps_like_wasmtime(universal, op, a, b):
    program = load_program(MODULE, kind="wat", invoke=op, args=(a, b))
    expected = expected_trace(program)
    run = run_program(universal, program, max_new_tokens=len(expected.tokens) + 16)
    assert trace_tokens(universal, run) == expected.tokens
    oracle = run_wasmtime(_wat_binary(MODULE), op, (a, b))
    assert (run.output, trap_reason(run)) == (oracle.output, oracle.trap)
    assert (trap_reason(run) is not None) == _traps(op, a, b)


EVERY_NEW_OP = """(module
  (func (export "mix") (param i32 i32) (result i32)
    (i32.mul (local.get 0) (local.get 1))
    (i32.div_s (local.get 0) (local.get 1)) i32.add
    (i32.div_u (local.get 0) (local.get 1)) i32.add
    (i32.rem_s (local.get 0) (local.get 1)) i32.add
    (i32.rem_u (local.get 0) (local.get 1)) i32.add
    (i32.clz (local.get 0)) i32.add
    (i32.ctz (local.get 1)) i32.add
    (i32.popcnt (local.get 0)) i32.add))"""


def test_dense_engine_agrees_on_every_new_op(universal):
    if default_engine_name() == "dense":
        pytest.skip("the fast engine is the dense engine")
    program = load_program(EVERY_NEW_OP, kind="wat", invoke="mix", args=(-0x12345679, 0x1F3))
    assert {Op.MUL, Op.DIV_S, Op.DIV_U, Op.REM_S, Op.REM_U, Op.CLZ, Op.CTZ, Op.POPCNT} <= {
        instr.op for instr in program.instrs}
    fast = run_program(universal, program)
    dense = run_program(universal, program, engine="dense", max_new_tokens=len(fast.trace))
    assert trace_tokens(universal, dense) == trace_tokens(universal, fast) == expected_trace(program).tokens
    assert fast.output == run_wasmtime(_wat_binary(EVERY_NEW_OP), "mix", (-0x12345679, 0x1F3)).output


def test_exact_evaluator_keeps_every_declared_bound():
    """The graph's exact evaluator checks every feature's declared bounds and exactness at every token:
    the datapaths' tightened bounds (quotient-byte products, selected columns, partial remainders) hold."""
    from wasmformer.graph.evaluate import run as evaluate
    from wasmformer.machine.interpreter import build_interpreter
    from wasmformer.machine.prompt import encode_prompt
    from wasmformer.vm.program import Instr, VMProgram

    def signed(value: int) -> int:
        return value - (1 << 32) if value >= 1 << 31 else value

    pairs = [(0xFFFFFFFF, 0xFFFFFFFF), (0x80000000, 1), (0x7FFFFFFF, 0x80000000), (0xFFFFFFF9, 2),
             (7, 0xFFFFFFFE), (0xDEADBEEF, 0xFF), (0x01000000, 0x100)]
    instrs = []
    for a, b in pairs:
        for op in (Op.MUL, Op.DIV_S, Op.DIV_U, Op.REM_S, Op.REM_U):
            instrs += [Instr(Op.CONST, signed(a)), Instr(Op.CONST, signed(b)), Instr(op), Instr(Op.DROP)]
        for op in (Op.CLZ, Op.CTZ, Op.POPCNT):
            instrs += [Instr(Op.CONST, signed(a)), Instr(op), Instr(Op.DROP)]
    instrs += [Instr(Op.CONST, 1), Instr(Op.CONST, 0), Instr(Op.REM_U), Instr(Op.HALT)]  # ends in a trap
    program = VMProgram(instrs=instrs, entry=0, entry_locals=0, globals=[], memory=b"", memory_limit=16)
    expected = expected_trace(program).tokens
    assert expected[-2:] == ["trap.divide_by_zero", "halt"]
    result = evaluate(build_interpreter(), encode_prompt(program), max_new_tokens=len(expected) + 5)
    assert result.halted and result.trace == expected
