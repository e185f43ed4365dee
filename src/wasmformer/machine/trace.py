"""The trace half of the token language: what the model must generate after the prompt.

``expected_trace(program, input_bytes)`` runs the program on a plain
interpreter (one small function per op and a dispatch table, like the
reference VM) and writes each step's tokens exactly as docs/token-language.md
prescribes. It is a test oracle for the model: the model's generated tokens
must equal these, token for token.

The interpreter keeps the state the token language reads back from the trace
(pc, operand stack, call frames with return pcs, locals, globals, memory, input
cursor); its semantics are the reference VM's (wasmformer.oracles.refvm), with
the machine's limits (machine/tokens.py); its dispatch is built from the op
table (vm/ops.py) like the reference VM's. ``TraceMachine.step`` executes one
instruction and returns that step's tokens, so tests can watch the state
between steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from wasmformer.machine import tokens as T
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.machine.prompt import FrameSpace, check_program
from wasmformer.vm.errors import ProgramError, Trap
from wasmformer.vm.ops import (MASK32, OP_TABLE, VALUE_BYTES, Datapath, Immediate, OpSpec, Record, Source, apply,
                               quotient_magnitude, spec, value_to_words, words_to_values)
from wasmformer.vm.program import Op, TrapReason, VMProgram, grow_memory, grown_pages

# Token strings, built once: one table per byte family.
V, VC, M, O, PH, PL, Q, E, X = ([T.byte_token(family, b) for b in range(256)]
                                for family in ("v", "vc", "m", "o", "ph", "pl", "q", "e", "x"))
TRAP_TOKENS = {reason: f"trap.{reason.name.lower()}" for reason in TrapReason}
assert set(TRAP_TOKENS.values()) == set(T.TRAPS)


OpFunction = Callable[["TraceMachine", int], list[str]]


@dataclass
class TraceResult:
    tokens: list[str]  # the trace, without the prompt
    output: bytes  # the bytes of its o.XX tokens
    halted: bool  # the trace ends with `halt` (normal end or trap)
    trap: TrapReason | None  # the reason when it ended with a trap
    steps: int  # instructions whose tokens are all in the trace (the halting step included)
    errors: bytes = b""  # the bytes of its e.XX tokens (the program's stderr)
    exit_status: int | None = None  # the byte of its x.XX token (written by EXIT just before halt)


@dataclass
class TraceMachine:
    """The interpreter's state; ``step()`` runs one instruction and returns its tokens."""

    program: VMProgram
    input: bytes
    memory: bytearray = field(init=False)
    globals: list[int] = field(init=False)
    stack: list[int] = field(default_factory=list)  # unsigned 32-bit values, top last
    frames: list[tuple[int, list[int]]] = field(default_factory=list)  # (return pc, caller's locals)
    locals: list[int] = field(default_factory=list)  # the current frame's; missing entries read 0
    pc: int = 0
    input_cursor: int = 0
    frame_space: FrameSpace = field(init=False)
    halted: bool = False
    trap: TrapReason | None = None
    steps: int = 0
    _code: list[tuple[OpFunction, int]] = field(init=False, repr=False)  # decoded once, not per step

    def __post_init__(self) -> None:
        check_program(self.program, self.input)
        limit = self.program.memory_limit
        self.memory = bytearray(limit)
        initial = self.program.memory[:limit]
        self.memory[:len(initial)] = initial
        self.globals = [value & MASK32 for value in self.program.globals]
        self.pc = self.program.entry
        self.frame_space = FrameSpace(self.program)
        self._code = [(OPS[instr.op], instr.arg) for instr in self.program.instrs]

    @property
    def call_depth(self) -> int:
        return len(self.frames)

    def step(self) -> list[str]:
        """Execute the instruction at pc; return the step's tokens (ending with its commit or `halt`)."""
        if self.halted:
            raise RuntimeError("the machine has halted")
        pc = self.pc
        if not 0 <= pc < len(self._code):
            raise ProgramError(f"the program jumped to pc {pc}, outside its {len(self._code)} instructions")
        execute, arg = self._code[pc]
        self.steps += 1
        self.pc = pc + 1
        try:
            return execute(self, arg)
        except Trap as caught:
            self.pc = pc
            self.halted = True
            self.trap = caught.reason
            return [TRAP_TOKENS[caught.reason], T.HALT]

    # -- stack and variables, with the machine's limits --

    def pop(self) -> int:
        return self.stack.pop()

    def check_room_for_push(self) -> None:
        """A step that grows the stack traps before writing anything when the stack is full."""
        if len(self.stack) >= T.STACK_LIMIT:
            raise Trap(TrapReason.CALL_STACK_EXHAUSTED)

    def local(self, index: int) -> int:
        return self.locals[index] if index < len(self.locals) else 0

    def set_local(self, index: int, value: int) -> None:
        if index >= len(self.locals):
            self.locals.extend([0] * (index + 1 - len(self.locals)))
        self.locals[index] = value


def expected_trace(program: VMProgram, input_bytes: bytes = b"", max_new_tokens: int | None = None) -> TraceResult:
    """The tokens the model must generate after ``encode_prompt(program, input_bytes)``.

    The trace ends with `halt` (a trap: `trap.REASON halt`). With ``max_new_tokens``
    it stops after that many tokens, possibly inside a step.
    """
    machine = TraceMachine(program, bytes(input_bytes))
    trace: list[str] = []
    complete_steps = 0
    while not machine.halted and (max_new_tokens is None or len(trace) < max_new_tokens):
        step_tokens = machine.step()
        if max_new_tokens is not None and len(trace) + len(step_tokens) > max_new_tokens:
            trace += step_tokens[:max_new_tokens - len(trace)]
            break
        trace += step_tokens
        complete_steps += 1
    halted = bool(trace) and trace[-1] == T.HALT
    return TraceResult(tokens=trace, output=decode_output(trace), halted=halted,
                       trap=machine.trap if halted else None, steps=complete_steps,
                       errors=bytes(T.ERROR_BYTES[token] for token in trace if token in T.ERROR_BYTES),
                       exit_status=next((T.EXIT_STATUS_BYTES[token] for token in trace
                                         if token in T.EXIT_STATUS_BYTES), None))


def decode_output(trace: Iterable[str]) -> bytes:
    """The program's output: the bytes of the trace's o.XX tokens."""
    return bytes(T.OUTPUT_BYTES[token] for token in trace if token in T.OUTPUT_BYTES)


# --- token helpers ---------------------------------------------------------------------------------


def value_tokens(value: int) -> list[str]:
    """A 32-bit value as four plain result bytes, low first."""
    return [V[value & 0xFF], V[(value >> 8) & 0xFF], V[(value >> 16) & 0xFF], V[(value >> 24) & 0xFF]]


def add_tokens(a: int, b: int, length: int = VALUE_BYTES) -> list[str]:
    """The ``length`` bytes of a + b, each marked vc when it carries out (carry-in: the previous byte's mark)."""
    out, carry = [], 0
    for k in range(length):
        total = ((a >> 8 * k) & 0xFF) + ((b >> 8 * k) & 0xFF) + carry
        carry = int(total > 0xFF)
        out.append((VC if carry else V)[total & 0xFF])
    return out


def sub_tokens(a: int, b: int, length: int = VALUE_BYTES) -> list[str]:
    """The ``length`` bytes of a - b, each marked vc when it borrows (borrow-in: the previous byte's mark)."""
    out, borrow = [], 0
    for k in range(length):
        difference = ((a >> 8 * k) & 0xFF) - ((b >> 8 * k) & 0xFF) - borrow
        borrow = int(difference < 0)
        out.append((VC if borrow else V)[difference & 0xFF])
    return out


def quotient_tokens(magnitude: int) -> list[str]:
    """A division's scratch bytes: the quotient of the magnitudes, most significant byte first."""
    return [Q[(magnitude >> 8 * k) & 0xFF] for k in reversed(range(VALUE_BYTES))]


def target_tokens(target: int, commit: str) -> list[str]:
    """A transfer: the target pc's high byte, its low byte, then the commit."""
    return [PH[target >> 8], PL[target & 0xFF], commit]


# --- ops: each takes the machine and the immediate, updates the state, returns the step's tokens ---

def _push_op(read: Callable[[TraceMachine, int], int], commit: str = "c.push") -> OpFunction:
    """A step that pushes one new value (const, local_get, global_get, memory_size)."""
    def op(machine: TraceMachine, arg: int) -> list[str]:
        machine.check_room_for_push()
        value = read(machine, arg) & MASK32
        machine.stack.append(value)
        return value_tokens(value) + [commit]
    return op


def _getchar(machine: TraceMachine, arg: int) -> list[str]:
    machine.check_room_for_push()
    if machine.input_cursor < len(machine.input):
        value = machine.input[machine.input_cursor]
    else:
        value = MASK32  # -1: the end of the input (the cursor still advances: it counts c.getc)
    machine.input_cursor += 1
    machine.stack.append(value)
    return value_tokens(value) + ["c.getc"]


# How a pure op's result bytes are written: add and sub mark their carries and borrows.
_VALUE_TOKENS = {Datapath.ADD: add_tokens, Datapath.SUB: sub_tokens}


def _pure(row: OpSpec) -> OpFunction:
    """Pop the row's operands, push its value, write the value's bytes (carry-marked for add/sub) and commit."""
    count, commit = row.pops, row.commit.value
    write = _VALUE_TOKENS.get(row.datapath)
    divides, is_signed = row.datapath is Datapath.DIVIDE, row.signed

    def op(machine: TraceMachine, arg: int) -> list[str]:
        if row.pushes > row.pops:
            machine.check_room_for_push()
        operands = machine.stack[-count:]
        del machine.stack[-count:]
        results = apply(row, operands)  # a trap (division by zero, overflow) raises before any token
        machine.stack += results
        scratch = quotient_tokens(quotient_magnitude(*operands, is_signed)) if divides else []
        if write:
            body = write(*words_to_values(operands, row.operand_words), row.value_bytes)
        else:
            body = [token for word in results for token in value_tokens(word)]
        return scratch + body + [commit]
    return op


def _effective_address(machine: TraceMachine, offset: int, width: int) -> int:
    """Pop the address; trap when any of the ``width`` bytes at address + offset is past the memory's end."""
    address = machine.pop() + offset
    if address + width > len(machine.memory):
        raise Trap(TrapReason.OUT_OF_BOUNDS_MEMORY)
    return address


def _load(row: OpSpec) -> OpFunction:
    width, is_signed, words, commit = row.width, row.signed, row.pushes, row.commit.value
    written = reversed if row.writes_high_word_first else list  # the order its words' bytes are written

    def op(machine: TraceMachine, arg: int) -> list[str]:
        if words > 1:
            machine.check_room_for_push()
        address = _effective_address(machine, arg, width)
        value = int.from_bytes(machine.memory[address:address + width], "little", signed=is_signed)
        results = value_to_words(value, words)
        machine.stack += results
        return [token for word in written(results) for token in value_tokens(word)] + [commit]
    return op


def _store(row: OpSpec) -> OpFunction:
    width, value_words, commit = row.width, row.pops - 1, row.commit.value

    def op(machine: TraceMachine, arg: int) -> list[str]:
        (value,) = words_to_values([machine.pop() for _ in range(value_words)][::-1], value_words)
        address = _effective_address(machine, arg, width)
        stored = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
        machine.memory[address:address + width] = stored
        return [M[b] for b in stored] + [commit]
    return op


def _memory_grow(machine: TraceMachine, arg: int) -> list[str]:
    """The size before (the immediate is the initial size in pages), or -1 past the growable pages."""
    size_before = grow_memory(machine.program, machine.memory, arg, machine.pop())
    result = MASK32 if size_before is None else size_before
    machine.stack.append(result)
    return value_tokens(result) + ["c.keep"]


def _local_set(machine: TraceMachine, arg: int) -> list[str]:
    value = machine.pop()
    machine.set_local(arg, value)
    return value_tokens(value) + ["c.pop"]


def _local_tee(machine: TraceMachine, arg: int) -> list[str]:
    value = machine.stack[-1]
    machine.set_local(arg, value)
    return value_tokens(value) + ["c.keep"]


def _global_set(machine: TraceMachine, arg: int) -> list[str]:
    value = machine.pop()
    machine.globals[arg] = value
    return value_tokens(value) + ["c.pop"]


def _drop(machine: TraceMachine, arg: int) -> list[str]:
    machine.pop()
    return ["c.pop"]


def _select(machine: TraceMachine, arg: int) -> list[str]:
    condition, second, first = machine.pop(), machine.pop(), machine.pop()
    chosen = first if condition else second
    machine.stack.append(chosen)
    return value_tokens(chosen) + ["c.pop2"]


def _jump(machine: TraceMachine, arg: int) -> list[str]:
    machine.pc = arg
    return target_tokens(arg, "c.jump")


def _branch_if(taken_when_zero: bool) -> OpFunction:
    def op(machine: TraceMachine, arg: int) -> list[str]:
        condition = machine.pop()
        if (condition == 0) == taken_when_zero:
            machine.pc = arg
            return target_tokens(arg, "c.branch")
        return ["c.pop"]
    return op


def _call(op: Op) -> OpFunction:
    def call(machine: TraceMachine, arg: int) -> list[str]:
        machine.frame_space.enter(op)
        target = arg & 0xFFFF  # the prompt packs the return pc above it; the program's arg is the target
        machine.frames.append((machine.pc, machine.locals))
        machine.locals = []  # a fresh frame: every local reads 0
        machine.pc = target
        return target_tokens(target, spec(op).commit.value)
    return call


def _return(op: Op) -> OpFunction:
    def ret(machine: TraceMachine, arg: int) -> list[str]:
        if not machine.frames:
            raise ProgramError(f"RETURN at pc {machine.pc - 1} with no caller (a malformed program)")
        machine.frame_space.leave(op)
        machine.pc, machine.locals = machine.frames.pop()
        return target_tokens(machine.pc, spec(op).commit.value)
    return ret


def _putchar(machine: TraceMachine, arg: int) -> list[str]:
    return [O[machine.pop() & 0xFF], "c.pop"]


def _putchar_err(machine: TraceMachine, arg: int) -> list[str]:
    return [E[machine.pop() & 0xFF], "c.pop"]


def _exit(machine: TraceMachine, arg: int) -> list[str]:
    machine.pc -= 1
    machine.halted = True
    return [X[machine.pop() & 0xFF], T.HALT]


def _halt(machine: TraceMachine, arg: int) -> list[str]:
    machine.pc -= 1
    machine.halted = True
    return [T.HALT]


def _trap(machine: TraceMachine, arg: int) -> list[str]:
    raise Trap(TrapReason(arg))


# The ops that are neither pure nor plain memory accesses: one function each.
_STATEFUL: dict[Op, OpFunction] = {
    Op.CONST: _push_op(lambda machine, arg: arg),
    Op.LOCAL_GET: _push_op(lambda machine, arg: machine.local(arg)),
    Op.GLOBAL_GET: _push_op(lambda machine, arg: machine.globals[arg]),
    Op.MEMORY_SIZE: _push_op(lambda machine, arg: arg + grown_pages(machine.program, machine.memory)),
    Op.GETCHAR: _getchar,
    Op.MEMORY_GROW: _memory_grow,
    Op.LOCAL_SET: _local_set,
    Op.LOCAL_TEE: _local_tee,
    Op.GLOBAL_SET: _global_set,
    Op.DROP: _drop,
    Op.SELECT: _select,
    Op.JUMP: _jump,
    Op.JUMP_IF_ZERO: _branch_if(taken_when_zero=True),
    Op.JUMP_IF_NONZERO: _branch_if(taken_when_zero=False),
    **{row.op: _call(row.op) for row in OP_TABLE if row.record is Record.CALL},
    **{row.op: _return(row.op) for row in OP_TABLE if row.source is Source.RETURN_PC},
    Op.PUTCHAR: _putchar,
    Op.PUTCHAR_ERR: _putchar_err,
    Op.EXIT: _exit,
    Op.HALT: _halt,
    Op.TRAP: _trap,
}


def _definition(row: OpSpec) -> OpFunction:
    if row.value is not None:
        return _pure(row)
    if row.immediate is Immediate.OFFSET:
        return _load(row) if row.pushes else _store(row)
    return _STATEFUL[row.op]


# Only the ops the machine executes: a program with any other op is refused by check_program.
OPS: dict[Op, OpFunction] = {row.op: _definition(row) for row in OP_TABLE if row.op in MACHINE_OPS}
