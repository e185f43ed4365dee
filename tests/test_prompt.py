"""The prompt half of the token language (docs/token-language.md, machine/prompt.py)."""

import pytest

from wasmformer.vm.program import Instr, Op, VMProgram
from wasmformer.machine import prompt
from wasmformer.machine import tokens as T
from wasmformer.machine.prompt import MAX_INPUT_BYTES, check_program, encode_prompt, max_frame_locals
from wasmformer.vm.errors import ProgramError

ENTRY = 300
CALL_PC, CALL_TARGET = 290, 0x1A5  # a call whose return pc and target both need two bytes
GLOBALS = [258, -2]
MEMORY_LIMIT = 400


def _program(**fields) -> VMProgram:
    instrs = [Instr(Op.HALT)] * 0x1A6 + [Instr(Op.RETURN)]
    instrs[:4] = [Instr(Op.CONST, -2), Instr(Op.LOCAL_SET, 6), Instr(Op.LOAD16_S, 3), Instr(Op.TRAP, 0)]
    instrs[CALL_PC] = Instr(Op.CALL, CALL_TARGET)
    instrs[ENTRY] = Instr(Op.JUMP, CALL_PC)
    memory = bytes([0, 7, 0]) + bytes(297) + bytes([9]) + bytes(99) + bytes([5, 6])  # 5 and 6 sit past the limit
    return VMProgram(**({"instrs": instrs, "entry": ENTRY, "entry_locals": 2, "globals": GLOBALS, "memory": memory,
                         "memory_limit": MEMORY_LIMIT} | fields))


def _value(tokens: list[str], last_byte: int) -> int:
    """The 32-bit value of the four i.XX tokens ending at ``last_byte``."""
    assert all(token.startswith("i.") for token in tokens[last_byte - 3:last_byte + 1])
    return int.from_bytes(bytes(int(token[2:], 16) for token in tokens[last_byte - 3:last_byte + 1]), "little")


def _header(tokens: list[str], marker: str) -> int:
    position = T.header_value_position(marker)
    assert tokens[position - 4] == marker
    return _value(tokens, position)


def test_header_slots_sit_at_fixed_positions():
    tokens = encode_prompt(_program(), b"hi")
    assert tokens[0] == T.START
    assert [T.header_value_position(marker) for marker in T.HEADER_SLOTS] == \
        [5 + T.SLOT * i for i in range(len(T.HEADER_SLOTS))]
    assert T.header_value_position(T.ZERO) == 5 and T.ZERO_FIRST_BYTE == 2
    assert tokens[T.ZERO_FIRST_BYTE:T.ZERO_FIRST_BYTE + 4] == ["i.00"] * 4 and _header(tokens, T.ZERO) == 0
    if T.ONES in T.HEADER_SLOTS:
        assert tokens[T.ONES_FIRST_BYTE:T.ONES_FIRST_BYTE + 4] == ["i.ff"] * 4
    stride = max_frame_locals(_program())
    assert stride == 7  # local_set 6
    assert _header(tokens, T.MEMORY) == MEMORY_LIMIT
    assert _header(tokens, T.FRAME) == stride
    code_base = _header(tokens, T.CODE)
    assert code_base == T.GLOBALS_START + T.SLOT * len(GLOBALS) and tokens[code_base] == "op.const"
    input_start = _header(tokens, T.INPUT)
    assert tokens[input_start - 1] == T.INPUT_BYTES and tokens[input_start:input_start + 2] == ["i.68", "i.69"]


def test_global_slots_and_their_keys():
    tokens = encode_prompt(_program())
    for index, value in enumerate(GLOBALS):
        marker = T.GLOBALS_START + T.SLOT * index
        assert tokens[marker] == T.GLOBAL
        assert T.global_key(index) == marker + 4  # the key is the position of the slot's last byte
        assert _value(tokens, T.global_key(index)) == value & 0xFFFFFFFF
    assert tokens[T.GLOBALS_START + T.SLOT:T.GLOBALS_START + 2 * T.SLOT] == ["g", "i.fe", "i.ff", "i.ff", "i.ff"]
    assert T.LOCAL_KEY_BASE > T.global_key(T.MAX_GLOBALS - 1)


def test_instruction_slots_and_the_call_immediate():
    vm = _program()
    tokens = encode_prompt(vm)
    code_base = _header(tokens, T.CODE)
    for pc, instr in enumerate(vm.instrs):
        assert tokens[code_base + T.SLOT * pc] == f"op.{instr.op.value}"
        immediate = _value(tokens, code_base + T.SLOT * pc + 4)
        if instr.op is Op.CALL:
            assert (immediate & 0xFFFF, immediate >> 16) == (instr.arg, pc + 1)
        else:
            assert immediate == instr.arg & 0xFFFFFFFF
    call = code_base + T.SLOT * CALL_PC
    assert tokens[call:call + 5] == ["op.call", "i.a5", "i.01", "i.23", "i.01"]  # target 0x1a5, return 0x123
    assert tokens[code_base:code_base + 5] == ["op.const", "i.fe", "i.ff", "i.ff", "i.ff"]


def test_data_records_then_input_then_the_entry():
    tokens = encode_prompt(_program(), b"\x00\xff")
    data = tokens.index(T.DATA, _header(tokens, T.CODE))
    input_start = _header(tokens, T.INPUT)
    assert tokens[data:] == ["<data>",
                             "d", "i.01", "i.00", "i.00", "i.07",  # address 1 (three bytes, low first), value 7
                             "d", "i.2c", "i.01", "i.00", "i.09",  # address 300
                             "<input_bytes>", "i.00", "i.ff",
                             "ph.01", "pl.2c", "<run>"]  # entry pc 300
    assert data + 12 == input_start


def test_an_empty_program_memory_and_input():
    vm = VMProgram(instrs=[Instr(Op.HALT)], entry=0, entry_locals=0, globals=[], memory=b"", memory_limit=0)
    tokens = encode_prompt(vm)
    code_base = T.GLOBALS_START
    assert tokens[code_base:] == ["op.halt", "i.00", "i.00", "i.00", "i.00", "<data>", "<input_bytes>",
                                  "ph.00", "pl.00", "<run>"]
    assert _header(tokens, T.FRAME) == 1 and _header(tokens, T.INPUT) == code_base + 7


def test_every_prompt_token_is_in_the_vocabulary():
    vocabulary = T.vocabulary()
    assert len(set(vocabulary)) == len(vocabulary)
    assert all(token and not any(c.isspace() for c in token) for token in vocabulary)
    for family in T.BYTE_FAMILIES:  # contiguous byte families: id = base + byte
        assert [vocabulary[T.family_base(family) + b] for b in range(256)] == [T.byte_token(family, b)
                                                                                for b in range(256)]
    assert set(encode_prompt(_program(), bytes(range(256)))) <= set(vocabulary)


def _refusal(vm: VMProgram, input_bytes: bytes, message: str) -> None:
    with pytest.raises(ProgramError, match=message):
        check_program(vm, input_bytes)
    with pytest.raises(ProgramError, match=message):
        encode_prompt(vm, input_bytes)


def test_refusals(monkeypatch):
    check_program(_program(), bytes(MAX_INPUT_BYTES))
    _refusal(_program(), bytes(MAX_INPUT_BYTES + 1), "at most 65536")
    uses_mul = _program(instrs=[Instr(Op.CONST, 2), Instr(Op.MUL), Instr(Op.POPCNT), Instr(Op.HALT)], entry=0)
    check_program(uses_mul)  # the machine executes every op of the table today
    monkeypatch.setattr(prompt, "MACHINE_OPS", prompt.MACHINE_OPS - {Op.MUL, Op.POPCNT})  # a machine without them
    _refusal(uses_mul, b"", "uses mul, popcnt, which the machine does not execute")
    monkeypatch.undo()
    _refusal(_program(globals=[0] * (T.MAX_GLOBALS + 1)), b"", "at most 256 are supported")
    _refusal(_program(memory_limit=T.MAX_MEMORY + 1), b"", f"the machine addresses at most {T.MAX_MEMORY:,}")
    _refusal(_program(memory_limit=T.MAX_MEMORY - 65536, growable_pages=2), b"",
             f"memory.grow may add 2 pages to {T.MAX_MEMORY - 65536:,} bytes")
    _refusal(_program(instrs=[Instr(Op.HALT)] * T.MAX_PC), b"", f"at most {T.MAX_PC - 1} are supported")
    _refusal(_program(instrs=[Instr(Op.LOCAL_GET, T.KEY_LIMIT), Instr(Op.HALT)], entry=0), b"", "too many")


def test_layout_check_accepts_what_encode_writes_and_names_the_first_misplaced_token():
    from wasmformer.machine.prompt import layout_error

    tokens = encode_prompt(_program(), b"\x00\xff")
    assert layout_error(tokens) is None
    shifted = tokens[:22] + [tokens[22]] + tokens[22:]  # one byte of a header slot twice: every slot shifts
    assert layout_error(shifted) == f"token {T.header_value_position(T.FRAME) + 1} is 'i.00', expected '<code>'"
    code_base = T.header_value_position(T.CODE)
    wrong_base = tokens[:code_base] + ["i.ff"] + tokens[code_base + 1:]
    assert "the header's <code> slot says" in layout_error(wrong_base)
    assert layout_error(tokens + ["i.00"]) == f"token {len(tokens)} is 'i.00' after '<run>', which ends the prompt"
    assert layout_error(tokens[:-1]) == f"token {len(tokens) - 1} is the end of the prompt, expected '<run>'"


def test_layout_check_refuses_a_byte_token_that_is_not_hex():
    from wasmformer.machine.prompt import layout_error

    tokens = encode_prompt(_program(), b"")
    position = T.header_value_position(T.CODE)
    broken = tokens[:position] + ["i.0("] + tokens[position + 1:]
    assert layout_error(broken) == f"token {position} is 'i.0(', expected a i.XX byte"
