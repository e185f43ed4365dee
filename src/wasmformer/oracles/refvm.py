"""The reference VM: a plain interpreter of VMProgram that defines its semantics.

Its dispatch is built from the op table (vm/ops.py): every pure op runs its
row's value function, loads and stores follow their row's width and sign, and
the rest (variables, control, I/O) have one small function each. It is a test
oracle: the transformer must produce exactly the output it produces.
docs/vm-program.md describes the same semantics in prose.

State: pc, one operand stack of i32 values (stored as Python ints in
[0, 2^32)), a call stack of (return pc, locals) frames whose locals start at
zero, the globals, the linear memory window, the input cursor and the output.
A trap ends the run with its reason; it is a result, not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import FrameSpace, check_input
from wasmformer.vm.errors import ProgramError, Trap
from wasmformer.vm.ops import (MASK32, OP_TABLE, Immediate, OpSpec, Record, Source, apply, signed, value_to_words,
                               words_to_values)
from wasmformer.vm.program import Op, TrapReason, VMProgram, grow_memory, grown_pages

# Deepest call nesting, local words and operand stack: the machine keys frames by call depth, locals by the
# words in use and stack slots by index, and bounded keys keep its lookups exact; runaway recursion becomes a
# clean trap (assert_exhaustion in the spec tests). The limits are the machine's (machine/tokens.py,
# prompt.FrameSpace), so both trap at the same step.
FAILED_GROW = MASK32  # memory.grow returns -1 when it cannot grow


@dataclass
class RefResult:
    output: bytes
    steps: int  # executed instructions (HALT and a trapping instruction included)
    halted: bool  # ran to HALT or a trap (False: stopped at max_steps)
    trap: TrapReason | None
    helper_steps: int  # how many of the steps ran inside helper subroutines
    trap_pc: int | None = None
    trap_address: int | None = None  # for OUT_OF_BOUNDS_MEMORY: the effective address
    failed_grows: int = 0  # memory.grow calls that returned -1 with a nonzero delta
    stack: list[int] = field(default_factory=list)  # the operand stack at the end (signed)
    errors: bytes = b""  # the error stream (PUTCHAR_ERR: the program's stderr)
    exit_status: int | None = None  # EXIT's status (its low byte); None when the run ended otherwise


@dataclass
class _State:
    program: VMProgram
    memory: bytearray
    globals: list[int]
    input: bytes
    stack: list[int] = field(default_factory=list)
    frames: list[tuple[int, list[int]]] = field(default_factory=list)  # (return pc, caller's locals)
    locals: list[int] = field(default_factory=list)
    pc: int = 0
    input_position: int = 0
    output: bytearray = field(default_factory=bytearray)
    errors: bytearray = field(default_factory=bytearray)
    exit_status: int | None = None
    halted: bool = False
    failed_grows: int = 0
    frame_space: FrameSpace | None = None

    def pop(self) -> int:
        return self.stack.pop()

    def push(self, value: int) -> None:
        if len(self.stack) >= T.STACK_LIMIT:
            raise Trap(TrapReason.CALL_STACK_EXHAUSTED)
        self.stack.append(value & MASK32)

    def local(self, index: int) -> int:
        return self.locals[index] if index < len(self.locals) else 0

    def set_local(self, index: int, value: int) -> None:
        if index >= len(self.locals):
            self.locals.extend([0] * (index + 1 - len(self.locals)))
        self.locals[index] = value


def run(program: VMProgram, input_bytes: bytes = b"", max_steps: int | None = None) -> RefResult:
    check_input(input_bytes)
    memory = bytearray(program.memory_limit)
    initial = program.memory[:program.memory_limit]
    memory[:len(initial)] = initial
    state = _State(program, memory, [g & MASK32 for g in program.globals], bytes(input_bytes))
    state.pc = program.entry
    state.locals = [0] * program.entry_locals
    state.frame_space = FrameSpace(program)
    helper_start, helper_end = program.stats.get("helper_pcs", (0, 0))
    code = [(OPS[instr.op], instr.arg) for instr in program.instrs]  # decoded once, not per step
    step_limit = float("inf") if max_steps is None else max_steps
    steps = helper_steps = 0
    trap = None
    while not state.halted and steps < step_limit:
        pc = state.pc
        if not 0 <= pc < len(code):
            raise ProgramError(f"the program jumped to pc {pc}, outside its {len(code)} instructions")
        execute, arg = code[pc]
        steps += 1
        if helper_start <= pc < helper_end:
            helper_steps += 1
        state.pc = pc + 1
        try:
            execute(state, arg)
        except Trap as caught:
            trap = caught
            state.halted = True
            state.pc = pc
    return RefResult(output=bytes(state.output), steps=steps, halted=state.halted,
                     trap=trap.reason if trap else None, helper_steps=helper_steps,
                     trap_pc=state.pc if trap else None, trap_address=trap.address if trap else None,
                     failed_grows=state.failed_grows, stack=[signed(v) for v in state.stack],
                     errors=bytes(state.errors), exit_status=state.exit_status)


# --- ops: each takes the state and the instruction's immediate ---------------------------------


def _pure(row: OpSpec):
    """Pop the row's operands (the top last in the argument list), push its value function's result."""
    count = row.pops

    def op(state: _State, arg: int) -> None:
        operands = state.stack[-count:]
        del state.stack[-count:]
        for word in apply(row, operands):
            state.push(word)
    return op


def _effective_address(state: _State, offset: int, width: int) -> int:
    address = state.pop() + offset
    if address + width > len(state.memory):  # the memory as grown so far
        raise Trap(TrapReason.OUT_OF_BOUNDS_MEMORY, address)
    return address


def _load(row: OpSpec):
    width, is_signed, words = row.width, row.signed, row.pushes

    def op(state: _State, arg: int) -> None:
        address = _effective_address(state, arg, width)
        value = int.from_bytes(state.memory[address:address + width], "little", signed=is_signed)
        for word in value_to_words(value, words):
            state.push(word)
    return op


def _store(row: OpSpec):
    width, value_words = row.width, row.pops - 1

    def op(state: _State, arg: int) -> None:
        (value,) = words_to_values([state.pop() for _ in range(value_words)][::-1], value_words)
        address = _effective_address(state, arg, width)
        state.memory[address:address + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    return op


def _memory_size(state: _State, arg: int) -> None:
    state.push(arg + grown_pages(state.program, state.memory))  # the immediate: the initial size in pages


def _memory_grow(state: _State, arg: int) -> None:
    size_before = grow_memory(state.program, state.memory, arg, state.pop())
    if size_before is None:
        state.failed_grows += 1
    state.push(FAILED_GROW if size_before is None else size_before)


def _local_get(state: _State, arg: int) -> None:
    state.push(state.local(arg))


def _local_set(state: _State, arg: int) -> None:
    state.set_local(arg, state.pop())


def _local_tee(state: _State, arg: int) -> None:
    state.set_local(arg, state.stack[-1])


def _global_get(state: _State, arg: int) -> None:
    state.push(state.globals[arg])


def _global_set(state: _State, arg: int) -> None:
    state.globals[arg] = state.pop()


def _drop(state: _State, arg: int) -> None:
    state.pop()


def _select(state: _State, arg: int) -> None:
    condition = state.pop()
    second = state.pop()
    first = state.pop()
    state.push(first if condition else second)


def _jump(state: _State, arg: int) -> None:
    state.pc = arg


def _jump_if_zero(state: _State, arg: int) -> None:
    if state.pop() == 0:
        state.pc = arg


def _jump_if_nonzero(state: _State, arg: int) -> None:
    if state.pop() != 0:
        state.pc = arg


def _call(op: Op):
    def call(state: _State, arg: int) -> None:
        state.frame_space.enter(op)
        state.frames.append((state.pc, state.locals))
        state.locals = []  # a fresh frame: every local reads as zero
        state.pc = arg
    return call


def _return(op: Op):
    def ret(state: _State, arg: int) -> None:
        if not state.frames:
            raise ProgramError(f"RETURN at pc {state.pc - 1} with no caller (a malformed program)")
        state.frame_space.leave(op)
        state.pc, state.locals = state.frames.pop()
    return ret


def _putchar(state: _State, arg: int) -> None:
    state.output.append(state.pop() & 0xFF)


def _putchar_err(state: _State, arg: int) -> None:
    state.errors.append(state.pop() & 0xFF)


def _exit(state: _State, arg: int) -> None:
    state.exit_status = state.pop() & 0xFF
    state.halted = True
    state.pc -= 1


def _getchar(state: _State, arg: int) -> None:
    if state.input_position < len(state.input):
        state.push(state.input[state.input_position])
        state.input_position += 1
    else:
        state.push(-1)


def _halt(state: _State, arg: int) -> None:
    state.halted = True
    state.pc -= 1


def _trap(state: _State, arg: int) -> None:
    raise Trap(TrapReason(arg))


def _const(state: _State, arg: int) -> None:
    state.push(arg)


# The ops that are neither pure nor plain memory accesses: one function each.
_STATEFUL = {
    Op.CONST: _const,
    Op.MEMORY_SIZE: _memory_size,
    Op.MEMORY_GROW: _memory_grow,
    Op.LOCAL_GET: _local_get,
    Op.LOCAL_SET: _local_set,
    Op.LOCAL_TEE: _local_tee,
    Op.GLOBAL_GET: _global_get,
    Op.GLOBAL_SET: _global_set,
    Op.DROP: _drop,
    Op.SELECT: _select,
    Op.JUMP: _jump,
    Op.JUMP_IF_ZERO: _jump_if_zero,
    Op.JUMP_IF_NONZERO: _jump_if_nonzero,
    **{row.op: _call(row.op) for row in OP_TABLE if row.record is Record.CALL},
    **{row.op: _return(row.op) for row in OP_TABLE if row.source is Source.RETURN_PC},
    Op.PUTCHAR: _putchar,
    Op.GETCHAR: _getchar,
    Op.PUTCHAR_ERR: _putchar_err,
    Op.EXIT: _exit,
    Op.HALT: _halt,
    Op.TRAP: _trap,
}


def _definition(row: OpSpec):
    if row.value is not None:
        return _pure(row)
    if row.immediate is Immediate.OFFSET:
        return _load(row) if row.pushes else _store(row)
    return _STATEFUL[row.op]


OPS = {row.op: _definition(row) for row in OP_TABLE}
