"""The vocabulary and the fixed layout of the token language (docs/token-language.md).

Token ids are chosen so that every byte family is contiguous: the token for
byte b of family F has id ``family_base(F) + b``. The model then names its
next token with one linear expression (base + byte) instead of a table.
"""

from __future__ import annotations

from wasmformer.vm.ops import CALL_COMMITS as OPS_CALL_COMMITS
from wasmformer.vm.ops import COMMIT_STACK_DELTA, OP_TABLE, Commit
from wasmformer.vm.ops import RETURN_COMMITS as OPS_RETURN_COMMITS
from wasmformer.vm.program import WASM_PAGE, Op, TrapReason

# The name of the universal machine's graph (config.json's "graph" of the model built from it).
UNIVERSAL_GRAPH_NAME = "wasm-machine"

# -- markers and fixed prompt positions -------------------------------------------------------
START, ZERO, ONES, MEMORY, GROW, FRAME = "<s>", "<zero>", "<ones>", "<mem>", "<grow>", "<frame>"
CODE, INPUT = "<code>", "<input>"
GLOBAL, DATA, DATA_RECORD, INPUT_BYTES, RUN = "g", "<data>", "d", "<input_bytes>", "<run>"
HALT = "halt"
MARKERS = (START, ZERO, ONES, MEMORY, GROW, FRAME, CODE, INPUT, GLOBAL, DATA, DATA_RECORD, INPUT_BYTES, RUN, HALT)

SLOT = 5  # a marker or op token, then four value bytes
# The header: <s>, then one slot per parameter. A slot's value is read at its last byte.
HEADER_SLOTS = (ZERO, ONES, MEMORY, GROW, FRAME, CODE, INPUT)
ZERO_FIRST_BYTE = 2  # positions 2..5 hold four zero bytes
ONES_FIRST_BYTE = 7  # positions 7..10 hold four 0xff bytes (the fill of a negative number)


def header_value_position(marker: str) -> int:
    """Position of the last byte of a header slot (where its 32-bit value is assembled)."""
    return 1 + SLOT * HEADER_SLOTS.index(marker) + SLOT - 1


GLOBALS_START = 1 + SLOT * len(HEADER_SLOTS)  # position of global 0's marker


def global_key(index: int) -> int:
    """Variable-record key of global ``index``: the position of its prompt slot's last byte."""
    return GLOBALS_START + SLOT * index + SLOT - 1


MAX_GLOBALS = 256
LOCAL_KEY_BASE = global_key(MAX_GLOBALS)  # locals' keys start above every global's

# -- limits that keep every lookup key small (the precision budget, docs/token-language.md) ---
KEY_LIMIT = 1 << 14  # stack slots, variable keys and offsets within a memory bank stay below this
# Linear memory is split into banks of KEY_LIMIT bytes, one latest-record lookup each (docs/machine.md:
# a single lookup over every address would need keys beyond the precision budget).
MEMORY_BANK_BYTES = KEY_LIMIT
# 72 banks: 1 MiB of static data fits beside a C stack of 64 KiB (docs/machine.md, "Memory banks")
MEMORY_BANKS = 72
MAX_MEMORY = MEMORY_BANKS * MEMORY_BANK_BYTES  # addressable bytes of linear memory: 1,152 KiB
MAX_PAGES = MAX_MEMORY // WASM_PAGE  # 18 pages of 64 KiB
DATA_ADDRESS_BYTES = 3  # a prompt data record's address: enough for MAX_MEMORY
STACK_LIMIT = KEY_LIMIT - 1  # deepest operand stack (slot indices 1..STACK_LIMIT)
# Variables (globals, then every frame's locals) are keyed in VARIABLE_BANKS banks of KEY_LIMIT keys, one
# lookup each, as memory is. A frame reserves the words of its class (vm/ops.py FRAME_CLASSES, or the
# program's stride); the words in use are counted from the call and return tokens, and a call that would pass
# LOCAL_WORDS traps (call stack exhausted). The reference VMs apply the same limits (FrameSpace).
VARIABLE_BANKS = 4
VARIABLE_KEYS = VARIABLE_BANKS * KEY_LIMIT
LOCAL_WORDS = VARIABLE_KEYS - LOCAL_KEY_BASE  # local words of every live frame together
MAX_FRAME_WORDS = KEY_LIMIT  # local words of one frame (a local's index is read below KEY_LIMIT)
# The deepest call nesting: frames are found by a lookup keyed by depth + 1, which stays below KEY_LIMIT.
MAX_CALL_DEPTH = KEY_LIMIT - 2
MAX_PC = 1 << 16  # jump targets are written as two bytes


def locals_stride(max_frame_locals: int) -> int:
    """The words a plain call's frame reserves (and the entry frame): the program's largest frame."""
    return max(1, max_frame_locals)


def local_key(words_in_use: int, index: int) -> int:
    """Variable key of local ``index`` of the newest frame: frames stack up from LOCAL_KEY_BASE and a frame's
    locals count down from the top of the words in use, so the key needs no frame size."""
    return LOCAL_KEY_BASE + words_in_use - 1 - index


# -- generated tokens ---------------------------------------------------------------------------
COMMITS = tuple(commit.value for commit in Commit)
CALL_COMMITS = {commit.value: frame for frame, commit in OPS_CALL_COMMITS.items()}  # token -> frame class
RETURN_COMMITS = {commit.value: frame for frame, commit in OPS_RETURN_COMMITS.items()}
TRANSFER_COMMITS = (Commit.JUMP.value, Commit.BRANCH.value, *CALL_COMMITS, *RETURN_COMMITS, RUN)
STACK_DELTA = {commit.value: delta for commit, delta in COMMIT_STACK_DELTA.items() if delta}
TRAPS = tuple(f"trap.{reason.name.lower()}" for reason in TrapReason)

# byte families, in id order; "i" is the prompt's, the rest are generated ("q": a division's quotient bytes)
# "e": a byte of the error stream (stderr), "x": the exit status (its low byte), written just before `halt`
BYTE_FAMILIES = ("i", "v", "vc", "m", "o", "ph", "pl", "q", "e", "x")


def byte_token(family: str, value: int) -> str:
    return f"{family}.{value:02x}"


def opcode_token(op: Op) -> str:
    return f"op.{op.value}"


def vocabulary() -> list[str]:
    """Every token, in id order: byte families first (contiguous), then the rest."""
    tokens = [byte_token(family, value) for family in BYTE_FAMILIES for value in range(256)]
    tokens += list(MARKERS) + list(COMMITS) + list(TRAPS) + [opcode_token(row.op) for row in OP_TABLE]
    return tokens


def family_base(family: str) -> int:
    return 256 * BYTE_FAMILIES.index(family)


OUTPUT_BYTES = {byte_token("o", value): value for value in range(256)}
ERROR_BYTES = {byte_token("e", value): value for value in range(256)}
EXIT_STATUS_BYTES = {byte_token("x", value): value for value in range(256)}
