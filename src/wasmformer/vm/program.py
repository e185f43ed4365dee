"""The VM program: what the front end produces and the machine executes.

A flat list of instructions over one i32 operand stack, per-call frames of
locals, globals, and a small byte-addressed linear memory. Structured control
flow is already turned into absolute jumps; every instruction has at most one
i32 immediate. vm/ops.py holds every fact about each op (one row per op),
docs/vm-program.md the same in prose; the reference VM
(wasmformer.oracles.refvm) executes them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Op(enum.Enum):
    # value: pushes the immediate
    CONST = "const"
    # arithmetic and comparisons on i32 (wrap-around, two's complement)
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV_S = "div_s"
    DIV_U = "div_u"
    REM_S = "rem_s"
    REM_U = "rem_u"
    AND = "and"
    OR = "or"
    XOR = "xor"
    SHL = "shl"
    SHR_S = "shr_s"
    SHR_U = "shr_u"
    ROTL = "rotl"
    ROTR = "rotr"
    CLZ = "clz"
    CTZ = "ctz"
    POPCNT = "popcnt"
    EXTEND8_S = "extend8_s"
    EXTEND16_S = "extend16_s"
    EQZ = "eqz"
    EQ = "eq"
    NE = "ne"
    LT_S = "lt_s"
    LT_U = "lt_u"
    GT_S = "gt_s"
    GT_U = "gt_u"
    LE_S = "le_s"
    LE_U = "le_u"
    GE_S = "ge_s"
    GE_U = "ge_u"
    # memory: immediate = static offset added to the popped address
    LOAD8_S = "load8_s"
    LOAD8_U = "load8_u"
    LOAD16_S = "load16_s"
    LOAD16_U = "load16_u"
    LOAD = "load"
    STORE8 = "store8"
    STORE16 = "store16"
    STORE = "store"
    MEMORY_SIZE = "memory_size"
    MEMORY_GROW = "memory_grow"
    # variables: immediate = index
    LOCAL_GET = "local_get"
    LOCAL_SET = "local_set"
    LOCAL_TEE = "local_tee"
    GLOBAL_GET = "global_get"
    GLOBAL_SET = "global_set"
    # stack
    DROP = "drop"
    SELECT = "select"
    # control: immediate = absolute target pc
    JUMP = "jump"
    JUMP_IF_ZERO = "jump_if_zero"
    JUMP_IF_NONZERO = "jump_if_nonzero"
    CALL = "call"  # a call whose frame reserves the program's stride of local words (the largest frame)
    RETURN = "return"
    # input/output and the end of the run
    PUTCHAR = "putchar"  # pops a value, outputs its low byte
    GETCHAR = "getchar"  # pushes the next input byte, or -1 when the input is exhausted
    HALT = "halt"
    TRAP = "trap"  # immediate = a TrapReason code
    # i64: every value is two words on the stack (low word deeper), every operand of these ops an i64
    ADD64 = "add64"
    SUB64 = "sub64"
    MUL64 = "mul64"
    DIV_S64 = "div_s64"
    DIV_U64 = "div_u64"
    REM_S64 = "rem_s64"
    REM_U64 = "rem_u64"
    AND64 = "and64"
    OR64 = "or64"
    XOR64 = "xor64"
    SHL64 = "shl64"
    SHR_S64 = "shr_s64"
    SHR_U64 = "shr_u64"
    ROTL64 = "rotl64"
    ROTR64 = "rotr64"
    CLZ64 = "clz64"
    CTZ64 = "ctz64"
    POPCNT64 = "popcnt64"
    EQ64 = "eq64"
    NE64 = "ne64"
    LT_S64 = "lt_s64"
    LT_U64 = "lt_u64"
    GT_S64 = "gt_s64"
    GT_U64 = "gt_u64"
    LE_S64 = "le_s64"
    LE_U64 = "le_u64"
    GE_S64 = "ge_s64"
    GE_U64 = "ge_u64"
    EXTEND_I32_S = "extend_i32_s"  # an i32 sign-extended to an i64 (two words)
    # i64 memory: loads (address -> low high, written high word first) and the whole-i64 store
    LOAD64 = "load64"
    LOAD8_S64 = "load8_s64"
    LOAD8_U64 = "load8_u64"
    LOAD16_S64 = "load16_s64"
    LOAD16_U64 = "load16_u64"
    LOAD32_S64 = "load32_s64"
    LOAD32_U64 = "load32_u64"
    STORE64 = "store64"
    # calls and returns of functions whose frames reserve a fixed small number of words (ops.FRAME_CLASSES)
    CALL1 = "call1"
    CALL2 = "call2"
    CALL4 = "call4"
    CALL8 = "call8"
    RETURN1 = "return1"
    RETURN2 = "return2"
    RETURN4 = "return4"
    RETURN8 = "return8"
    # the program's second output stream and its exit status (the WASI helpers' primitives)
    PUTCHAR_ERR = "putchar_err"  # pops a value, writes its low byte to the error stream (stderr)
    EXIT = "exit"  # pops the exit status and ends the run (its low byte is the status)


class TrapReason(enum.IntEnum):
    UNREACHABLE = 0
    DIVIDE_BY_ZERO = 1
    INTEGER_OVERFLOW = 2
    OUT_OF_BOUNDS_MEMORY = 3
    INDIRECT_CALL = 4  # call_indirect to a bad index or signature
    CALL_STACK_EXHAUSTED = 5
    UNSUPPORTED = 6  # an instruction the machine cannot execute was reached
    INVALID_CONVERSION = 7  # a float -> integer truncation of a NaN


# What each reason is called in the wasm spec scripts and in wasmtime's trap messages. wasmtime tells the
# three call_indirect failures apart; the machine has one reason for them (docs/vm-program.md), so its
# message names all three.
TRAP_DESCRIPTIONS = {
    TrapReason.UNREACHABLE: "unreachable (wasm: the unreachable instruction executed)",
    TrapReason.DIVIDE_BY_ZERO: "integer divide by zero",
    TrapReason.INTEGER_OVERFLOW: "integer overflow",
    TrapReason.OUT_OF_BOUNDS_MEMORY: "out of bounds memory access",
    TrapReason.INDIRECT_CALL: ("undefined element, uninitialized element or indirect call type mismatch "
                               "(call_indirect: index out of the table, null slot, or another signature)"),
    TrapReason.CALL_STACK_EXHAUSTED: "call stack exhausted",
    TrapReason.UNSUPPORTED: "an instruction the machine does not execute was reached",
    TrapReason.INVALID_CONVERSION: "invalid conversion to integer",
}


def trap_message(token: str) -> str:
    """A trap token (``trap.<reason>``) with wasm's words for it, e.g. ``trap.divide_by_zero: integer divide by zero``."""
    reason = TrapReason.__members__.get(token.removeprefix("trap.").upper())
    return f"{token}: {TRAP_DESCRIPTIONS[reason]}" if reason is not None else token


@dataclass(frozen=True)
class Instr:
    op: Op
    arg: int = 0

    def __str__(self) -> str:
        return f"{self.op.value} {self.arg}" if self.arg or self.op in _SHOWS_ARG else self.op.value


_SHOWS_ARG = {Op.CONST, Op.LOCAL_GET, Op.LOCAL_SET, Op.LOCAL_TEE, Op.GLOBAL_GET, Op.GLOBAL_SET,
              Op.JUMP, Op.JUMP_IF_ZERO, Op.JUMP_IF_NONZERO, Op.CALL, Op.CALL1, Op.CALL2, Op.CALL4,
              Op.CALL8, Op.TRAP}


WASM_PAGE = 65536  # bytes in a WebAssembly memory page: memory.size and memory.grow count these


@dataclass
class VMProgram:
    """A whole program ready for the machine.

    ``memory`` is the initial content of linear memory from address 0 (data
    segments applied, zeros elsewhere); ``memory_limit`` is the number of
    addressable bytes at the start; ``memory.grow`` may add up to
    ``growable_pages`` pages of WASM_PAGE bytes above it. Execution starts at pc ``entry`` with an empty stack and
    a frame of ``entry_locals`` zeroed locals.
    """

    instrs: list[Instr]
    entry: int
    entry_locals: int
    globals: list[int]
    memory: bytes
    memory_limit: int
    name: str = "program"
    growable_pages: int = 0
    # pc -> (function name, index of the wasm instruction it came from), for messages
    origins: dict[int, tuple[str, int]] = field(default_factory=dict)
    # what lowering added: {"rewritten_ops": {...}, "helper_instructions": n, ...}
    stats: dict = field(default_factory=dict)

    def unsupported_at(self, pc: int) -> str:
        """The instruction the front end lowered to TRAP UNSUPPORTED at ``pc`` (stats["unsupported"]), and
        where: ``f64.add in function main (instruction 12)``."""
        function, position = self.origins.get(pc, ("?", -1))
        name = self.stats.get("unsupported", {}).get(origin_key(function, position), "an unsupported instruction")
        return f"{name} in function {function} (instruction {position})"


def grown_pages(program: VMProgram, memory: bytearray) -> int:
    """How many pages memory.grow has added to a program's memory (for the reference VMs)."""
    return (len(memory) - program.memory_limit) // WASM_PAGE


def grow_memory(program: VMProgram, memory: bytearray, initial_pages: int, delta: int) -> int | None:
    """memory.grow for the reference VMs: extend ``memory`` by ``delta`` zero pages and return the size in
    pages before, or None (wasm's -1) when the pages grown would pass ``program.growable_pages``."""
    grown = grown_pages(program, memory)
    if grown + delta > program.growable_pages:
        return None
    memory.extend(bytes(delta * WASM_PAGE))
    return initial_pages + grown


def origin_key(function: str, position: int) -> str:
    """How stats name a wasm instruction: ``function#position``."""
    return f"{function}#{position}"
