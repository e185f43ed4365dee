"""The expected trace (machine/trace.py) against the reference VM and docs/token-language.md.

Three kinds of checks:

* token-exact: small hand-built programs whose every step's tokens are written
  out here from the spec's table;
* agreement with the reference VM on the WAT edge-case programs of the front-end
  tests (imported, not copied) and on every C example: same output, same trap,
  and one commit per step (see ``assert_agrees_with_refvm`` for the relation);
* properties: add/sub/compare value bytes (and carry marks) reassemble to the
  reference VM's result for random operands.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmformer.frontend import Instr, Op, TrapReason, VMProgram, load_program
from wasmformer.machine import tokens as T
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.machine.prompt import max_frame_locals
from wasmformer.machine.trace import TraceMachine, decode_output, expected_trace
from wasmformer.oracles import refvm
from wasmformer.vm.errors import ProgramError
from wasmformer.vm.ops import FRAME_CLASSES, STRIDE_FRAME, call_op, return_op, spec

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

VOCABULARY = frozenset(T.vocabulary())
COMMITS = frozenset(T.COMMITS)
I32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def program(*instrs, globals=(), memory=b"", memory_limit=16, entry_locals=0) -> VMProgram:
    return VMProgram(instrs=[Instr(*i) for i in instrs], entry=0, entry_locals=entry_locals, globals=list(globals),
                     memory=memory, memory_limit=memory_limit)


def signed32(value: int) -> int:
    """An unsigned 32-bit value as the signed immediate of a const."""
    return value - (1 << 32) if value >= 1 << 31 else value


def step_tokens(vm: VMProgram, input_bytes: bytes = b"") -> list[tuple[int, list[str]]]:
    """(pc, tokens) of every step, in order."""
    machine = TraceMachine(vm, input_bytes)
    steps = []
    while not machine.halted:
        pc = machine.pc
        steps.append((pc, machine.step()))
    return steps


def complete_steps_prefix(tokens: list[str]) -> list[str]:
    """The tokens up to the last commit: the steps a truncated trace holds in full."""
    ends = [i for i, token in enumerate(tokens) if token in COMMITS or token == T.HALT]
    return tokens[:ends[-1] + 1] if ends else []


def assert_agrees_with_refvm(vm: VMProgram, input_bytes: bytes = b"", max_new_tokens: int | None = None,
                             expected_output: bytes | None = None):
    """The trace ends like the reference VM's run: same output, same trap, one commit per step.

    Every step but the last ends with one c.* commit; the last (`halt`, or a trap's
    `trap.REASON halt`) has none. So a halted trace holds refvm.steps - 1 commits
    (refvm.steps counting `<run>`, step 0's commit in the prompt), and a trace cut
    by max_new_tokens holds one commit per complete step.
    """
    trace = expected_trace(vm, input_bytes, max_new_tokens=max_new_tokens)
    counts = Counter(trace.tokens)
    assert set(counts) <= VOCABULARY, set(counts) - VOCABULARY
    commits = sum(counts[commit] for commit in COMMITS)
    stack_depth = sum(T.STACK_DELTA.get(commit, 0) * counts[commit] for commit in COMMITS)
    if trace.halted:
        reference = refvm.run(vm, input_bytes)
        assert reference.halted and trace.steps == reference.steps
        assert trace.tokens[-1] == T.HALT and counts[T.HALT] == 1
        assert commits == reference.steps - 1
        assert trace.trap == reference.trap
        if trace.trap is not None:
            assert trace.tokens[-2] == f"trap.{trace.trap.name.lower()}"
        assert trace.output == decode_output(trace.tokens) == reference.output
        assert (trace.exit_status, trace.errors) == (reference.exit_status, reference.errors)
        if trace.exit_status is not None:  # `exit` pops its status and ends the run without a commit
            assert trace.tokens[-2] == f"x.{trace.exit_status:02x}"
            stack_depth -= 1
        if trace.trap is None:  # (a trapping step may have popped already)
            assert stack_depth == len(reference.stack)  # sp read back from the commits
        if expected_output is not None:
            assert trace.output == expected_output
    else:
        assert max_new_tokens is not None and len(trace.tokens) == max_new_tokens and T.HALT not in counts
        assert commits == trace.steps
        reference = refvm.run(vm, input_bytes, max_steps=trace.steps)
        assert decode_output(complete_steps_prefix(trace.tokens)) == reference.output
        if expected_output is not None:
            assert expected_output.startswith(trace.output)
    return trace


# --- token-exact steps, straight from the spec's table ------------------------------------------------

EVERY_OP = [  # (instruction, its step's tokens) at pc 0, 1, 2, ...; "" marks a row jumped over
    ((Op.CONST, 0x1FF), "v.ff v.01 v.00 v.00 c.push"),  # pc 0
    ((Op.CONST, 1), "v.01 v.00 v.00 v.00 c.push"),
    ((Op.ADD,), "vc.00 v.02 v.00 v.00 c.pop"),  # 0x1ff + 1: byte 0 carries into byte 1
    ((Op.CONST, 0x201), "v.01 v.02 v.00 v.00 c.push"),
    ((Op.SUB,), "vc.ff vc.ff vc.ff vc.ff c.pop"),  # 0x200 - 0x201 = -1: every byte borrows
    ((Op.LOCAL_TEE, 2), "v.ff v.ff v.ff v.ff c.keep"),  # pc 5
    ((Op.GLOBAL_SET, 1), "v.ff v.ff v.ff v.ff c.pop"),
    ((Op.GLOBAL_GET, 0), "v.2a v.00 v.00 v.00 c.push"),
    ((Op.LOCAL_GET, 2), "v.ff v.ff v.ff v.ff c.push"),
    ((Op.LT_S,), "v.00 v.00 v.00 v.00 c.pop"),  # 42 < -1 (signed): no
    ((Op.EQZ,), "v.01 v.00 v.00 v.00 c.keep"),  # pc 10
    ((Op.LOCAL_SET, 0), "v.01 v.00 v.00 v.00 c.pop"),
    ((Op.CONST, 4), "v.04 v.00 v.00 v.00 c.push"),
    ((Op.CONST, 0x11223344), "v.44 v.33 v.22 v.11 c.push"),
    ((Op.STORE, 2), "m.44 m.33 m.22 m.11 c.pop2"),  # memory[6..9]
    ((Op.CONST, 0), "v.00 v.00 v.00 v.00 c.push"),  # pc 15
    ((Op.CONST, -2), "v.fe v.ff v.ff v.ff c.push"),
    ((Op.STORE16, 0), "m.fe m.ff c.pop2"),  # memory[0..1]
    ((Op.CONST, 15), "v.0f v.00 v.00 v.00 c.push"),
    ((Op.CONST, 0x180), "v.80 v.01 v.00 v.00 c.push"),
    ((Op.STORE8, 0), "m.80 c.pop2"),  # pc 20: memory[15], the last byte
    ((Op.CONST, 15), "v.0f v.00 v.00 v.00 c.push"),
    ((Op.LOAD8_S, 0), "v.80 v.ff v.ff v.ff c.keep"),
    ((Op.CONST, 14), "v.0e v.00 v.00 v.00 c.push"),
    ((Op.LOAD16_U, 0), "v.00 v.80 v.00 v.00 c.keep"),
    ((Op.CONST, 0), "v.00 v.00 v.00 v.00 c.push"),  # pc 25
    ((Op.LOAD16_S, 0), "v.fe v.ff v.ff v.ff c.keep"),
    ((Op.CONST, 5), "v.05 v.00 v.00 v.00 c.push"),
    ((Op.LOAD, 1), "v.44 v.33 v.22 v.11 c.keep"),
    ((Op.CONST, 7), "v.07 v.00 v.00 v.00 c.push"),
    ((Op.LOAD8_U, 0), "v.33 v.00 v.00 v.00 c.keep"),  # pc 30
    ((Op.CONST, 0), "v.00 v.00 v.00 v.00 c.push"),
    ((Op.SELECT,), "v.33 v.00 v.00 v.00 c.pop2"),  # 0x11223344 0x33 0: the second
    ((Op.CONST, 3), "v.03 v.00 v.00 v.00 c.push"),
    ((Op.SELECT,), "v.fe v.ff v.ff v.ff c.pop2"),  # -2 0x33 3: the first
    ((Op.DROP,), "c.pop"),  # pc 35
    ((Op.DROP,), "c.pop"),
    ((Op.MEMORY_SIZE, 1), "v.01 v.00 v.00 v.00 c.push"),
    ((Op.MEMORY_GROW, 1), "v.ff v.ff v.ff v.ff c.keep"),  # delta 1: fails
    ((Op.CONST, 0), "v.00 v.00 v.00 v.00 c.push"),
    ((Op.MEMORY_GROW, 1), "v.01 v.00 v.00 v.00 c.keep"),  # pc 40: delta 0, the size
    ((Op.JUMP_IF_ZERO, 0), "c.pop"),  # 1: not taken
    ((Op.CONST, 0), "v.00 v.00 v.00 v.00 c.push"),
    ((Op.JUMP_IF_ZERO, 45), "ph.00 pl.2d c.branch"),
    ((Op.HALT,), ""),
    ((Op.JUMP_IF_NONZERO, 47), "ph.00 pl.2f c.branch"),  # pc 45: -1 from the failed grow
    ((Op.HALT,), ""),
    ((Op.CONST, 0), "v.00 v.00 v.00 v.00 c.push"),
    ((Op.JUMP_IF_NONZERO, 0), "c.pop"),
    ((Op.CONST, 0x141), "v.41 v.01 v.00 v.00 c.push"),
    ((Op.PUTCHAR,), "o.41 c.pop"),  # pc 50
    ((Op.GETCHAR,), "v.7a v.00 v.00 v.00 c.getc"),
    ((Op.JUMP_IF_NONZERO, 54), "ph.00 pl.36 c.branch"),
    ((Op.HALT,), ""),
    ((Op.GETCHAR,), "v.ff v.ff v.ff v.ff c.getc"),  # the end of the input
    ((Op.CALL, 300), "ph.01 pl.2c c.call"),  # pc 55
    ((Op.LOCAL_GET, 2), "v.ff v.ff v.ff v.ff c.push"),  # back in the entry frame
    ((Op.JUMP, 59), "ph.00 pl.3b c.jump"),
    ((Op.HALT,), ""),
    ((Op.TRAP, 0), "trap.unreachable halt"),
]
FUNCTION_AT_300 = [
    ((Op.LOCAL_GET, 2), "v.00 v.00 v.00 v.00 c.push"),  # a fresh frame: local 2 reads 0
    ((Op.PUTCHAR_ERR,), "e.00 c.pop"),  # a byte of the error stream
    ((Op.RETURN,), "ph.00 pl.38 c.return"),  # to 56, after the call
]
FUNCTION_PC = 300


def every_op_program() -> VMProgram:
    padding = [((Op.HALT,), "")] * (FUNCTION_PC - len(EVERY_OP))
    instrs = [instr for instr, _ in EVERY_OP + padding + FUNCTION_AT_300]
    return program(*instrs, globals=[42, 0], memory_limit=16, entry_locals=3)


def every_op_steps() -> list[tuple[int, list[str]]]:
    """(pc, tokens) of each step in the order the rows above run."""
    steps = []
    for pc, (instr, tokens) in enumerate(EVERY_OP):
        if tokens:
            steps.append((pc, tokens.split()))
        if instr[0] is Op.CALL:
            steps += [(FUNCTION_PC + i, tokens.split()) for i, (_, tokens) in enumerate(FUNCTION_AT_300)]
    return steps


def test_every_op_writes_the_tokens_of_the_spec_table():
    vm = every_op_program()
    tables = (set(COMPARISONS) | set(BITWISE) | set(EXTENSIONS) | set(ARITHMETIC) | set(WIDE) | set(WIDE_COMPARISONS)
              | {Op.EXTEND_I32_S} | set(WIDE_LOADS) | {Op.STORE64} | set(CLASSED_CALLS) | {Op.EXIT})
    assert {instr.op for instr in vm.instrs} | tables == MACHINE_OPS
    assert step_tokens(vm, b"z") == every_op_steps()


def test_every_op_program_agrees_with_refvm():
    trace = assert_agrees_with_refvm(every_op_program(), b"z")
    assert trace.trap == TrapReason.UNREACHABLE and trace.output == b"A"


COMPARISONS = {  # op: its result for (-1, 1) and for (5, 5)
    Op.EQ: (0, 1), Op.NE: (1, 0), Op.LT_S: (1, 0), Op.LT_U: (0, 0), Op.GT_S: (0, 0), Op.GT_U: (1, 0),
    Op.LE_S: (1, 1), Op.LE_U: (0, 1), Op.GE_S: (0, 1), Op.GE_U: (1, 1),
}


@pytest.mark.parametrize("op", list(COMPARISONS))
def test_comparisons_write_0_or_1_then_three_zero_bytes(op):
    for (a, b), result in zip([(-1, 1), (5, 5)], COMPARISONS[op]):
        steps = step_tokens(program((Op.CONST, a), (Op.CONST, b), (op,), (Op.HALT,)))
        assert steps[2] == (2, [f"v.0{result}", "v.00", "v.00", "v.00", "c.pop"])


BITWISE = {  # op: its result bytes for 0x812345f9 and 0x0f0f00ff (shift count 36 = 4 mod 32)
    Op.AND: "v.f9 v.00 v.03 v.01", Op.OR: "v.ff v.45 v.2f v.8f", Op.XOR: "v.06 v.45 v.2c v.8e",
    Op.SHL: "v.90 v.5f v.34 v.12", Op.SHR_U: "v.5f v.34 v.12 v.08", Op.SHR_S: "v.5f v.34 v.12 v.f8",
    Op.ROTL: "v.98 v.5f v.34 v.12", Op.ROTR: "v.5f v.34 v.12 v.98",
}


@pytest.mark.parametrize("op", list(BITWISE))
def test_bitwise_ops_and_shifts_write_plain_bytes(op):
    b = 36 if op in (Op.SHL, Op.SHR_U, Op.SHR_S, Op.ROTL, Op.ROTR) else 0x0F0F00FF
    steps = step_tokens(program((Op.CONST, 0x812345F9 - (1 << 32)), (Op.CONST, b), (op,), (Op.HALT,)))
    assert steps[2] == (2, BITWISE[op].split() + ["c.pop"])


EXTENSIONS = {  # op: [(value, result bytes)]
    Op.EXTEND8_S: [(0x12345680, "v.80 v.ff v.ff v.ff"), (0x1234567F, "v.7f v.00 v.00 v.00")],
    Op.EXTEND16_S: [(0x12348000, "v.00 v.80 v.ff v.ff"), (0xFFFF7FFF, "v.ff v.7f v.00 v.00")],
}


@pytest.mark.parametrize("op", list(EXTENSIONS))
def test_sign_extension_keeps_the_slot(op):
    for value, result in EXTENSIONS[op]:
        steps = step_tokens(program((Op.CONST, signed32(value)), (op,), (Op.HALT,)))
        assert steps[1] == (1, result.split() + ["c.keep"])


ARITHMETIC = {  # op: [(operands, result bytes)]: the bytes are plain v.XX, low first, as for every value step
    Op.MUL: [((0x12345678, 0x9ABCDEF0), "v.80 v.20 v.2d v.24"),  # 0x0b00ea4e_242d2080: the low word
             ((0xFFFFFFFF, 0xFFFFFFFF), "v.01 v.00 v.00 v.00"),  # (-1)(-1): every column carries
             ((0x80000000, 0xFFFFFFFF), "v.00 v.00 v.00 v.80")],  # INT_MIN * -1 wraps to INT_MIN
    # div / rem: the quotient of the magnitudes (q.XX, most significant first), then the result
    Op.DIV_U: [((0xFFFFFFF9, 2), "q.7f q.ff q.ff q.fc v.fc v.ff v.ff v.7f")],
    Op.DIV_S: [((0xFFFFFFF9, 2), "q.00 q.00 q.00 q.03 v.fd v.ff v.ff v.ff"),  # -7 / 2 = -3
               ((0x80000000, 1), "q.80 q.00 q.00 q.00 v.00 v.00 v.00 v.80")],
    Op.REM_U: [((0xFFFFFFF9, 2), "q.7f q.ff q.ff q.fc v.01 v.00 v.00 v.00")],
    Op.REM_S: [((0xFFFFFFF9, 2), "q.00 q.00 q.00 q.03 v.ff v.ff v.ff v.ff"),  # -7 % 2 = -1
               ((0x80000000, 0xFFFFFFFF), "q.80 q.00 q.00 q.00 v.00 v.00 v.00 v.00")],  # no overflow trap
    Op.CLZ: [((0x00F00000,), "v.08 v.00 v.00 v.00"), ((0,), "v.20 v.00 v.00 v.00")],
    Op.CTZ: [((0x00F00000,), "v.14 v.00 v.00 v.00"), ((0,), "v.20 v.00 v.00 v.00")],
    Op.POPCNT: [((0x8F0000F1,), "v.0a v.00 v.00 v.00"), ((0xFFFFFFFF,), "v.20 v.00 v.00 v.00")],
}


@pytest.mark.parametrize("op", list(ARITHMETIC))
def test_arithmetic_and_bit_counts_write_their_result_bytes(op):
    for operands, result in ARITHMETIC[op]:
        pushes = [(Op.CONST, signed32(value)) for value in operands]
        steps = step_tokens(program(*pushes, (op,), (Op.HALT,)))
        commit = "c.pop" if len(operands) == 2 else "c.keep"
        assert steps[len(operands)] == (len(operands), result.split() + [commit])


WIDE = {  # i64 op: [(a, b, result bytes)]; each operand is two words (low first), the result 8 bytes and c.pop2
    Op.ADD64: [(0x1_FFFFFFFF, 1, "vc.00 vc.00 vc.00 vc.00 v.02 v.00 v.00 v.00"),  # the carry crosses the words
               ((1 << 64) - 1, 1, "vc.00 vc.00 vc.00 vc.00 vc.00 vc.00 vc.00 vc.00")],
    Op.SUB64: [(0x1_00000000, 1, "vc.ff vc.ff vc.ff vc.ff v.00 v.00 v.00 v.00"),  # the borrow crosses them
               (0x1_FFFFFFFF, 1, "v.fe v.ff v.ff v.ff v.01 v.00 v.00 v.00")],
    Op.AND64: [(0x1_FFFFFFFF, 0x3_00000001, "v.01 v.00 v.00 v.00 v.01 v.00 v.00 v.00")],
    Op.OR64: [(0x1_FFFFFFFF, 0x2_00000001, "v.ff v.ff v.ff v.ff v.03 v.00 v.00 v.00")],
    Op.XOR64: [(0x1_FFFFFFFF, 0x3_00000001, "v.fe v.ff v.ff v.ff v.02 v.00 v.00 v.00")],
}
# i64 comparison: its result for (-1, 1), (5, 5), (1 << 32, 1) and (1, 1 << 32): the high words decide the
# last two, the low words the first (-1's high word is all ones: below 1's unsigned, above it signed)
WIDE_COMPARISONS = {
    Op.EQ64: (0, 1, 0, 0), Op.NE64: (1, 0, 1, 1), Op.LT_S64: (1, 0, 0, 1), Op.LT_U64: (0, 0, 0, 1),
    Op.GT_S64: (0, 0, 1, 0), Op.GT_U64: (1, 0, 1, 0), Op.LE_S64: (1, 1, 0, 1), Op.LE_U64: (0, 1, 0, 1),
    Op.GE_S64: (0, 1, 1, 0), Op.GE_U64: (1, 1, 1, 0),
}


def test_sign_extension_to_i64_pushes_two_words():
    for value, words in ((0x80000000, "v.00 v.00 v.00 v.80 v.ff v.ff v.ff v.ff"),
                         (0x7FFFFFFF, "v.ff v.ff v.ff v.7f v.00 v.00 v.00 v.00")):
        steps = step_tokens(program((Op.CONST, signed32(value)), (Op.EXTEND_I32_S,), (Op.HALT,)))
        assert steps[1] == (1, words.split() + ["c.push"])


# memory 80 ff 01 02 03 04 85 06 ...: each i64 load at address 0, its 8 bytes, HIGH word first, and c.push
WIDE_LOADS = {
    Op.LOAD64: "v.03 v.04 v.85 v.06 v.80 v.ff v.01 v.02", Op.LOAD8_S64: "v.ff v.ff v.ff v.ff v.80 v.ff v.ff v.ff",
    Op.LOAD8_U64: "v.00 v.00 v.00 v.00 v.80 v.00 v.00 v.00", Op.LOAD16_S64: "v.ff v.ff v.ff v.ff v.80 v.ff v.ff v.ff",
    Op.LOAD16_U64: "v.00 v.00 v.00 v.00 v.80 v.ff v.00 v.00", Op.LOAD32_S64: "v.00 v.00 v.00 v.00 v.80 v.ff v.01 v.02",
    Op.LOAD32_U64: "v.00 v.00 v.00 v.00 v.80 v.ff v.01 v.02",
}
WIDE_MEMORY = bytes([0x80, 0xFF, 0x01, 0x02, 0x03, 0x04, 0x85, 0x06, 0x07, 0x08])


@pytest.mark.parametrize("op", list(WIDE_LOADS))
def test_i64_loads_write_the_high_word_first(op):
    steps = step_tokens(program((Op.CONST, 0), (op, 0), (Op.HALT,), memory=WIDE_MEMORY))
    assert steps[1] == (1, WIDE_LOADS[op].split() + ["c.push"])


def test_an_i64_store_writes_eight_bytes_and_pops_three_words():
    steps = step_tokens(program((Op.CONST, 1), *wide_pushes(0x0807060504030201), (Op.STORE64, 0), (Op.HALT,)))
    assert steps[3] == (3, [f"m.0{b}" for b in range(1, 9)] + ["c.pop3"])


def wide_pushes(*values: int) -> list[tuple[Op, int]]:
    return [(Op.CONST, signed32(value >> shift & 0xFFFFFFFF)) for value in values for shift in (0, 32)]


@pytest.mark.parametrize("op", list(WIDE))
def test_i64_ops_write_eight_bytes(op):
    for a, b, result in WIDE[op]:
        steps = step_tokens(program(*wide_pushes(a, b), (op,), (Op.HALT,)))
        assert steps[4] == (4, result.split() + ["c.pop2"])


@pytest.mark.parametrize("op", list(WIDE_COMPARISONS))
def test_i64_comparisons_write_an_i32_and_pop_three_words(op):
    for (a, b), result in zip([(-1, 1), (5, 5), (1 << 32, 1), (1, 1 << 32)], WIDE_COMPARISONS[op]):
        steps = step_tokens(program(*wide_pushes(a % (1 << 64), b), (op,), (Op.HALT,)))
        assert steps[4] == (4, [f"v.0{result}", "v.00", "v.00", "v.00", "c.pop3"])


@pytest.mark.parametrize("a,b,add,sub", [
    (0xFF, 1, "vc.00 v.01 v.00 v.00", "v.fe v.00 v.00 v.00"),
    (0xFFFFFFFF, 1, "vc.00 vc.00 vc.00 vc.00", "v.fe v.ff v.ff v.ff"),
    (0, 1, "v.01 v.00 v.00 v.00", "vc.ff vc.ff vc.ff vc.ff"),
    (0x10000, 1, "v.01 v.00 v.01 v.00", "vc.ff vc.ff v.00 v.00"),  # the borrow ripples through a zero byte
    (0x00FF00FF, 0x00010001, "vc.00 v.01 vc.00 v.01", "v.fe v.00 v.fe v.00"),
    (0x80000000, 0x80000000, "v.00 v.00 v.00 vc.00", "v.00 v.00 v.00 v.00"),
    (0x01FF, 0x00FF, "vc.fe v.02 v.00 v.00", "v.00 v.01 v.00 v.00"),  # 0xff+0xff: a carry, byte fe
])
def test_carry_and_borrow_marks(a, b, add, sub):
    for op, expected in ((Op.ADD, add), (Op.SUB, sub)):
        steps = step_tokens(program((Op.CONST, a), (Op.CONST, b), (op,), (Op.HALT,)))
        assert steps[2] == (2, expected.split() + ["c.pop"])


# --- the exit status ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status,byte", [(0, "00"), (3, "03"), (255, "ff"), (0x1234, "34"), (-1, "ff")])
def test_exit_writes_its_status_byte_then_halt(status, byte):
    trace = expected_trace(program((Op.CONST, 0x45), (Op.PUTCHAR_ERR,), (Op.CONST, status), (Op.EXIT,), (Op.HALT,)))
    assert trace.tokens[-2:] == [f"x.{byte}", "halt"] and trace.tokens[5:7] == ["e.45", "c.pop"]
    assert trace.halted and trace.trap is None and trace.steps == 4
    assert (trace.exit_status, trace.errors, trace.output) == (int(byte, 16), b"E", b"")
    reference = refvm.run(program((Op.CONST, 0x45), (Op.PUTCHAR_ERR,), (Op.CONST, status), (Op.EXIT,), (Op.HALT,)))
    assert (reference.exit_status, reference.errors, reference.steps) == (int(byte, 16), b"E", 4)


# --- traps and the machine's limits -------------------------------------------------------------------

@pytest.mark.parametrize("reason", list(TrapReason))
def test_trap_instruction(reason):
    trace = expected_trace(program((Op.CONST, 5), (Op.PUTCHAR,), (Op.TRAP, reason.value), (Op.HALT,)))
    assert trace.tokens[-2:] == [f"trap.{reason.name.lower()}", "halt"]
    assert trace.trap == reason and trace.halted and trace.output == b"\x05" and trace.steps == 3


@pytest.mark.parametrize("op,width", [(Op.LOAD8_U, 1), (Op.LOAD16_S, 2), (Op.LOAD, 4),
                                      (Op.STORE8, 1), (Op.STORE16, 2), (Op.STORE, 4)])
@pytest.mark.parametrize("offset", [0, 3])
def test_out_of_bounds_at_the_memory_limit(op, width, offset):
    limit = 16
    last_fitting = limit - width - offset
    far = (1 << 32) - offset if offset else 1 << 31  # with an offset: address + offset = 2^32, which must not wrap
    for address in (last_fitting, last_fitting + 1, 0xFFFFFFFF, far):
        value = [(Op.CONST, 9)] if op.value.startswith("store") else []
        vm = program((Op.CONST, signed32(address)), *value, (op, offset), (Op.HALT,), memory_limit=limit)
        trace = assert_agrees_with_refvm(vm)
        if address == last_fitting:
            assert trace.trap is None
        else:
            assert trace.tokens[-2:] == ["trap.out_of_bounds_memory", "halt"] and trace.steps == len(value) + 2


# the calls and returns of small frame classes, beside the plain ones
CLASSED_CALLS = [op for op in MACHINE_OPS if spec(op).frame not in (None, STRIDE_FRAME)]


@pytest.mark.parametrize("call, frame_locals", [(Op.CALL, 1), (Op.CALL, 3), (Op.CALL, 1000), (Op.CALL1, 1),
                                                (Op.CALL2, 2), (Op.CALL4, 3), (Op.CALL8, 8)])
def test_call_limit_comes_from_the_words_frames_reserve(call, frame_locals):
    """Each call reserves its class's words (a plain call the stride: the largest frame), the entry frame the
    stride; the call that would pass LOCAL_WORDS or MAX_CALL_DEPTH traps instead."""
    vm = program((Op.LOCAL_GET, frame_locals - 1), (Op.DROP,), (call, 0))
    stride = max_frame_locals(vm)
    words = stride if spec(call).frame == STRIDE_FRAME else spec(call).frame
    limit = min(T.MAX_CALL_DEPTH, (T.LOCAL_WORDS - stride) // words)
    trace = assert_agrees_with_refvm(vm)
    assert trace.tokens.count(spec(call).commit.value) == limit and trace.steps == 3 * (limit + 1)
    assert trace.tokens[-2:] == ["trap.call_stack_exhausted", "halt"]


@pytest.mark.parametrize("frame", FRAME_CLASSES)
def test_a_classed_call_and_return_name_their_class(frame):
    vm = program((call_op(frame), 3), (Op.PUTCHAR,), (Op.HALT,), (Op.LOCAL_GET, frame - 1), (return_op(frame),))
    assert step_tokens(vm) == [(0, f"ph.00 pl.03 c.call{frame}".split()), (3, "v.00 v.00 v.00 v.00 c.push".split()),
                               (4, f"ph.00 pl.01 c.return{frame}".split()), (1, ["o.00", "c.pop"]),
                               (2, ["halt"])]


@pytest.mark.parametrize("push", [(Op.CONST, 1), (Op.GETCHAR,), (Op.MEMORY_SIZE, 1), (Op.LOCAL_GET, 0),
                                  (Op.GLOBAL_GET, 0)])
def test_stack_limit(push):
    vm = program(push, (Op.JUMP, 0), globals=[3])
    trace = assert_agrees_with_refvm(vm, b"abc")
    assert trace.steps == 2 * T.STACK_LIMIT + 1
    assert trace.tokens[-2:] == ["trap.call_stack_exhausted", "halt"]


@pytest.mark.parametrize("one_more_push", [False, True])
def test_value_steps_that_do_not_grow_the_stack_run_on_a_full_stack(one_more_push):
    fill = T.STACK_LIMIT - 3  # the loop leaves one zero per round; its counter needs three slots on top
    vm = program(
        (Op.CONST, 0), (Op.LOCAL_GET, 0), (Op.CONST, 1), (Op.ADD,), (Op.LOCAL_TEE, 0),  # pc 0: push 0, count
        (Op.CONST, fill), (Op.LT_U,), (Op.JUMP_IF_NONZERO, 0),
        (Op.CONST, 1), (Op.CONST, 1), (Op.CONST, 1),  # pc 8: the stack is full after these
        *([(Op.GETCHAR,)] if one_more_push else []),
        (Op.LOCAL_TEE, 0), (Op.EQZ,), (Op.LOAD8_U, 0), (Op.MEMORY_GROW, 0), (Op.ADD,), (Op.SELECT,), (Op.LOCAL_SET, 1),
        (Op.HALT,))
    machine = TraceMachine(vm, b"")
    while machine.pc != 11:
        machine.step()
    assert len(machine.stack) == T.STACK_LIMIT
    trace = assert_agrees_with_refvm(vm)
    assert trace.trap == (TrapReason.CALL_STACK_EXHAUSTED if one_more_push else None)


def test_max_new_tokens_cuts_the_trace():
    vm = every_op_program()
    full = expected_trace(vm, b"z")
    for max_new_tokens in (0, 1, 4, 5, 6, 100, len(full.tokens) - 1):
        cut = assert_agrees_with_refvm(vm, b"z", max_new_tokens=max_new_tokens)
        assert cut.tokens == full.tokens[:max_new_tokens] and not cut.halted and cut.trap is None
    assert expected_trace(vm, b"z", max_new_tokens=len(full.tokens)) == full


def test_decode_output_reads_only_output_bytes():
    assert decode_output(["v.41", "o.41", "c.pop", "m.42", "o.00", "o.ff", "i.43", "halt"]) == b"A\x00\xff"


@pytest.mark.parametrize("op", [Op.DIV_S, Op.DIV_U, Op.REM_S, Op.REM_U])
def test_division_traps_before_writing_a_byte(op):
    for a, b, reason in ((5, 0, TrapReason.DIVIDE_BY_ZERO), (-2**31, -1, TrapReason.INTEGER_OVERFLOW)):
        trace = assert_agrees_with_refvm(program((Op.CONST, a), (Op.CONST, b), (op,), (Op.HALT,)))
        if reason is TrapReason.INTEGER_OVERFLOW and op is not Op.DIV_S:
            assert trace.trap is None  # only div_s overflows; INT_MIN % -1 = 0
        else:
            assert trace.tokens[-2:] == [f"trap.{reason.name.lower()}", "halt"] and trace.steps == 3


def test_unsupported_programs_are_refused():
    with pytest.raises(ProgramError, match="at most 65536"):
        expected_trace(program((Op.HALT,)), bytes(70_000))


# --- WAT edge cases of the front-end tests ------------------------------------------------------------

def wat_module(module: str, name: str) -> str:
    pytest.importorskip("wasmtime")
    return getattr(importlib.import_module(module), name)


INSTRUCTIONS = "tests.frontend.test_instructions_oracle"
BULK = "tests.frontend.test_bulk_memory_oracle"
PAGE = 65536  # the modules' memory: one wasm page (BULK_GROWN grows to two)
# The machine's whole memory: values across bank boundaries (every 16 KiB) and at its last byte (1,152 KiB).
BANKS = """(module (memory 18)
  (data (i32.const 16382) "\\01\\02\\03\\04")
  (data (i32.const 1179644) "\\0a\\0b\\0c\\0d")
  (func (export "word") (param $a i32) (result i32) (i32.load (local.get $a)))
  (func (export "store_load") (param $a i32) (param $v i32) (result i32)
    (i32.store (local.get $a) (local.get $v))
    (i32.add (i32.load (local.get $a)) (i32.load8_u (i32.add (local.get $a) (i32.const 3))))))"""
# memory.grow to the machine's 18 pages, then one page past them: -1 here, 18 in wasm (a documented limit)
GROWING = """(module (memory 1)
  (func (export "grow_to_the_end") (result i32)
    (local $old i32)
    (local.set $old (memory.grow (i32.const 17)))
    (i32.store8 (i32.const 1179647) (i32.const 9))
    (i32.add (i32.mul (local.get $old) (i32.const 1000))
             (i32.add (i32.mul (memory.size) (i32.const 10)) (i32.load8_u (i32.const 1179647)))))
  (func (export "past_the_machine") (result i32)
    (drop (memory.grow (i32.const 17)))
    (memory.grow (i32.const 1))))"""

WAT_CASES = [  # (module, WAT source name, export, argument tuples)
    (__name__, "BANKS", "word", [(16380,), (16383,), (1048572,), (1179644,), (1179645,)]),
    (__name__, "BANKS", "store_load", [(16382, 0x11223344), (786431, -2), (1179645, 5)]),
    (__name__, "GROWING", "grow_to_the_end", [()]),
    (__name__, "GROWING", "past_the_machine", [()]),
    (INSTRUCTIONS, "MEMORY", "load8_s", [(a,) for a in range(14, 24)]),
    (INSTRUCTIONS, "MEMORY", "load16_s", [(a,) for a in range(14, 24)]),
    (INSTRUCTIONS, "MEMORY", "load16_u", [(a,) for a in range(14, 24)]),
    (INSTRUCTIONS, "MEMORY", "load", [(a,) for a in (14, 22, PAGE - 6, PAGE - 5, -1)]),
    (INSTRUCTIONS, "MEMORY", "load8_u", [(PAGE - 1,), (PAGE,)]),
    (INSTRUCTIONS, "MEMORY", "store8", [(100, v) for v in (0, 0x1234, -1, 0x80)] + [(PAGE - 1, 1)]),
    (INSTRUCTIONS, "MEMORY", "store16", [(100, v) for v in (0, -1, -0x80000000)] + [(PAGE - 2, 1)]),
    (INSTRUCTIONS, "MEMORY", "store", [(100, v) for v in (0x7F7F7F7F, -1)] + [(PAGE - 4, 1)]),
    (INSTRUCTIONS, "MEMORY", "size", [()]),
    (INSTRUCTIONS, "MEMORY", "grow0", [()]),
    ("tests.frontend.test_refvm_and_api", "MEMORY", "grow", [(0,), (1,), (2,), (-1,)]),
    (INSTRUCTIONS, "CONTROL", "nested", [(0,), (1,)]),
    (INSTRUCTIONS, "CONTROL", "br_value_discards", [(0,), (1,)]),
    (INSTRUCTIONS, "CONTROL", "return_nested", [(0,), (1,)]),
    (INSTRUCTIONS, "CONTROL", "switch", [(i,) for i in range(-1, 8)] + [(0x7FFFFFFF,), (-0x80000000,)]),
    (INSTRUCTIONS, "CONTROL", "br_table_values", [(i,) for i in range(-1, 4)]),
    (INSTRUCTIONS, "CONTROL", "loop_sum", [(0,), (1,), (100,)]),
    (INSTRUCTIONS, "CONTROL", "if_else", [(0,), (5,), (-1,)]),
    (INSTRUCTIONS, "CONTROL", "select", [(1, 2, 0), (1, 2, 1), (1, 2, -5)]),
    (INSTRUCTIONS, "CONTROL", "tee", [(0,)]),
    (INSTRUCTIONS, "CONTROL", "multi", [(5,)]),
    (INSTRUCTIONS, "CONTROL", "unreachable", [(0,), (1,)]),
    (INSTRUCTIONS, "CALLS", "indirect", [(10, 3, i) for i in range(-1, 7)]),
    (INSTRUCTIONS, "CALLS", "indirect_unary", [(10, i) for i in range(-1, 7)]),
    (INSTRUCTIONS, "CALLS", "fib", [(n,) for n in range(0, 12)]),
    (INSTRUCTIONS, "CALLS", "swap_sub", [(10, 3)]),
    (INSTRUCTIONS, "CALLS", "pair", [(-5,)]),
    (INSTRUCTIONS, "CALLS", "globals", [()]),
    (INSTRUCTIONS, "CALLS", "forever", [(1,)]),
    ("tests.frontend.test_tables_oracle", "TABLES", "call_b", [(5, i) for i in (-1, 0, 1, 2, 3, 4, 6)]),
    ("tests.frontend.test_tables_oracle", "TABLES", "other_v", [(i,) for i in (0, 1, 2, 3)]),
    # bulk memory through the helpers after memory.grow: overlapping copies both ways, across the first
    # page's end, the grown memory's end, one past it (the first call of each export, the one also run on
    # the dense engine, is the shortest)
    (BULK, "BULK_GROWN", "fill", [(0, 9, 0, 0, 1), (3, 0x1AB, 21, 0, 28), (PAGE - 3, -1, 6, PAGE - 4, PAGE + 4),
                                  (2 * PAGE - 5, -1, 5, 2 * PAGE - 8, 2 * PAGE), (2 * PAGE - 4, 7, 1 << 16, 0, 4)]),
    (BULK, "BULK_GROWN", "copy", [(1, 0, 1, 0, 1), (5, 0, 22, 0, 28), (0, 5, 22, 0, 28),
                                  (0, 2 * PAGE - 32, 32, 0, 32), (0, 2 * PAGE - 31, 1 << 16, 0, 4)]),
    (BULK, "SEGMENTS", "init", [(0, 0, 5), (10, 7, 13), (0, 21, 0), (PAGE - 6, 0, 6)]),
    (BULK, "SEGMENTS", "drop_then_init", [(0,), (1,)]),
]


@pytest.mark.wasmtime
@pytest.mark.parametrize("module,source,export,argument_tuples", WAT_CASES,
                         ids=[f"{source}.{export}" for _, source, export, _ in WAT_CASES])
def test_wat_edge_cases(module, source, export, argument_tuples):
    wat = wat_module(module, source)
    for args in argument_tuples:
        assert_agrees_with_refvm(load_program(wat, kind="wat", invoke=export, args=args))


@pytest.mark.wasmtime
@pytest.mark.parametrize("op", ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u",
                                "add", "sub"])
def test_wat_compares_and_wraparound(op):
    wat = wat_module(INSTRUCTIONS, "COMPARES")
    for a in wat_module(INSTRUCTIONS, "I32_EDGES"):
        for b in (0, 1, -1, 0x7FFFFFFF, -0x80000000, 7):
            assert_agrees_with_refvm(load_program(wat, kind="wat", invoke=op, args=(a, b)))


@pytest.mark.wasmtime
def test_wat_io_start_and_data():
    vm = load_program(wat_module(INSTRUCTIONS, "IO"), kind="wat")
    for input_bytes in (b"abcXYZ", b"", bytes(range(256))):
        assert_agrees_with_refvm(vm, input_bytes)


@pytest.mark.wasmtime
def test_wat_bitwise_ops_and_helper_subroutines():
    """The machine's bitwise ops and shifts, and the helpers (mul, div, rem, bit counts) that use many ops."""
    pytest.importorskip("wasmtime")
    from tests.frontend import test_helpers_oracle as helpers
    from tests.frontend.frontend_oracle import Call, lowered

    edges = (0, 1, -1, 7, -7, 0x8000, 0x7FFFFFFF, -0x80000000, 0x12345678)
    calls = [Call(op, (a, b)) for op in helpers.BINARY for a in edges for b in (1, -7, 3, 33, 0x10001)]
    calls += [Call(op, (a,)) for op in helpers.UNARY for a in edges]
    assert assert_agrees_with_refvm(lowered(helpers.OPS_MODULE, calls=calls)).trap is None
    for op, args, trap in [("div_s", (5, 0), TrapReason.DIVIDE_BY_ZERO),
                           ("div_s", (-(2**31), -1), TrapReason.INTEGER_OVERFLOW)]:
        assert assert_agrees_with_refvm(lowered(helpers.OPS_MODULE, calls=[Call(op, args)])).trap == trap


# --- value bytes of add/sub/compares against the reference VM, random operands ------------------------

def traced_value_bytes(op: str, args: tuple[int, ...]) -> tuple[list[str], bytes]:
    """The value tokens of the first `op` step of COMPARES' export `op`, and refvm's output (the result)."""
    vm = load_program(wat_module(INSTRUCTIONS, "COMPARES"), kind="wat", invoke=op, args=args)
    target = Op(op)
    tokens = next(tokens for pc, tokens in step_tokens(vm) if vm.instrs[pc].op is target)
    return tokens[:-1], refvm.run(vm).output


def marked_bytes(value_tokens: list[str]) -> tuple[bytes, list[bool]]:
    families = [token.split(".")[0] for token in value_tokens]
    assert len(value_tokens) == 4 and set(families) <= {"v", "vc"}
    return bytes(int(token.split(".")[1], 16) for token in value_tokens), [f == "vc" for f in families]


def low_bytes(value: int, count: int) -> int:
    return value & ((1 << 8 * count) - 1)


@pytest.mark.wasmtime
@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(["add", "sub"]), a=I32, b=I32 | st.integers(min_value=-300, max_value=300))
def test_add_sub_bytes_and_marks(op, a, b):
    tokens, result = traced_value_bytes(op, (a, b))
    value, marks = marked_bytes(tokens)
    assert value == result
    for k in range(4):  # the mark of byte k: a carry out of / a borrow from the low k+1 bytes as a whole
        a_low, b_low = low_bytes(a, k + 1), low_bytes(b, k + 1)
        assert marks[k] == (a_low + b_low >= 1 << 8 * (k + 1) if op == "add" else a_low < b_low)


@pytest.mark.wasmtime
@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]),
       operands=st.tuples(I32, I32 | st.integers(min_value=-3, max_value=3)) | I32.map(lambda a: (a, a)))
def test_compare_bytes(op, operands):
    tokens, result = traced_value_bytes(op, operands)
    value, marks = marked_bytes(tokens)
    assert value == result and value[1:] == bytes(3) and value[0] in (0, 1) and not any(marks)


# --- the C examples --------------------------------------------------------------------------------------

EXAMPLES = {  # name: (C source, max_new_tokens for the default run: None = the whole trace)
    "hello": ("hello", None),
    "long_addition": ("long_addition", None),
    "fibonacci": ("fibonacci", None),
    "hungarian": ("hungarian", None),
    "sudoku": ("sudoku", None),
    "hash_prng": ("hash_prng", None),
    "collatz": ("collatz", None),  # 1.0M steps, 4.8M tokens
    "sudoku_hard": ("sudoku", None),
}
LONG_EXAMPLES = ["collatz", "sudoku_hard"]


@pytest.fixture(scope="module")
def example_program():
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("compiling C needs the ziglang package")
    compiled: dict[str, VMProgram] = {}

    def load(source: str) -> VMProgram:
        if source not in compiled:
            compiled[source] = load_program(EXAMPLES_DIR / f"{source}.c")
        return compiled[source]
    return load


def example_input(name: str) -> bytes:
    path = EXAMPLES_DIR / f"{name}.input"
    return path.read_bytes() if path.exists() else b""


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example(name, example_program):
    source, max_new_tokens = EXAMPLES[name]
    expected = (EXAMPLES_DIR / f"{name}.expected").read_bytes()
    trace = assert_agrees_with_refvm(example_program(source), example_input(name), max_new_tokens=max_new_tokens,
                                     expected_output=expected)
    assert trace.halted == (max_new_tokens is None)


@pytest.mark.slow
@pytest.mark.parametrize("name", LONG_EXAMPLES)
def test_long_example_in_full(name, example_program):
    """The whole run, streamed step by step (without the bitwise ops, sudoku_hard's trace is 122M tokens)."""
    vm, input_bytes = example_program(EXAMPLES[name][0]), example_input(name)
    machine = TraceMachine(vm, input_bytes)
    output, commits, last = bytearray(), 0, []
    while not machine.halted:
        last = machine.step()
        for token in last:
            if token in T.OUTPUT_BYTES:
                output.append(T.OUTPUT_BYTES[token])
        commits += last[-1] in COMMITS
    reference = refvm.run(vm, input_bytes)
    assert last in (["halt"], ["x.00", "halt"]) and machine.trap is None and reference.trap is None  # exit status 0
    assert bytes(output) == reference.output == (EXAMPLES_DIR / f"{name}.expected").read_bytes()
    assert commits == reference.steps - 1 == machine.steps - 1
