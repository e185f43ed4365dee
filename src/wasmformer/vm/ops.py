"""Every fact about every VM instruction, one row each: the table the whole project reads.

A row says how the instruction is written (its opcode number in the prompt,
the wasm instruction it comes from, what its immediate means), what it does
to the stack (values popped and pushed), what its step writes into the trace
(the commit token, the body tokens before it, the record those tokens form),
how wide its memory access or narrowing is, the pure function that defines
its result, and how it is executed: the machine's datapath (the way the
transformer combines bytes for it) or, where the machine has none, the helper
subroutine the front end calls instead.

Readers: the front end lowers wasm through the ``wasm`` column and rewrites
ops without a datapath into calls of ``helper``; the reference VM and the
trace oracle build their dispatch from the rows; the interpreter graph groups
its ops by ``datapath``, ``source``, ``body`` and ``record``; the token
vocabulary has one opcode token per row. docs/vm-program.md says the same in
prose, docs/adding-an-instruction.md how to add a row.

Values are unsigned 32-bit words; for a binary op ``a`` is the deeper
operand and ``b`` the top. An i64 is two words on the stack, the low word
deeper; the operands of a ``wide`` row are i64s, and its value function sees
them as unsigned 64-bit integers. A value function returns the exact result
(the readers wrap it to the row's ``pushes`` words: ``apply``) or raises ``Trap``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

from wasmformer.vm.errors import Trap
from wasmformer.vm.program import Op, TrapReason

WORD_BITS = 32
MASK32 = (1 << WORD_BITS) - 1
SIGN_BIT = 1 << (WORD_BITS - 1)
WIDE_WORDS = 2  # an i64 is two words, the low one deeper on the stack
WIDE_BITS = WIDE_WORDS * WORD_BITS
MASK64 = (1 << WIDE_BITS) - 1
SIGN_BIT64 = 1 << (WIDE_BITS - 1)
VALUE_BYTES = 4  # a value is written as four little-endian byte tokens
QUOTIENT_BYTES = VALUE_BYTES  # the scratch bytes a DIVIDE step writes before its result (docs/token-language.md)


class Immediate(enum.Enum):
    """What an instruction's immediate means."""
    NONE = "none"
    VALUE = "value"  # a signed i32, pushed as is
    OFFSET = "offset"  # an unsigned static offset added to the popped address
    PAGES = "pages"  # the memory's size in 64 KiB pages
    LOCAL = "local"  # a local's index in the current frame
    GLOBAL = "global"  # a global's index
    TARGET = "target"  # an absolute pc
    TRAP = "trap"  # a TrapReason code


class Commit(enum.Enum):
    """The token that ends a step; its embedding carries the step's stack and control deltas."""
    PUSH = "c.push"  # one value more on the stack
    GETC = "c.getc"  # one value more, and one input byte consumed
    KEEP = "c.keep"  # the top value replaced (or kept)
    POP = "c.pop"  # one value less
    POP2 = "c.pop2"  # two values less
    POP3 = "c.pop3"  # three values less (an i64 comparison: two i64s in, an i32 out)
    JUMP = "c.jump"
    BRANCH = "c.branch"  # a conditional jump taken (one value less); not taken: c.pop
    # A call or return names the frame class it enters or leaves, so that the machine can count the local
    # words in use from the tokens alone (docs/machine.md, "Frames").
    CALL = "c.call"  # a frame of the program's stride (the largest frame)
    RETURN = "c.return"
    CALL1 = "c.call1"
    CALL2 = "c.call2"
    CALL4 = "c.call4"
    CALL8 = "c.call8"
    RETURN1 = "c.return1"
    RETURN2 = "c.return2"
    RETURN4 = "c.return4"
    RETURN8 = "c.return8"


# A frame reserves this many local words: a function whose locals fit in a class is called and returns with
# that class's ops; larger ones reserve the program's stride. Small classes let a small recursive function
# nest deeply whatever the size of the largest function in the program.
FRAME_CLASSES = (1, 2, 4, 8)
STRIDE_FRAME = 0  # the frame column of the plain call and return: the program's stride
CALL_COMMITS = {STRIDE_FRAME: Commit.CALL, 1: Commit.CALL1, 2: Commit.CALL2, 4: Commit.CALL4, 8: Commit.CALL8}
RETURN_COMMITS = {STRIDE_FRAME: Commit.RETURN, 1: Commit.RETURN1, 2: Commit.RETURN2, 4: Commit.RETURN4,
                  8: Commit.RETURN8}

COMMIT_STACK_DELTA = {Commit.PUSH: 1, Commit.GETC: 1, Commit.KEEP: 0, Commit.POP: -1, Commit.POP2: -2, Commit.POP3: -3,
                      Commit.JUMP: 0, Commit.BRANCH: -1, **{commit: 0 for commit in CALL_COMMITS.values()},
                      **{commit: 0 for commit in RETURN_COMMITS.values()}}


class Body(enum.Enum):
    """The tokens a step writes before its commit (docs/token-language.md)."""
    NONE = "none"  # nothing: drop, a branch not taken
    VALUE = "value"  # the four bytes of a value (v.XX, or vc.XX when a carry or borrow leaves the byte);
    # a DIVIDE step writes its quotient's four bytes (q.XX, most significant first) before them
    STORED = "stored"  # the ``width`` bytes a store writes (m.XX)
    OUTPUT = "output"  # one output byte (o.XX)
    ERROR_OUTPUT = "error output"  # one byte of the error stream (e.XX)
    EXIT_STATUS = "exit status"  # the exit status's low byte (x.XX); `halt` follows it
    TARGET = "target"  # the two bytes of the next pc (ph.XX pl.XX): a transfer of control


class Record(enum.Enum):
    """What the body tokens are to later lookups."""
    NONE = "none"
    STACK = "stack"  # the value at a stack depth
    LOCAL = "local"  # a local's value, keyed by (call depth, index)
    GLOBAL = "global"  # a global's value
    MEMORY = "memory"  # bytes at addresses
    CALL = "call"  # a frame: where it starts and where it returns to


class Datapath(enum.Enum):
    """How the machine forms an op's body bytes; each is one method of the interpreter graph."""
    COPY = "copy"  # a byte copied from the ``source`` position
    ADD = "add"  # source byte + top byte + carry
    SUB = "sub"  # source byte - top byte - borrow
    COMPARE = "compare"  # 0 or 1 in byte 0, from whole 32-bit values
    NARROW = "narrow"  # a loaded or extended byte below the width, the sign or zero fill above
    BITWISE = "bitwise"  # through the bits of two bytes
    SHIFT = "shift"  # through the bits of a two-byte window of the shifted value
    INPUT = "input"  # the next input byte, or -1 at the end of the input
    GROW = "grow"  # memory.size / memory.grow: the size in pages (before growing), or -1 when it cannot grow
    MULTIPLY = "multiply"  # a byte of second * top: column products and carries, reduced mod 256
    DIVIDE = "divide"  # quotient bytes found most significant first (scratch q.XX), then the result bytes
    BITCOUNT = "bitcount"  # clz / ctz / popcnt: a count in byte 0, from per-byte counts of the top
    BRANCH = "branch"  # a conditional jump: the target's bytes when taken, nothing otherwise
    CONTROL = "control"  # no bytes: drop, halt, trap (the commit or the end says it all)


class Source(enum.Enum):
    """Where a copying, adding or extending datapath reads its bytes."""
    NONE = "none"
    IMMEDIATE = "immediate"  # the instruction's immediate in the code
    TARGET = "target"  # the immediate's two low bytes, high first (a jump or call target)
    RETURN_PC = "return pc"  # the return pc of the current frame
    VARIABLE = "variable"  # the newest record of a local or global
    SELECTED = "selected"  # select: the second or third value, by the top
    SECOND = "second"  # the value under the top (for an i64 op: the deeper i64's word for the phase)
    TOP = "top"  # the top value
    TOP_NARROWED = "top narrowed"  # the top's byte min(phase, width - 1)
    TOP_WORD = "top word"  # the top i64's word for the phase (low at phases 0-3, high at 4-7): store64
    INPUT = "input"  # the input byte under the cursor


@dataclass(frozen=True)
class OpSpec:
    """One instruction: every fact about it."""
    op: Op
    opcode: int  # its number in the prompt's op token (> 0; 0 means "no instruction")
    wasm: str | None  # the wasm instruction lowered to exactly this op, if one is
    immediate: Immediate
    pops: int
    pushes: int
    commit: Commit | None  # None: the step ends the run (halt, trap)
    body: Body
    record: Record
    datapath: Datapath | None  # None: the machine lacks it and ``helper`` runs instead
    source: Source = Source.NONE
    width: int = VALUE_BYTES  # bytes accessed in memory, or the width a sign extension keeps
    signed: bool = False  # a narrow value is sign-extended (else zero-extended); a division's operands are signed
    value: Callable[..., int] | None = None  # the result of a pure op from its operands
    helper: str | None = None  # the helpers.wat export that computes it with basic ops
    wide: bool = False  # the operands are i64s (two words each); the result is ``pushes`` words
    frame: int | None = None  # a call or return: the local words of the frame it enters or leaves (STRIDE_FRAME:
    # the program's stride)

    @property
    def operand_words(self) -> int:
        return WIDE_WORDS if self.wide else 1

    @property
    def writes_high_word_first(self) -> bool:
        """An i64 load: its result replaces the address, which it reads at every phase, so the low word (whose
        record lands in the address's slot) comes last. Every other step writes the low word first."""
        return self.immediate is Immediate.OFFSET and self.pushes == WIDE_WORDS

    @property
    def value_bytes(self) -> int:
        """The bytes of a Body.VALUE step: four per word pushed (a step that pushes none writes one word)."""
        return VALUE_BYTES * max(1, self.pushes)


# --- value functions -----------------------------------------------------------------------------


def signed(value: int) -> int:
    """The signed reading of a 32-bit value."""
    value &= MASK32
    return value - (1 << WORD_BITS) if value & SIGN_BIT else value


def _divisor(b: int) -> int:
    if b == 0:
        raise Trap(TrapReason.DIVIDE_BY_ZERO)
    return b


def _div_s(a: int, b: int) -> int:
    _divisor(b)
    if signed(a) == -SIGN_BIT and signed(b) == -1:
        raise Trap(TrapReason.INTEGER_OVERFLOW)
    quotient = abs(signed(a)) // abs(signed(b))  # truncation toward zero
    return -quotient if (signed(a) < 0) != (signed(b) < 0) else quotient


def _rem_s(a: int, b: int) -> int:
    remainder = abs(signed(a)) % abs(signed(_divisor(b)))  # the dividend's sign
    return -remainder if signed(a) < 0 else remainder


def quotient_magnitude(a: int, b: int, is_signed: bool) -> int:
    """|a| div |b| (the operands read as signed when ``is_signed``): the bytes a DIVIDE step writes first."""
    if is_signed:
        a, b = abs(signed(a)), abs(signed(b))
    return a // b


def rotate_left(a: int, b: int) -> int:
    count = b % WORD_BITS
    return (a << count) | (a >> (WORD_BITS - count)) if count else a


def _count_trailing_zeros(a: int) -> int:
    return WORD_BITS if a == 0 else (a & -a).bit_length() - 1


def sign_extend(bits: int) -> Callable[[int], int]:
    def extend(a: int) -> int:
        low = a & ((1 << bits) - 1)
        return low - (1 << bits) if low >> (bits - 1) else low
    return extend


def signed64(value: int) -> int:
    """The signed reading of a 64-bit value."""
    value &= MASK64
    return value - (1 << WIDE_BITS) if value & SIGN_BIT64 else value


def _div_s64(a: int, b: int) -> int:
    _divisor(b)
    if signed64(a) == -SIGN_BIT64 and signed64(b) == -1:
        raise Trap(TrapReason.INTEGER_OVERFLOW)
    quotient = abs(signed64(a)) // abs(signed64(b))
    return -quotient if (signed64(a) < 0) != (signed64(b) < 0) else quotient


def _rem_s64(a: int, b: int) -> int:
    remainder = abs(signed64(a)) % abs(signed64(_divisor(b)))
    return -remainder if signed64(a) < 0 else remainder


def rotate_left64(a: int, b: int) -> int:
    count = b % WIDE_BITS
    return ((a << count) | (a >> (WIDE_BITS - count))) & MASK64 if count else a


def words_to_values(words: list[int], operand_words: int) -> list[int]:
    """Stack words (deepest first) as operand values: each ``operand_words`` words, low word first."""
    return [sum(words[i + k] << (WORD_BITS * k) for k in range(operand_words))
            for i in range(0, len(words), operand_words)]


def value_to_words(value: int, count: int) -> list[int]:
    """A result as ``count`` stack words, low word first (deepest)."""
    return [(value >> (WORD_BITS * k)) & MASK32 for k in range(count)]


def apply(row: "OpSpec", words: list[int]) -> list[int]:
    """A pure op on the popped words (deepest first): the words it pushes (raises Trap)."""
    return value_to_words(row.value(*words_to_values(words, row.operand_words)), row.pushes)


# --- the table -----------------------------------------------------------------------------------

_N, _VAL, _OFF = Immediate.NONE, Immediate.VALUE, Immediate.OFFSET
_V, _STACK = Body.VALUE, Record.STACK


def _binary(op: Op, opcode: int, datapath: Datapath | None, value, helper: str | None = None,
            source: Source = Source.NONE, is_signed: bool = False) -> OpSpec:
    """A pure op popping two values and pushing one (commit c.pop)."""
    return OpSpec(op, opcode, f"i32.{op.value}", _N, 2, 1, Commit.POP, _V, _STACK, datapath, source,
                  signed=is_signed, value=value, helper=helper)


def _unary(op: Op, opcode: int, datapath: Datapath | None, value, helper: str | None = None,
           source: Source = Source.NONE, width: int = VALUE_BYTES, is_signed: bool = False) -> OpSpec:
    """A pure op replacing the top value (commit c.keep)."""
    return OpSpec(op, opcode, f"i32.{op.value}", _N, 1, 1, Commit.KEEP, _V, _STACK, datapath, source,
                  width, is_signed, value=value, helper=helper)


def _load(op: Op, opcode: int, wasm: str, width: int, is_signed: bool, words: int = 1) -> OpSpec:
    """address -> the ``width`` bytes there, sign- or zero-extended to ``words`` words (an i64 load: 2)."""
    commit = Commit.KEEP if words == 1 else Commit.PUSH
    return OpSpec(op, opcode, wasm, _OFF, 1, words, commit, _V, _STACK, Datapath.NARROW, width=width,
                  signed=is_signed)


def _store(op: Op, opcode: int, wasm: str, width: int) -> OpSpec:
    return OpSpec(op, opcode, wasm, _OFF, 2, 0, Commit.POP2, Body.STORED, Record.MEMORY, Datapath.COPY,
                  Source.TOP, width=width)


def _binary64(op: Op, opcode: int, datapath: Datapath | None, value) -> OpSpec:
    """An i64 op popping two i64s (four words) and pushing one i64 (two words): commit c.pop2. Add and sub
    read the deeper operand's bytes from Source.SECOND (its word for the phase)."""
    source = Source.SECOND if datapath in (Datapath.ADD, Datapath.SUB) else Source.NONE
    return OpSpec(op, opcode, f"i64.{op.value.removesuffix('64')}", _N, 4, 2, Commit.POP2, _V, _STACK, datapath,
                  source, value=value, helper=op.value, wide=True)


def _unary64(op: Op, opcode: int, datapath: Datapath | None, value) -> OpSpec:
    """An i64 op replacing the top i64 (two words): commit c.keep."""
    return OpSpec(op, opcode, f"i64.{op.value.removesuffix('64')}", _N, 2, 2, Commit.KEEP, _V, _STACK, datapath,
                  value=value, helper=op.value, wide=True)


def _call(op: Op, opcode: int, frame: int) -> OpSpec:
    """A call: the target's two bytes (the call record), then the commit naming the frame class."""
    return OpSpec(op, opcode, None, Immediate.TARGET, 0, 0, CALL_COMMITS[frame], Body.TARGET, Record.CALL,
                  Datapath.COPY, Source.TARGET, frame=frame)


def _return(op: Op, opcode: int, frame: int) -> OpSpec:
    """A return: the return pc's two bytes from the frame's call record, then the commit naming the class."""
    return OpSpec(op, opcode, None, _N, 0, 0, RETURN_COMMITS[frame], Body.TARGET, Record.NONE, Datapath.COPY,
                  Source.RETURN_PC, frame=frame)


def _compare64(op: Op, opcode: int, datapath: Datapath | None, value) -> OpSpec:
    """An i64 comparison: two i64s (four words) in, an i32 out (commit c.pop3)."""
    return OpSpec(op, opcode, f"i64.{op.value.removesuffix('64')}", _N, 4, 1, Commit.POP3, _V, _STACK, datapath,
                  value=value, helper=op.value, wide=True)


_C = Datapath.COMPARE
_BITS, _SHIFT = Datapath.BITWISE, Datapath.SHIFT

OP_TABLE: tuple[OpSpec, ...] = (
    # values
    OpSpec(Op.CONST, 1, "i32.const", _VAL, 0, 1, Commit.PUSH, _V, _STACK, Datapath.COPY, Source.IMMEDIATE),
    # arithmetic
    _binary(Op.ADD, 2, Datapath.ADD, lambda a, b: a + b, source=Source.SECOND),
    _binary(Op.SUB, 3, Datapath.SUB, lambda a, b: a - b, source=Source.SECOND),
    _binary(Op.MUL, 4, Datapath.MULTIPLY, lambda a, b: a * b, helper="mul"),
    _binary(Op.DIV_S, 5, Datapath.DIVIDE, _div_s, helper="div_s", is_signed=True),
    _binary(Op.DIV_U, 6, Datapath.DIVIDE, lambda a, b: a // _divisor(b), helper="div_u"),
    _binary(Op.REM_S, 7, Datapath.DIVIDE, _rem_s, helper="rem_s", is_signed=True),
    _binary(Op.REM_U, 8, Datapath.DIVIDE, lambda a, b: a % _divisor(b), helper="rem_u"),
    # bitwise, shifts and rotations (the shift count is b mod 32)
    _binary(Op.AND, 9, _BITS, lambda a, b: a & b, helper="and"),
    _binary(Op.OR, 10, _BITS, lambda a, b: a | b, helper="or"),
    _binary(Op.XOR, 11, _BITS, lambda a, b: a ^ b, helper="xor"),
    _binary(Op.SHL, 12, _SHIFT, lambda a, b: a << (b % WORD_BITS), helper="shl"),
    _binary(Op.SHR_S, 13, _SHIFT, lambda a, b: signed(a) >> (b % WORD_BITS), helper="shr_s"),
    _binary(Op.SHR_U, 14, _SHIFT, lambda a, b: a >> (b % WORD_BITS), helper="shr_u"),
    _binary(Op.ROTL, 15, _SHIFT, rotate_left, helper="rotl"),
    _binary(Op.ROTR, 16, _SHIFT, lambda a, b: rotate_left(a, -b % WORD_BITS), helper="rotr"),
    # bit counts and sign extensions
    _unary(Op.CLZ, 17, Datapath.BITCOUNT, lambda a: WORD_BITS - a.bit_length(), helper="clz"),
    _unary(Op.CTZ, 18, Datapath.BITCOUNT, _count_trailing_zeros, helper="ctz"),
    _unary(Op.POPCNT, 19, Datapath.BITCOUNT, lambda a: bin(a).count("1"), helper="popcnt"),
    _unary(Op.EXTEND8_S, 20, Datapath.NARROW, sign_extend(8), helper="extend8_s", source=Source.TOP_NARROWED,
           width=1, is_signed=True),
    _unary(Op.EXTEND16_S, 21, Datapath.NARROW, sign_extend(16), helper="extend16_s", source=Source.TOP_NARROWED,
           width=2, is_signed=True),
    # comparisons: 0 or 1
    _unary(Op.EQZ, 22, _C, lambda a: int(a == 0)),
    _binary(Op.EQ, 23, _C, lambda a, b: int(a == b)),
    _binary(Op.NE, 24, _C, lambda a, b: int(a != b)),
    _binary(Op.LT_S, 25, _C, lambda a, b: int(signed(a) < signed(b))),
    _binary(Op.LT_U, 26, _C, lambda a, b: int(a < b)),
    _binary(Op.GT_S, 27, _C, lambda a, b: int(signed(a) > signed(b))),
    _binary(Op.GT_U, 28, _C, lambda a, b: int(a > b)),
    _binary(Op.LE_S, 29, _C, lambda a, b: int(signed(a) <= signed(b))),
    _binary(Op.LE_U, 30, _C, lambda a, b: int(a <= b)),
    _binary(Op.GE_S, 31, _C, lambda a, b: int(signed(a) >= signed(b))),
    _binary(Op.GE_U, 32, _C, lambda a, b: int(a >= b)),
    # memory: address (+ offset) -> value; address value ->
    _load(Op.LOAD8_S, 33, "i32.load8_s", 1, True),
    _load(Op.LOAD8_U, 34, "i32.load8_u", 1, False),
    _load(Op.LOAD16_S, 35, "i32.load16_s", 2, True),
    _load(Op.LOAD16_U, 36, "i32.load16_u", 2, False),
    _load(Op.LOAD, 37, "i32.load", 4, False),
    _store(Op.STORE8, 38, "i32.store8", 1),
    _store(Op.STORE16, 39, "i32.store16", 2),
    _store(Op.STORE, 40, "i32.store", 4),
    OpSpec(Op.MEMORY_SIZE, 41, None, Immediate.PAGES, 0, 1, Commit.PUSH, _V, _STACK, Datapath.GROW),
    OpSpec(Op.MEMORY_GROW, 42, None, Immediate.PAGES, 1, 1, Commit.KEEP, _V, _STACK, Datapath.GROW),
    # variables
    OpSpec(Op.LOCAL_GET, 43, "local.get", Immediate.LOCAL, 0, 1, Commit.PUSH, _V, _STACK, Datapath.COPY,
           Source.VARIABLE),
    OpSpec(Op.LOCAL_SET, 44, "local.set", Immediate.LOCAL, 1, 0, Commit.POP, _V, Record.LOCAL, Datapath.COPY,
           Source.TOP),
    OpSpec(Op.LOCAL_TEE, 45, "local.tee", Immediate.LOCAL, 1, 1, Commit.KEEP, _V, Record.LOCAL, Datapath.COPY,
           Source.TOP),
    OpSpec(Op.GLOBAL_GET, 46, "global.get", Immediate.GLOBAL, 0, 1, Commit.PUSH, _V, _STACK, Datapath.COPY,
           Source.VARIABLE),
    OpSpec(Op.GLOBAL_SET, 47, "global.set", Immediate.GLOBAL, 1, 0, Commit.POP, _V, Record.GLOBAL, Datapath.COPY,
           Source.TOP),
    # stack
    OpSpec(Op.DROP, 48, "drop", _N, 1, 0, Commit.POP, Body.NONE, Record.NONE, Datapath.CONTROL),
    OpSpec(Op.SELECT, 49, "select", _N, 3, 1, Commit.POP2, _V, _STACK, Datapath.COPY, Source.SELECTED),
    # control
    OpSpec(Op.JUMP, 50, None, Immediate.TARGET, 0, 0, Commit.JUMP, Body.TARGET, Record.NONE, Datapath.COPY,
           Source.TARGET),
    OpSpec(Op.JUMP_IF_ZERO, 51, None, Immediate.TARGET, 1, 0, Commit.POP, Body.TARGET, Record.NONE,
           Datapath.BRANCH, Source.TARGET),
    OpSpec(Op.JUMP_IF_NONZERO, 52, None, Immediate.TARGET, 1, 0, Commit.POP, Body.TARGET, Record.NONE,
           Datapath.BRANCH, Source.TARGET),
    _call(Op.CALL, 53, STRIDE_FRAME),
    _return(Op.RETURN, 54, STRIDE_FRAME),
    # input, output and the end of the run
    OpSpec(Op.PUTCHAR, 55, None, _N, 1, 0, Commit.POP, Body.OUTPUT, Record.NONE, Datapath.COPY, Source.TOP),
    OpSpec(Op.GETCHAR, 56, None, _N, 0, 1, Commit.GETC, _V, _STACK, Datapath.INPUT, Source.INPUT),
    OpSpec(Op.HALT, 57, None, _N, 0, 0, None, Body.NONE, Record.NONE, Datapath.CONTROL),
    OpSpec(Op.TRAP, 58, None, Immediate.TRAP, 0, 0, None, Body.NONE, Record.NONE, Datapath.CONTROL),
    # i64 (operands and results as two words each; the front end moves i64s with the word ops above)
    _binary64(Op.ADD64, 59, Datapath.ADD, lambda a, b: a + b),
    _binary64(Op.SUB64, 60, Datapath.SUB, lambda a, b: a - b),
    _binary64(Op.MUL64, 61, None, lambda a, b: a * b),
    _binary64(Op.DIV_S64, 62, None, _div_s64),
    _binary64(Op.DIV_U64, 63, None, lambda a, b: a // _divisor(b)),
    _binary64(Op.REM_S64, 64, None, _rem_s64),
    _binary64(Op.REM_U64, 65, None, lambda a, b: a % _divisor(b)),
    _binary64(Op.AND64, 66, _BITS, lambda a, b: a & b),
    _binary64(Op.OR64, 67, _BITS, lambda a, b: a | b),
    _binary64(Op.XOR64, 68, _BITS, lambda a, b: a ^ b),
    _binary64(Op.SHL64, 69, None, lambda a, b: a << (b % WIDE_BITS)),
    _binary64(Op.SHR_S64, 70, None, lambda a, b: signed64(a) >> (b % WIDE_BITS)),
    _binary64(Op.SHR_U64, 71, None, lambda a, b: a >> (b % WIDE_BITS)),
    _binary64(Op.ROTL64, 72, None, rotate_left64),
    _binary64(Op.ROTR64, 73, None, lambda a, b: rotate_left64(a, -b % WIDE_BITS)),
    _unary64(Op.CLZ64, 74, None, lambda a: WIDE_BITS - a.bit_length()),
    _unary64(Op.CTZ64, 75, None, lambda a: WIDE_BITS if a == 0 else (a & -a).bit_length() - 1),
    _unary64(Op.POPCNT64, 76, None, lambda a: bin(a).count("1")),
    _compare64(Op.EQ64, 77, _C, lambda a, b: int(a == b)),
    _compare64(Op.NE64, 78, _C, lambda a, b: int(a != b)),
    _compare64(Op.LT_S64, 79, _C, lambda a, b: int(signed64(a) < signed64(b))),
    _compare64(Op.LT_U64, 80, _C, lambda a, b: int(a < b)),
    _compare64(Op.GT_S64, 81, _C, lambda a, b: int(signed64(a) > signed64(b))),
    _compare64(Op.GT_U64, 82, _C, lambda a, b: int(a > b)),
    _compare64(Op.LE_S64, 83, _C, lambda a, b: int(signed64(a) <= signed64(b))),
    _compare64(Op.LE_U64, 84, _C, lambda a, b: int(a <= b)),
    _compare64(Op.GE_S64, 85, _C, lambda a, b: int(signed64(a) >= signed64(b))),
    _compare64(Op.GE_U64, 86, _C, lambda a, b: int(a >= b)),
    # an i32 sign-extended to an i64: its word, then the sign fill (the narrow datapath past width 4). Its low
    # word's record (phase 4) lands in the operand's own slot: the phases after it read the same value there
    OpSpec(Op.EXTEND_I32_S, 87, "i64.extend_i32_s", _N, 1, 2, Commit.PUSH, _V, _STACK, Datapath.NARROW,
           Source.TOP_NARROWED, width=4, signed=True, value=sign_extend(32)),
    _load(Op.LOAD64, 88, "i64.load", 8, False, WIDE_WORDS),
    _load(Op.LOAD8_S64, 89, "i64.load8_s", 1, True, WIDE_WORDS),
    _load(Op.LOAD8_U64, 90, "i64.load8_u", 1, False, WIDE_WORDS),
    _load(Op.LOAD16_S64, 91, "i64.load16_s", 2, True, WIDE_WORDS),
    _load(Op.LOAD16_U64, 92, "i64.load16_u", 2, False, WIDE_WORDS),
    _load(Op.LOAD32_S64, 93, "i64.load32_s", 4, True, WIDE_WORDS),
    _load(Op.LOAD32_U64, 94, "i64.load32_u", 4, False, WIDE_WORDS),
    # address low high ->: 8 stored bytes, the value's word for each phase (commit c.pop3)
    OpSpec(Op.STORE64, 95, "i64.store", _OFF, 3, 0, Commit.POP3, Body.STORED, Record.MEMORY, Datapath.COPY,
           Source.TOP_WORD, width=8, wide=True),
    # calls and returns of small frames (FRAME_CLASSES), chosen by the front end from the callee's locals
    _call(Op.CALL1, 96, 1), _call(Op.CALL2, 97, 2), _call(Op.CALL4, 98, 4), _call(Op.CALL8, 99, 8),
    _return(Op.RETURN1, 100, 1), _return(Op.RETURN2, 101, 2), _return(Op.RETURN4, 102, 4),
    _return(Op.RETURN8, 103, 8),
    # the error stream and the exit status (the WASI helpers write stderr and proc_exit with these)
    OpSpec(Op.PUTCHAR_ERR, 104, None, _N, 1, 0, Commit.POP, Body.ERROR_OUTPUT, Record.NONE, Datapath.COPY,
           Source.TOP),
    OpSpec(Op.EXIT, 105, None, _N, 1, 0, None, Body.EXIT_STATUS, Record.NONE, Datapath.COPY, Source.TOP),
)

SPECS: dict[Op, OpSpec] = {spec.op: spec for spec in OP_TABLE}


def spec(op: Op) -> OpSpec:
    return SPECS[op]


def ops_where(**facts) -> tuple[Op, ...]:
    """The ops whose rows have every given fact, in table order: ``ops_where(datapath=Datapath.SHIFT)``."""
    return tuple(row.op for row in OP_TABLE if all(getattr(row, name) == value for name, value in facts.items()))


def call_op(frame: int) -> Op:
    """The call op of a frame class (STRIDE_FRAME: the plain call)."""
    return next(row.op for row in OP_TABLE if row.record is Record.CALL and row.frame == frame)


def return_op(frame: int) -> Op:
    return next(row.op for row in OP_TABLE if row.source is Source.RETURN_PC and row.frame == frame)


def frame_class(words: int) -> int:
    """The frame class of a function with ``words`` local words: the smallest class that holds them, else
    STRIDE_FRAME."""
    return next((size for size in FRAME_CLASSES if words <= size), STRIDE_FRAME)


def is_call(op: Op) -> bool:
    return SPECS[op].record is Record.CALL


def stack_effect(op: Op) -> int:
    row = SPECS[op]
    return row.pushes - row.pops


def by_wasm_name() -> dict[str, OpSpec]:
    """wasm instruction name -> the row it lowers to (the ops with a one-to-one wasm instruction)."""
    return {row.wasm: row for row in OP_TABLE if row.wasm is not None}


# Ops every machine must execute: the helper library is written with these only.
BASIC_OPS: frozenset[Op] = frozenset(row.op for row in OP_TABLE if row.helper is None)
# Ops the front end can replace with a call of a helper subroutine.
REWRITABLE_OPS: frozenset[Op] = frozenset(row.op for row in OP_TABLE if row.helper is not None)
