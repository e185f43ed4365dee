"""The prompt half of the token language: a VM program and its input as tokens.

docs/token-language.md gives the layout; ``tokens.py`` its constants. Every
field sits at a position the machine can compute, so it is fetched by a lookup
keyed by position.
"""

from __future__ import annotations

from wasmformer.machine import tokens as T
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.vm.errors import ProgramError, Trap
from wasmformer.vm.ops import STRIDE_FRAME, Immediate, is_call, spec
from wasmformer.vm.program import WASM_PAGE, Instr, Op, TrapReason, VMProgram

MAX_INPUT_BYTES = 1 << 16
RETURN_PC_SHIFT = 16  # a call's immediate carries its return pc in its two high bytes


def _bytes(value: int, width: int = 4) -> list[int]:
    return list((value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))


def slot_tokens(marker: str, value: int) -> list[str]:
    """A marker or op token followed by the four bytes of value (docs/token-language.md)."""
    return [marker] + [T.byte_token("i", b) for b in _bytes(value)]


def check_input(input_bytes: bytes) -> None:
    if len(input_bytes) > MAX_INPUT_BYTES:
        raise ProgramError(f"the input has {len(input_bytes)} bytes; at most {MAX_INPUT_BYTES} are supported")


def check_program(program: VMProgram, input_bytes: bytes = b"") -> None:
    """Refuse, with a message, what the machine cannot run (before any token is generated)."""
    unsupported = sorted({instr.op.value for instr in program.instrs if instr.op not in MACHINE_OPS})
    if unsupported:
        raise ProgramError(f"the program uses {', '.join(unsupported)}, which the machine does not execute "
                            "(the front end rewrites them when asked for the machine's op set)")
    if len(program.instrs) > T.MAX_PC - 1:  # a call's return pc (pc + 1) must fit in 16 bits too
        raise ProgramError(f"the program has {len(program.instrs)} instructions; "
                            f"at most {T.MAX_PC - 1} are supported")
    if len(program.globals) > T.MAX_GLOBALS:
        raise ProgramError(f"the program has {len(program.globals)} globals; at most {T.MAX_GLOBALS} are supported")
    if program.memory_limit > T.MAX_MEMORY:
        raise ProgramError(f"the program starts with {program.memory_limit:,} bytes of memory; the machine "
                            f"addresses at most {T.MAX_MEMORY:,} ({T.MAX_PAGES} pages of {WASM_PAGE:,} bytes)")
    if program.memory_limit + program.growable_pages * WASM_PAGE > T.MAX_MEMORY or program.growable_pages < 0:
        raise ProgramError(f"memory.grow may add {program.growable_pages} pages to {program.memory_limit:,} bytes; "
                            f"the machine addresses at most {T.MAX_MEMORY:,} bytes")
    check_input(input_bytes)
    if max_frame_locals(program) > T.MAX_FRAME_WORDS:
        raise ProgramError(f"a function has {max_frame_locals(program)} locals; too many for the machine (at most "
                            f"{T.MAX_FRAME_WORDS} words per frame)")


def max_frame_locals(program: VMProgram) -> int:
    used = [instr.arg + 1 for instr in program.instrs if spec(instr.op).immediate is Immediate.LOCAL]
    return max([program.entry_locals, program.stats.get("max_frame_locals", 0), *used])


class FrameSpace:
    """The machine's limits on calls, for the reference VMs: how deep calls nest and how many local words the
    live frames reserve together (machine/tokens.py). ``enter`` raises the trap a call past them takes."""

    def __init__(self, program: VMProgram):
        self.stride = T.locals_stride(max_frame_locals(program))
        self.depth = 0  # calls nested in the entry frame, which reserves the stride
        self.words_in_use = self.stride

    def words(self, op: Op) -> int:
        frame = spec(op).frame
        return self.stride if frame == STRIDE_FRAME else frame

    def enter(self, call: Op) -> None:
        words = self.words(call)
        if self.depth >= T.MAX_CALL_DEPTH or self.words_in_use + words > T.LOCAL_WORDS:
            raise Trap(TrapReason.CALL_STACK_EXHAUSTED)
        self.depth += 1
        self.words_in_use += words

    def leave(self, ret: Op) -> None:
        """A return gives back its own class's words (the machine counts the tokens, not the frames)."""
        self.depth -= 1
        self.words_in_use -= self.words(ret)


def packed_argument(pc: int, instr: Instr) -> int:
    """The immediate as the prompt holds it: a call's carries its return pc (pc + 1) above the target."""
    argument = instr.arg & 0xFFFFFFFF
    if is_call(instr.op):  # so that `return` finds where to go in the call's own record
        argument = (instr.arg & 0xFFFF) | ((pc + 1) << RETURN_PC_SHIFT)
    return argument


def encode_prompt(program: VMProgram, input_bytes: bytes = b"") -> list[str]:
    check_program(program, input_bytes)
    frame_locals = max_frame_locals(program)
    stride = T.locals_stride(frame_locals)
    code_base = T.GLOBALS_START + T.SLOT * len(program.globals)
    code: list[str] = []
    for pc, instr in enumerate(program.instrs):
        code += slot_tokens(T.opcode_token(instr.op), packed_argument(pc, instr))
    data: list[str] = []
    for address, value in enumerate(program.memory[:program.memory_limit]):
        if value:
            data += [T.DATA_RECORD] + [T.byte_token("i", b) for b in (*_bytes(address, T.DATA_ADDRESS_BYTES), value)]
    input_start = code_base + len(code) + 1 + len(data) + 1
    header = [T.START]
    header += slot_tokens(T.ZERO, 0)
    header += slot_tokens(T.ONES, 0xFFFFFFFF)
    header += slot_tokens(T.MEMORY, program.memory_limit)
    header += slot_tokens(T.GROW, program.growable_pages)
    header += slot_tokens(T.FRAME, stride)
    header += slot_tokens(T.CODE, code_base)
    header += slot_tokens(T.INPUT, input_start)
    for value in program.globals:
        header += slot_tokens(T.GLOBAL, value)
    entry_high, entry_low = program.entry >> 8, program.entry & 0xFF
    prompt = header + code + [T.DATA] + data + [T.INPUT_BYTES]
    assert len(prompt) == input_start
    prompt += [T.byte_token("i", b) for b in input_bytes]
    return prompt + [T.byte_token("ph", entry_high), T.byte_token("pl", entry_low), T.RUN]


def layout_error(tokens: list[str]) -> str | None:
    """Why ``tokens`` is not a well-formed universal prompt (the layout encode_prompt writes), or None.

    The machine finds every field by position, so a prompt whose slots are
    shifted or whose header disagrees with its own layout would run nonsense;
    it is refused instead, naming the first token that is out of place.
    """
    reader = _LayoutReader(tokens)
    try:
        reader.read()
    except _LayoutMismatch as mismatch:
        return str(mismatch)
    return None


HEX_BYTES = {f"{value:02x}": value for value in range(256)}  # the XX of byte tokens (tokens.byte_token)


class _LayoutMismatch(Exception):
    pass


class _LayoutReader:
    """Walks a universal prompt token by token, as docs/token-language.md lays it out."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.position = tokens, 0

    def expect(self, what: str, accepts) -> str:
        token = self.tokens[self.position] if self.position < len(self.tokens) else None
        if token is None or not accepts(token):
            found = "the end of the prompt" if token is None else repr(token)
            raise _LayoutMismatch(f"token {self.position} is {found}, expected {what}")
        self.position += 1
        return token

    def byte(self, family: str = "i") -> int:
        prefix = family + "."
        token = self.expect(f"a {family}.XX byte", lambda t: t.startswith(prefix) and t[len(prefix):] in HEX_BYTES)
        return HEX_BYTES[token[len(prefix):]]

    def slot(self, marker: str, accepts=None) -> tuple[str, int]:
        name = self.expect(repr(marker), accepts or (lambda t: t == marker))
        return name, int.from_bytes(bytes(self.byte() for _ in range(4)), "little")

    def read(self) -> None:
        self.expect(repr(T.START), lambda t: t == T.START)
        header = {marker: self.slot(marker)[1] for marker in T.HEADER_SLOTS}
        while self.position < len(self.tokens) and self.tokens[self.position] == T.GLOBAL:
            self.slot(T.GLOBAL)
        self.agrees(T.CODE, header[T.CODE])
        while self.position < len(self.tokens) and self.tokens[self.position].startswith("op."):
            self.slot("an op token", lambda t: t.startswith("op."))
        self.expect(repr(T.DATA), lambda t: t == T.DATA)
        while self.position < len(self.tokens) and self.tokens[self.position] == T.DATA_RECORD:
            self.position += 1
            for _ in range(T.DATA_ADDRESS_BYTES + 1):
                self.byte()
        self.expect(repr(T.INPUT_BYTES), lambda t: t == T.INPUT_BYTES)
        self.agrees(T.INPUT, header[T.INPUT])
        while self.position < len(self.tokens) and self.tokens[self.position].startswith("i."):
            self.byte()
        self.byte("ph"), self.byte("pl")
        self.expect(repr(T.RUN), lambda t: t == T.RUN)
        if self.position != len(self.tokens):
            raise _LayoutMismatch(f"token {self.position} is {self.tokens[self.position]!r} after {T.RUN!r}, "
                                  f"which ends the prompt")

    def agrees(self, marker: str, value: int) -> None:
        if value != self.position:
            raise _LayoutMismatch(f"the header's {marker} slot says {value}, but that part starts at token "
                                  f"{self.position}")
