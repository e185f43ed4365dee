"""The trace is self-sufficient: the machine state can be read back from tokens alone.

docs/token-language.md says how the machine reads its state (the table "how it
is read" and the three kinds of records). ``TraceReader`` follows exactly those
rules over the prompt and the trace, and after every step its readings must
equal the state of the interpreter that wrote the trace (machine/trace.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wasmformer.frontend import Instr, Op, VMProgram, load_program
from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import encode_prompt
from wasmformer.machine.trace import TraceMachine
from wasmformer.vm.ops import STRIDE_FRAME, Source, spec

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

VARIABLE_WRITERS = (Op.LOCAL_SET, Op.LOCAL_TEE, Op.GLOBAL_SET)
RETURNS = tuple(op for op in Op if spec(op).source is Source.RETURN_PC)
STORE_WIDTHS = {Op.STORE8: 1, Op.STORE16: 2, Op.STORE: 4, Op.STORE64: 8}


def byte_of(token: str) -> int:
    return int(token.split(".")[1], 16)


class TraceReader:
    """Reads pc, stack depth, call depth, input cursor and every value back from the tokens."""

    def __init__(self, prompt: list[str]):
        self.tokens = list(prompt)
        self.memory_limit, self.growable_pages, self.stride, self.code_base, self.input_start = (
            self.value_at(T.header_value_position(marker))
            for marker in (T.MEMORY, T.GROW, T.FRAME, T.CODE, T.INPUT))
        self.grown_pages = 0  # from the newest grow record
        self.stack_records: dict[int, int] = {}  # key -> position of the newest record
        self.variable_records: dict[int, int] = {}
        self.memory_records: dict[int, int] = {}
        self.call_records: dict[int, tuple[int, int]] = {}  # depth -> (position, pc of the call)
        self.read_prompt_records()
        run = len(prompt) - 1
        assert prompt[run] == T.RUN
        self.call_records[0] = (run, -1)
        self.newest_transfer, self.commits_since_transfer = run, 0
        self.sp = self.depth = self.getc_count = 0
        self.words_in_use = self.stride  # the entry frame's

    def read_prompt_records(self) -> None:
        position, index = T.GLOBALS_START, 0
        while self.tokens[position] == T.GLOBAL:  # a global slot: a variable record at its last byte
            self.variable_records[T.global_key(index)] = position + T.SLOT - 1
            position, index = position + T.SLOT, index + 1
        assert position == self.code_base
        data = self.tokens.index(T.DATA, self.code_base)
        position = data + 1
        while self.tokens[position] == T.DATA_RECORD:  # d A0 A1 A2 V: a memory record at the value byte
            address_bytes = self.tokens[position + 1:position + 1 + T.DATA_ADDRESS_BYTES]
            address = int.from_bytes(bytes(byte_of(token) for token in address_bytes), "little")
            self.memory_records[address] = position + 1 + T.DATA_ADDRESS_BYTES
            position += 2 + T.DATA_ADDRESS_BYTES
        assert self.tokens[position] == T.INPUT_BYTES and position + 1 == self.input_start

    # -- readings --

    def value_at(self, last_byte: int) -> int:
        """The 32-bit value of the four byte tokens ending at ``last_byte``."""
        return int.from_bytes(bytes(byte_of(t) for t in self.tokens[last_byte - 3:last_byte + 1]), "little")

    @property
    def pc(self) -> int:
        transfer = self.newest_transfer
        target = byte_of(self.tokens[transfer - 2]) << 8 | byte_of(self.tokens[transfer - 1])
        return target + self.commits_since_transfer

    def instruction(self, pc: int) -> tuple[str, int]:
        position = self.code_base + T.SLOT * pc
        return self.tokens[position], self.value_at(position + 4)

    def stack_slot(self, slot: int) -> int:
        return self.value_at(self.stack_records[slot])

    def local(self, index: int) -> int:
        record = self.variable_records.get(T.local_key(self.words_in_use, index))
        frame_start = self.call_records[self.depth][0]
        return 0 if record is None or record < frame_start else self.value_at(record)

    def global_value(self, index: int) -> int:
        return self.value_at(self.variable_records[T.global_key(index)])

    @property
    def memory_bytes(self) -> int:
        return self.memory_limit + T.WASM_PAGE * self.grown_pages

    def memory_byte(self, address: int) -> int:
        record = self.memory_records.get(address)
        return 0 if record is None else byte_of(self.tokens[record])

    def input_byte(self) -> int | None:
        """The byte at the input cursor; None past the end (there the token is not an input byte)."""
        token = self.tokens[self.input_start + self.getc_count]
        return byte_of(token) if token.startswith("i.") else None

    # -- one step --

    def read_step(self, step: list[str]) -> None:
        pc = self.pc
        op_token, immediate = self.instruction(pc)
        op = Op(op_token[len("op."):])
        if op is Op.MEMORY_GROW and step[0] != "v.ff":  # a grow record: the pages grown after it
            self.grown_pages = byte_of(step[0]) - immediate + self.stack_slot(self.sp)  # the delta, before the step
        start = len(self.tokens)
        self.tokens += step
        commit = step[-1]
        if commit == T.HALT:
            return
        assert commit in T.COMMITS
        sp_after = self.sp + T.STACK_DELTA.get(commit, 0)
        scratch = sum(token.startswith("q.") for token in step)  # a division's quotient bytes precede its value
        if op in VARIABLE_WRITERS:
            key = T.global_key(immediate) if op is Op.GLOBAL_SET else T.local_key(self.words_in_use, immediate)
            self.variable_records[key] = start + 3
        elif step[scratch].startswith(("v.", "vc.")):
            if spec(op).pushes == 2:  # an i64 result: a record per word (docs/token-language.md)
                high_first = spec(op).writes_high_word_first
                self.stack_records[sp_after - (0 if high_first else 1)] = start + scratch + 3
                self.stack_records[sp_after - (1 if high_first else 0)] = start + scratch + 7
            else:
                self.stack_records[sp_after] = start + scratch + 3
        elif op in STORE_WIDTHS:
            address = self.stack_slot(self.sp - (spec(op).pops - 1)) + immediate  # under the value's words
            for k in range(STORE_WIDTHS[op]):
                self.memory_records[address + k] = start + k
        if op is Op.GETCHAR:
            expected = self.input_byte()
            assert self.value_at(start + 3) == (0xFFFFFFFF if expected is None else expected)
        if op in RETURNS:
            call_pc = self.call_records[self.depth][1]
            assert self.pc_of_transfer(start + 2) == self.instruction(call_pc)[1] >> 16  # copied from the prompt
        self.commit(commit, start + len(step) - 1, pc)
        self.sp = sp_after

    def frame_words(self, frame: int) -> int:
        return self.stride if frame == STRIDE_FRAME else frame

    def pc_of_transfer(self, commit_position: int) -> int:
        return byte_of(self.tokens[commit_position - 2]) << 8 | byte_of(self.tokens[commit_position - 1])

    def commit(self, commit: str, position: int, pc: int) -> None:
        self.getc_count += commit == "c.getc"
        if commit in T.CALL_COMMITS:
            self.depth += 1
            self.words_in_use += self.frame_words(T.CALL_COMMITS[commit])
            self.call_records[self.depth] = (position - 1, pc)  # the step's pl.LL token
        elif commit in T.RETURN_COMMITS:
            self.depth -= 1
            self.words_in_use -= self.frame_words(T.RETURN_COMMITS[commit])
        if commit in T.TRANSFER_COMMITS:
            self.newest_transfer, self.commits_since_transfer = position, 0
        else:
            self.commits_since_transfer += 1


def assert_readable(vm: VMProgram, input_bytes: bytes = b"", check_memory_every: int = 1000) -> None:
    """Run the interpreter; after each step the reader's readings equal its state."""
    prompt = encode_prompt(vm, input_bytes)
    reader, machine = TraceReader(prompt), TraceMachine(vm, input_bytes)
    assert (reader.memory_limit, reader.stride) == (vm.memory_limit, machine.frame_space.stride)
    while True:
        assert reader.instruction(machine.pc)[0] == T.opcode_token(vm.instrs[machine.pc].op)
        reader.read_step(machine.step())
        if machine.halted:
            break
        assert (reader.pc, reader.sp, reader.depth, reader.getc_count, reader.memory_bytes, reader.words_in_use) == \
            (machine.pc, len(machine.stack), machine.call_depth, machine.input_cursor, len(machine.memory),
             machine.frame_space.words_in_use)
        if machine.stack:
            assert reader.stack_slot(reader.sp) == machine.stack[-1]
        assert [reader.local(i) for i in range(reader.stride)] == [machine.local(i) for i in range(reader.stride)]
        assert [reader.global_value(g) for g in range(len(vm.globals))] == machine.globals
        if machine.steps % check_memory_every == 0:
            assert_same_memory(reader, machine)
    if machine.trap is None:
        assert [reader.stack_slot(slot) for slot in range(1, reader.sp + 1)] == machine.stack
        assert_same_memory(reader, machine)


def assert_same_memory(reader: TraceReader, machine: TraceMachine) -> None:
    assert bytes(reader.memory_byte(a) for a in range(reader.memory_bytes)) == machine.memory


def program(*instrs, **fields) -> VMProgram:
    fields = {"entry": 0, "entry_locals": 0, "globals": [], "memory": b"", "memory_limit": 16} | fields
    return VMProgram(instrs=[Instr(*i) for i in instrs], **fields)


def test_every_op_program():
    from tests.machine.test_trace import every_op_program

    assert_readable(every_op_program(), b"z", check_memory_every=1)


def test_recursion_reads_fresh_frames_and_returns_to_the_caller():
    """f(n) = n ? f(n - 1) + n : 0 with a local per frame, and a second call at the same depth."""
    f = 20
    vm = program(
        (Op.CONST, 4), (Op.CALL, f), (Op.CONST, 2), (Op.CALL, f), (Op.ADD,), (Op.PUTCHAR,), (Op.HALT,),
        *[(Op.HALT,)] * (f - 7),
        (Op.LOCAL_GET, 1), (Op.DROP,), (Op.LOCAL_TEE, 0), (Op.JUMP_IF_ZERO, f + 13),  # pc f: n = pop
        (Op.LOCAL_GET, 0), (Op.CONST, 1), (Op.SUB,), (Op.CALL, f),
        (Op.LOCAL_GET, 0), (Op.ADD,), (Op.LOCAL_SET, 1), (Op.LOCAL_GET, 1), (Op.RETURN,),
        (Op.CONST, 0), (Op.RETURN,),
        globals=[7, -1], memory=bytes([0, 3, 0, 9]))
    assert_readable(vm, check_memory_every=1)


def test_memory_records_from_the_prompt_and_stores():
    vm = program((Op.CONST, 1), (Op.LOAD, 0), (Op.PUTCHAR,), (Op.CONST, 2), (Op.CONST, -1), (Op.STORE16, 0),
                 (Op.CONST, 0), (Op.LOAD, 0), (Op.GLOBAL_SET, 0), (Op.GETCHAR,), (Op.GETCHAR,), (Op.GETCHAR,),
                 (Op.HALT,), globals=[5], memory=bytes([1, 2, 0, 4, 5]) + bytes(20), memory_limit=8)
    assert_readable(vm, b"xy", check_memory_every=1)


def wat(name: str) -> str:
    pytest.importorskip("wasmtime")
    from tests.frontend import test_instructions_oracle

    return getattr(test_instructions_oracle, name)


@pytest.mark.wasmtime
@pytest.mark.parametrize("source,export,args", [
    ("CALLS", "fib", (9,)), ("CALLS", "indirect", (10, 3, 1)), ("CALLS", "globals", ()), ("CALLS", "forever", (1,)),
    ("CONTROL", "br_table_values", (2,)), ("CONTROL", "tee", (0,)), ("CONTROL", "select", (1, 2, 0)),
    ("MEMORY", "store16", (100, -1)), ("MEMORY", "load", (-1,)),
])
def test_wat_programs(source, export, args):
    assert_readable(load_program(wat(source), kind="wat", invoke=export, args=args))


@pytest.mark.wasmtime
def test_wat_input_and_output():
    assert_readable(load_program(wat("IO"), kind="wat"), b"Hi!")


@pytest.mark.parametrize("name", ["hello", "long_addition"])
def test_examples(name):
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("compiling C needs the ziglang package")
    input_path = EXAMPLES_DIR / f"{name}.input"
    input_bytes = input_path.read_bytes() if input_path.exists() else b""
    assert_readable(load_program(EXAMPLES_DIR / f"{name}.c"), input_bytes, check_memory_every=20_000)
