"""The prompt half of the token language (docs/token-language.md)."""

import pytest

from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.program import Instr, Op, VMProgram
from wasmformer.machine.prompt import INSTRUCTION_STRIDE, encode_prompt, prompt_vocabulary


def _program() -> VMProgram:
    instrs = [Instr(Op.CALL, 3), Instr(Op.HALT), Instr(Op.TRAP, 0), Instr(Op.CONST, -2), Instr(Op.PUTCHAR),
              Instr(Op.RETURN)]
    memory = bytes([0, 7, 0]) + bytes(300) + bytes([9])
    return VMProgram(instrs=instrs, entry=0, entry_locals=0, globals=[258], memory=memory, memory_limit=16384)


def test_layout_and_fixed_stride():
    tokens = encode_prompt(_program(), b"hi")
    assert tokens[:2] == ["<s>", "<code>"]
    for pc, instr in enumerate(_program().instrs):
        start = 2 + INSTRUCTION_STRIDE * pc
        assert tokens[start] == f"op.{instr.op.value}"
        immediate = bytes(int(tok[2:], 16) for tok in tokens[start + 1:start + 5])
        assert int.from_bytes(immediate, "little", signed=True) == instr.arg
    rest = tokens[2 + INSTRUCTION_STRIDE * 6:]
    assert rest == ["<globals>", "g.02", "g.01", "g.00", "g.00",
                    "<data>", "da.01", "da.00", "dv.07", "da.2f", "da.01", "dv.09",
                    "<input>", "in.68", "in.69", "<run>"]


def test_every_prompt_token_is_in_the_prompt_vocabulary():
    vocabulary = set(prompt_vocabulary())
    assert set(encode_prompt(_program(), bytes(range(256)))) <= vocabulary
    assert all(token and not any(c.isspace() for c in token) for token in vocabulary)


def test_too_much_input_is_refused():
    with pytest.raises(FrontendError, match="at most 65536"):
        encode_prompt(_program(), bytes(70_000))
