"""The VM steps of a run, decoded from its tokens alone.

A run is a prompt and the tokens the model generated after it
(docs/token-language.md). The prompt holds the program (a universal prompt:
one op slot per pc) or the program is baked into the model (a specialised
prompt: the code comes from the ``VMProgram`` the model was built from); the
generated tokens hold every state change. ``decode_steps`` reads them the way
the machine itself does: the pc from the newest transfer commit, the stack
from the commits and the value bytes, a store's address from the stack
record below its value, and so on. Nothing here executes an instruction:
every pushed value, written variable and stored byte is read off a token, so
a model that generated a wrong token shows the wrong value here, and a commit
that does not fit the instruction is reported as the step's ``problem``.

The program (when given) only labels what the tokens say: function names and
wasm instruction numbers from ``VMProgram.origins``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property

from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import RETURN_PC_SHIFT, max_frame_locals
from wasmformer.vm.ops import MASK32, VALUE_BYTES, Body, Commit, Immediate, OpSpec, signed, spec
from wasmformer.vm.program import Op, VMProgram

TARGET_MASK = 0xFFFF  # a call's immediate: the target in the low 16 bits, the return pc above them
OP_PREFIX = "op."
# token families of a step's body (docs/token-language.md)
VALUE_FAMILIES = ("v", "vc")
STORED, OUTPUT, ERROR_OUTPUT, EXIT_STATUS, TARGET_HIGH, TARGET_LOW = "m", "o", "e", "x", "ph", "pl"  # (q.XX: scratch)
TRAP_PREFIX = "trap."
UNIVERSAL, SPECIALISED = "universal", "specialised"


class TraceDecodeError(ValueError):
    """Tokens that are not a run of the machine (a prompt of another layout, an unknown op token)."""


@dataclass(frozen=True)
class Write:
    """A variable or memory write: ``kind`` is local, global or memory; ``target`` the index or address."""

    kind: str
    target: int
    value: int  # a word (local, global) or a byte (memory)
    frame: int = 0  # a local's frame: the call depth it belongs to

    def text(self) -> str:
        if self.kind == "memory":
            return f"mem[{self.target:#x}]={self.value:#04x}"
        return f"{self.kind}[{self.target}]={signed(self.value)}"

    def as_dict(self) -> dict:
        record = {"kind": self.kind, "target": self.target, "value": self.value}
        if self.kind == "local":
            record["frame"] = self.frame
        return record


@dataclass
class Step:
    """One VM instruction as the tokens tell it."""

    number: int  # 1 for the first instruction executed (the reference VM's step count after it)
    start: int  # position of the step's first token in the whole sequence (prompt + trace)
    tokens: list[str]
    pc: int
    op: Op | None  # None: the pc holds no instruction (a broken run)
    argument: int  # the immediate as the prompt holds it (a call's packs its return pc)
    depth: int  # call depth before the step (0: the entry frame)
    stack_before: int  # values on the stack before the step
    function: str | None = None
    wasm_index: int | None = None  # the wasm instruction of the function it was lowered from
    pushed: list[int] = field(default_factory=list)  # words pushed, deepest first
    popped: list[int] = field(default_factory=list)  # words popped, deepest first
    writes: list[Write] = field(default_factory=list)
    output: bytes = b""
    errors: bytes = b""
    exit_status: int | None = None
    address: int | None = None  # a load's or store's effective address
    transfer: int | None = None  # the next pc when the step transfers control (jump, branch taken, call, return)
    end: str | None = None  # "halt" or the trap token when the step ends the run
    complete: bool = True  # False: the trace stops inside this step
    problem: str | None = None  # a commit or body that does not fit the instruction
    function_at: dict[int, str] = field(default_factory=dict, repr=False)  # entry pc -> name, for call labels

    @property
    def stop(self) -> int:
        """Position after the step's last token."""
        return self.start + len(self.tokens)

    @property
    def instruction(self) -> str:
        return instruction_text(self.op, self.argument, self.function_at)

    def as_dict(self) -> dict:
        return {
            "step": self.number, "start": self.start, "stop": self.stop, "tokens": self.tokens, "pc": self.pc,
            "function": self.function, "wasm_index": self.wasm_index,
            "op": self.op.value if self.op else None, "instruction": self.instruction,
            "depth": self.depth, "stack_before": self.stack_before,
            "pushed": self.pushed, "popped": self.popped, "writes": [write.as_dict() for write in self.writes],
            "output": self.output.decode("latin-1"), "errors": self.errors.decode("latin-1"),
            "exit_status": self.exit_status, "address": self.address, "transfer": self.transfer,
            "end": self.end, "complete": self.complete, "problem": self.problem,
        }


@dataclass(frozen=True)
class Code:
    """The program as the decoder needs it: per pc the op and the immediate, and the layout facts."""

    ops: list[Op]
    arguments: list[int]
    stride: int  # local words of the entry frame and of a plain call's frame
    kind: str  # UNIVERSAL or SPECIALISED: where the code came from
    program: VMProgram | None = None

    def function(self, pc: int) -> tuple[str | None, int | None]:
        """The function ``pc`` belongs to and its wasm instruction number (None: no label known).

        The front end attributes most pcs (``VMProgram.origins``); a function's
        prologue (the pcs that pop its arguments into locals) sits before its
        first attributed pc, so an unattributed pc takes the name of the
        function entered at or before it.
        """
        if self.program is None:
            return None, None
        if pc in self.program.origins:
            return self.program.origins[pc]
        starts = list(self._entries)
        before = bisect.bisect_right(starts, pc)
        return (self._entries[starts[before - 1]], None) if before else (None, None)

    def entry_names(self) -> dict[int, str]:
        """Function name per call target (the function's first pc)."""
        return self._entries

    @cached_property
    def _entries(self) -> dict[int, str]:
        if self.program is None:
            return {}
        origins = self.program.origins
        attributed = sorted(origins)
        entries: dict[int, str] = {}
        for op, argument in zip(self.ops, self.arguments):
            if spec(op).commit is not None and spec(op).commit.value in T.CALL_COMMITS:
                target = argument & TARGET_MASK
                at = bisect.bisect_left(attributed, target)
                if at < len(attributed):
                    entries[target] = origins[attributed[at]][0]
        return dict(sorted(entries.items()))


@dataclass
class Run:
    """The decoded run: its steps and where the trace starts."""

    code: Code
    prompt: list[str]
    trace: list[str]
    steps: list[Step]

    @property
    def tokens(self) -> list[str]:
        return self.prompt + self.trace

    def step_at(self, position: int) -> Step | None:
        """The step whose tokens include ``position`` (None for a prompt position)."""
        for step in self.steps:
            if step.start <= position < step.stop:
                return step
        return None

    def step_of_position(self) -> dict[int, int]:
        return {position: step.number for step in self.steps for position in range(step.start, step.stop)}


# --- the code ------------------------------------------------------------------------------------

_OP_OF_TOKEN = {T.opcode_token(op): op for op in Op}


def _byte(token: str) -> int:
    try:
        return int(token.split(".", 1)[1], 16)
    except (IndexError, ValueError):
        raise TraceDecodeError(f"{token!r} is not a byte token") from None


def _slot_value(tokens: list[str], last: int) -> int:
    """The 32-bit value of the slot whose last byte is at ``last``."""
    return sum(_byte(tokens[last - 3 + k]) << (8 * k) for k in range(VALUE_BYTES))


def code_from_prompt(prompt: list[str], program: VMProgram | None = None) -> Code:
    """The code a run executes: from a universal prompt's op slots, or a specialised run's ``program``."""
    from wasmformer.machine.purpose import prompt_layout

    layout = prompt_layout(prompt)
    if layout == SPECIALISED:
        if program is None:
            raise TraceDecodeError("a specialised prompt holds no program: give the program it was built for")
        return Code([instr.op for instr in program.instrs],
                    [_packed(pc, instr.op, instr.arg) for pc, instr in enumerate(program.instrs)],
                    T.locals_stride(max_frame_locals(program)), SPECIALISED, program)
    if layout != UNIVERSAL:
        raise TraceDecodeError("not a prompt of the WebAssembly machine (neither the universal nor the "
                               "specialised layout)")
    code_base = _slot_value(prompt, T.header_value_position(T.CODE))
    stride = _slot_value(prompt, T.header_value_position(T.FRAME))
    ops, arguments = [], []
    position = code_base
    while position + T.SLOT <= len(prompt) and prompt[position].startswith(OP_PREFIX):
        op = _OP_OF_TOKEN.get(prompt[position])
        if op is None:
            raise TraceDecodeError(f"prompt token {position} ({prompt[position]!r}) is not an op of the machine")
        ops.append(op)
        arguments.append(_slot_value(prompt, position + T.SLOT - 1))
        position += T.SLOT
    if program is not None and [instr.op for instr in program.instrs] != ops:
        program = None  # the labels would name another program's functions
    return Code(ops, arguments, stride, UNIVERSAL, program)


def _packed(pc: int, op: Op, argument: int) -> int:
    if spec(op).commit is not None and spec(op).commit.value in T.CALL_COMMITS:
        return (argument & TARGET_MASK) | ((pc + 1) << RETURN_PC_SHIFT)
    return argument & MASK32


def entry_pc(prompt: list[str]) -> int:
    """The entry pc: the prompt's last three tokens are ``ph.HH pl.LL <run>``."""
    if len(prompt) < 3 or prompt[-1] != T.RUN:
        raise TraceDecodeError(f"the prompt does not end with {T.RUN!r}")
    return 256 * _byte(prompt[-3]) + _byte(prompt[-2])


# --- the instruction as text ---------------------------------------------------------------------

_CONTROL_NAMES = {Op.JUMP: "br", Op.JUMP_IF_ZERO: "br_if_zero", Op.JUMP_IF_NONZERO: "br_if",
                  Op.MEMORY_SIZE: "memory.size", Op.MEMORY_GROW: "memory.grow"}


def instruction_text(op: Op | None, argument: int, function_at: dict[int, str] | None = None) -> str:
    """The instruction in WAT-like text: ``i32.add``, ``local.get 2``, ``i32.load8_u offset=16``,
    ``call $fib``, ``br @12``."""
    if op is None:
        return "(no instruction)"
    row = spec(op)
    name = row.wasm or _CONTROL_NAMES.get(op) or op.value
    immediate = row.immediate
    if immediate is Immediate.VALUE:
        return f"{name} {signed(argument)}"
    if immediate in (Immediate.LOCAL, Immediate.GLOBAL):
        return f"{name} {argument}"
    if immediate is Immediate.OFFSET:
        return f"{name} offset={argument}" if argument else name
    if immediate is Immediate.TARGET:
        target = argument & TARGET_MASK
        if row.commit is not None and row.commit.value in T.CALL_COMMITS:
            label = (function_at or {}).get(target)
            return f"{name} ${label}" if label else f"{name} @{target}"
        return f"{name} @{target}"
    if immediate is Immediate.TRAP:
        from wasmformer.vm.program import TrapReason

        try:
            return f"unreachable ({TrapReason(argument).name.lower()})"
        except ValueError:
            return f"trap {argument}"
    return name


# --- decoding ------------------------------------------------------------------------------------


def _family(token: str) -> str:
    return token.split(".", 1)[0] if "." in token else ""


def _word(byte_values: list[int]) -> int:
    return sum(value << (8 * k) for k, value in enumerate(byte_values))


def split_steps(trace: list[str]) -> list[list[str]]:
    """The trace cut after every commit and after ``halt``; the last group may be an unfinished step."""
    groups, current = [], []
    for token in trace:
        current.append(token)
        if token in _COMMIT_TOKENS or token == T.HALT:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


_COMMIT_TOKENS = frozenset(T.COMMITS)


@dataclass
class _Machine:
    """What the tokens say so far: the pc, the stack's values, the frames (as calls minus returns)."""

    pc: int
    stack: list[int] = field(default_factory=list)
    depth: int = 0


def decode_steps(prompt: list[str], trace: list[str], program: VMProgram | None = None) -> Run:
    """Every step of the run, in order, from the prompt and the generated tokens."""
    code = code_from_prompt(prompt, program)
    machine = _Machine(pc=entry_pc(prompt))
    names = code.entry_names()
    steps = []
    position = len(prompt)
    for number, tokens in enumerate(split_steps(trace), start=1):
        step = _decode_step(code, machine, number, position, tokens)
        step.function_at = names
        steps.append(step)
        position += len(tokens)
    return Run(code, list(prompt), list(trace), steps)


def _decode_step(code: Code, machine: _Machine, number: int, start: int, tokens: list[str]) -> Step:
    pc = machine.pc
    op = code.ops[pc] if 0 <= pc < len(code.ops) else None
    argument = code.arguments[pc] if op is not None else 0
    function, wasm_index = code.function(pc)
    step = Step(number, start, tokens, pc, op, argument, machine.depth, len(machine.stack), function, wasm_index)
    last = tokens[-1]
    step.complete = last in _COMMIT_TOKENS or last == T.HALT
    trap = next((token for token in tokens if token.startswith(TRAP_PREFIX)), None)
    if last == T.HALT:
        step.end = trap or T.HALT
    if op is None:
        step.problem = f"pc {pc} holds no instruction (the program has {len(code.ops)})"
        return step
    row = spec(op)
    body = _Body(tokens)
    step.output, step.errors = bytes(body.bytes_of(OUTPUT)), bytes(body.bytes_of(ERROR_OUTPUT))
    exit_bytes = body.bytes_of(EXIT_STATUS)
    step.exit_status = exit_bytes[0] if exit_bytes else None
    if trap is not None or not step.complete:
        return step  # a trap changes nothing; an unfinished step has not committed
    commit = last if last in _COMMIT_TOKENS else None
    step.problem = _commit_problem(row, commit, body)
    if step.problem is not None:
        return step
    _apply(step, row, body, commit, machine, code)
    return step


class _Body:
    """A step's tokens by family."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens

    def bytes_of(self, *families: str) -> list[int]:
        return [_byte(token) for token in self.tokens if _family(token) in families]


def _commit_problem(row: OpSpec, commit: str | None, body: _Body) -> str | None:
    """Why the step's commit cannot end this instruction (None when it fits)."""
    expected = row.commit.value if row.commit is not None else None
    if row.body is Body.TARGET and row.commit is Commit.POP:  # a conditional jump: taken or not
        allowed = {Commit.POP.value, Commit.BRANCH.value}
    else:
        allowed = {expected}
    if commit not in allowed:
        found = commit or T.HALT
        wanted = " or ".join(sorted(str(item) for item in allowed if item)) or T.HALT
        return f"{row.op.value} commits with {wanted}, but the trace has {found}"
    if row.body is Body.VALUE:
        count = len(body.bytes_of(*VALUE_FAMILIES))
        if count != row.value_bytes:
            return f"{row.op.value} writes {row.value_bytes} value bytes, but the trace has {count}"
    return None


def _apply(step: Step, row: OpSpec, body: _Body, commit: str | None, machine: _Machine, code: Code) -> None:
    """The step's effects, read from its tokens, and the state after it."""
    stack = machine.stack
    pops = row.pops  # a conditional jump pops its condition whether taken (c.branch) or not (c.pop)
    if len(stack) < pops:
        step.problem = f"{row.op.value} pops {pops} values, but the tokens put only {len(stack)} on the stack"
        return
    step.popped = stack[len(stack) - pops:] if pops else []
    if row.immediate is Immediate.OFFSET:
        address_slot = len(stack) - pops  # the address is the deepest operand of a load or store
        step.address = (stack[address_slot] + step.argument) & MASK32
    pushed: list[int] = []
    if row.body is Body.VALUE:
        values = body.bytes_of(*VALUE_FAMILIES)
        words = [_word(values[k:k + VALUE_BYTES]) for k in range(0, len(values), VALUE_BYTES)]
        if row.writes_high_word_first:
            words.reverse()
        if row.pushes:
            pushed = words
        if row.op in (Op.LOCAL_SET, Op.LOCAL_TEE):
            step.writes.append(Write("local", step.argument, words[0], machine.depth))
        elif row.op is Op.GLOBAL_SET:
            step.writes.append(Write("global", step.argument, words[0]))
    elif row.body is Body.STORED:
        stored = body.bytes_of(STORED)
        step.writes.extend(Write("memory", (step.address + k) & MASK32, value) for k, value in enumerate(stored))
    del stack[len(stack) - pops:]
    stack.extend(pushed)
    step.pushed = pushed
    machine.pc = step.pc + 1
    if row.body is Body.TARGET and commit != Commit.POP.value:
        target = body.bytes_of(TARGET_HIGH, TARGET_LOW)
        if len(target) == 2:
            step.transfer = 256 * target[0] + target[1]
            machine.pc = step.transfer
        if commit in T.CALL_COMMITS:
            machine.depth += 1
        elif commit in T.RETURN_COMMITS:
            machine.depth -= 1
