"""The prompt half of the token language: a VM program and its input as tokens.

Layout (docs/token-language.md has the full language):

    <s>
    <code>    op.NAME i.XX i.XX i.XX i.XX      one record per instruction (stride 5)
    <globals> g.XX g.XX g.XX g.XX              one record per global (initial value)
    <data>    da.XX da.XX dv.XX                one record per nonzero initial memory byte
    <input>   in.XX ...                        the input bytes
    <run>

Immediates and global values are 32-bit two's complement, little-endian, one
byte per token; data addresses are 16-bit little-endian. Fixed strides let the
machine fetch any field with a lookup keyed by position.
"""

from __future__ import annotations

from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.program import Op, VMProgram

INSTRUCTION_STRIDE = 5  # opcode token + four immediate bytes
GLOBAL_STRIDE = 4
DATA_RECORD_STRIDE = 3  # address low byte, address high byte, value
MAX_DATA_ADDRESS = 1 << 16  # data addresses are written as two bytes
MAX_INPUT_BYTES = 1 << 16

START, CODE, GLOBALS, DATA, INPUT, RUN = "<s>", "<code>", "<globals>", "<data>", "<input>", "<run>"
SECTION_MARKERS = (START, CODE, GLOBALS, DATA, INPUT, RUN)


def opcode_token(op: Op) -> str:
    return f"op.{op.value}"


def byte_token(prefix: str, value: int) -> str:
    return f"{prefix}.{value:02x}"


def prompt_vocabulary() -> list[str]:
    """Every token a prompt can contain, in a fixed order."""
    tokens = list(SECTION_MARKERS)
    tokens += [opcode_token(op) for op in Op]
    for prefix in ("i", "g", "da", "dv", "in"):
        tokens += [byte_token(prefix, value) for value in range(256)]
    return tokens


def _le_bytes(value: int, width: int) -> list[int]:
    return list((value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))


def encode_prompt(program: VMProgram, input_bytes: bytes = b"") -> list[str]:
    if len(input_bytes) > MAX_INPUT_BYTES:
        raise FrontendError(f"the input has {len(input_bytes)} bytes; at most {MAX_INPUT_BYTES} are supported")
    if len(program.memory) > MAX_DATA_ADDRESS:
        raise FrontendError(f"initial memory of {len(program.memory)} bytes exceeds {MAX_DATA_ADDRESS}")
    tokens = [START, CODE]
    for instr in program.instrs:
        tokens.append(opcode_token(instr.op))
        tokens += [byte_token("i", b) for b in _le_bytes(instr.arg, 4)]
    tokens.append(GLOBALS)
    for value in program.globals:
        tokens += [byte_token("g", b) for b in _le_bytes(value, 4)]
    tokens.append(DATA)
    for address, value in enumerate(program.memory):
        if value:
            low, high = _le_bytes(address, 2)
            tokens += [byte_token("da", low), byte_token("da", high), byte_token("dv", value)]
    tokens.append(INPUT)
    tokens += [byte_token("in", b) for b in input_bytes]
    tokens.append(RUN)
    return tokens
