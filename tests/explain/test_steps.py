"""The explain step table is read from the tokens alone and agrees with the reference VM step by step."""

from __future__ import annotations

import pytest

from tests.explain.programs import TINY_OUTPUT, TINY_WAT, WIDE_WAT
from wasmformer.explain.steps import TraceDecodeError, decode_steps, instruction_text, split_steps
from wasmformer.frontend import load_program
from wasmformer.machine.baked import specialised_prompt
from wasmformer.machine.prompt import encode_prompt
from wasmformer.machine.trace import expected_trace
from wasmformer.oracles import refvm
from wasmformer.vm.ops import MASK32
from wasmformer.vm.program import Op, TrapReason


def reference_effects(program, input_bytes: bytes = b""):
    """The reference VM run one instruction at a time (its own state and dispatch): per step the pc, the stack
    after it, the locals, globals and memory bytes it changed, and the bytes it output."""
    memory = bytearray(program.memory_limit)
    memory[:len(program.memory[:program.memory_limit])] = program.memory[:program.memory_limit]
    state = refvm._State(program, memory, [g & MASK32 for g in program.globals], input_bytes)
    state.pc, state.locals = program.entry, [0] * program.entry_locals
    state.frame_space = refvm.FrameSpace(program)
    code = [(refvm.OPS[instr.op], instr.arg) for instr in program.instrs]
    effects = []
    while not state.halted:
        pc = state.pc
        locals_before, globals_before, memory_before = list(state.locals), list(state.globals), bytes(state.memory)
        depth_before, output_before = len(state.frames), len(state.output)
        execute, argument = code[pc]
        state.pc = pc + 1
        try:
            execute(state, argument)
        except refvm.Trap as trap:
            effects.append({"pc": pc, "trap": trap.reason})
            break
        writes = set()
        if len(state.frames) == depth_before:  # a call or return swaps the locals without writing one
            writes |= {("local", i, v) for i, v in enumerate(state.locals)
                       if v != (locals_before[i] if i < len(locals_before) else 0)}
        writes |= {("global", i, v) for i, v in enumerate(state.globals) if v != globals_before[i]}
        writes |= {("memory", a, state.memory[a]) for a in range(len(memory_before))
                   if state.memory[a] != memory_before[a]}
        effects.append({"pc": pc, "stack": list(state.stack), "writes": writes,
                        "output": bytes(state.output[output_before:])})
    return effects


def decoded_stacks(run):
    stack, stacks = [], []
    for step in run.steps:
        del stack[len(stack) - len(step.popped):]
        stack += step.pushed
        stacks.append(list(stack))
    return stacks


@pytest.mark.parametrize("wat", [TINY_WAT, WIDE_WAT], ids=["tiny", "wide"])
def test_every_step_has_the_reference_vms_effects(wat):
    program = load_program(wat)
    trace = expected_trace(program)
    run = decode_steps(encode_prompt(program), trace.tokens, program)
    effects = reference_effects(program)
    assert len(run.steps) == len(effects) == trace.steps
    for step, stack, effect in zip(run.steps, decoded_stacks(run), effects):
        assert step.pc == effect["pc"] and step.problem is None, step.number
        if "trap" in effect:
            assert step.end == f"trap.{effect['trap'].name.lower()}"
            continue
        if step.end is None:
            assert stack == effect["stack"], step.number
        # a write of the value already there changes nothing the reference VM can see
        decoded = {(w.kind, w.target, w.value) for w in step.writes}
        assert effect["writes"] <= decoded, step.number
        assert step.output == effect["output"], step.number


def test_the_tiny_program_reads_as_expected():
    program = load_program(TINY_WAT)
    trace = expected_trace(program)
    run = decode_steps(encode_prompt(program), trace.tokens, program)
    texts = [step.instruction for step in run.steps]
    assert texts[0] == "call1 $main" and "call1 $square" in texts and "i32.rem_u" in texts
    assert b"".join(step.output for step in run.steps) == TINY_OUTPUT
    store = next(step for step in run.steps if step.op is Op.STORE)
    assert store.address == 16 and [w.text() for w in store.writes][:1] == ["mem[0x10]=0x09"]
    square = [step for step in run.steps if step.function == "square"]
    assert square and all(step.depth == 2 for step in square)
    assert run.steps[-1].end == "halt"
    assert run.steps[-1].stop == len(run.tokens)


def test_the_wide_program_ends_in_its_trap():
    program = load_program(WIDE_WAT)
    trace = expected_trace(program)
    assert trace.trap is TrapReason.DIVIDE_BY_ZERO
    run = decode_steps(encode_prompt(program), trace.tokens, program)
    assert run.steps[-1].end == "trap.divide_by_zero" and run.steps[-1].op is Op.DIV_U
    load = next(step for step in run.steps if step.op is Op.LOAD64)
    assert load.pushed == [1 + 3, 1]  # 0x100000001 + 0 + 1 + 2: low word first on the stack


def test_a_specialised_prompt_needs_the_program():
    program = load_program(TINY_WAT)
    trace = expected_trace(program)
    prompt = specialised_prompt(program)
    run = decode_steps(prompt, trace.tokens, program)
    assert [s.pc for s in run.steps] == [s.pc for s in decode_steps(encode_prompt(program), trace.tokens).steps]
    with pytest.raises(TraceDecodeError, match="give the program"):
        decode_steps(prompt, trace.tokens)


def test_a_cut_trace_ends_with_an_unfinished_step():
    program = load_program(TINY_WAT)
    tokens = expected_trace(program).tokens[:9]
    run = decode_steps(encode_prompt(program), tokens, program)
    assert [step.complete for step in run.steps] == [True, True, False]
    assert run.steps[-1].pushed == [] and len(split_steps(tokens)) == 3


def test_a_wrong_commit_is_reported_not_followed():
    program = load_program(TINY_WAT)
    tokens = list(expected_trace(program).tokens)
    assert tokens[7] == "c.push"  # step 2: i32.const 3
    tokens[7] = "c.pop"
    run = decode_steps(encode_prompt(program), tokens, program)
    assert "commits with c.push, but the trace has c.pop" in run.steps[1].problem


def test_instruction_text():
    assert instruction_text(Op.CONST, MASK32) == "i32.const -1"
    assert instruction_text(Op.LOAD8_U, 16) == "i32.load8_u offset=16"
    assert instruction_text(Op.JUMP_IF_NONZERO, 7) == "br_if @7"
    assert instruction_text(Op.CALL, 7 | (3 << 16), {7: "f"}) == "call $f"
    assert instruction_text(Op.TRAP, int(TrapReason.UNREACHABLE)) == "unreachable (unreachable)"
