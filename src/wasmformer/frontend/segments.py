"""memory.init and data.drop: a data segment's bytes copied into memory at run time.

The machine has no memory but linear memory, so a segment's bytes live in
code: one generated subroutine per segment that memory.init uses, which finds
byte j of the segment by a binary search over runs of equal bytes (the
search br_table uses: O(log runs) steps per byte) and stores it. The
segment's remaining length is a VM global: its length for a passive segment,
0 for an active one (applied at instantiation, then dropped, as the spec
says); data.drop sets it to 0.

``memory.init k`` with (d, s, n) on the stack: the lowering pushes the
memory's current size and calls the segment's subroutine, which traps
OUT_OF_BOUNDS_MEMORY, before writing anything, when s + n exceeds the
remaining length or d + n that size (unsigned, without overflow), and
otherwise copies n bytes, lowest address first.
"""

from __future__ import annotations

from wasmformer.frontend.assemble import Code, Label, emit_index_search, index_runs
from wasmformer.frontend.decode import Module
from wasmformer.vm.program import Op, TrapReason

# The subroutine's locals: its four arguments, then the search index.
DESTINATION, SOURCE, COUNT, WINDOW, SEARCH_INDEX = range(5)
INIT_OPERANDS = 3  # d, s, n


def segment_lengths(module: Module) -> list[int]:
    """The initial remaining length of each data segment (what memory.init may still read)."""
    return [len(segment.data) if segment.mode == "passive" else 0 for segment in module.data]


def segment_init_code(name: str, data: bytes, length_global: int) -> Code:
    """The subroutine memory.init of one segment calls: (d, s, n, memory bytes) ->."""
    code = Code(name)
    for local in (WINDOW, COUNT, SOURCE, DESTINATION):
        code.emit(Op.LOCAL_SET, local)
    out_of_bounds = Label()
    _check_range(code, SOURCE, lambda: code.emit(Op.GLOBAL_GET, length_global), out_of_bounds)
    _check_range(code, DESTINATION, lambda: code.emit(Op.LOCAL_GET, WINDOW), out_of_bounds)
    loop, done, store = Label(), Label(), Label()
    code.place(loop)
    code.emit(Op.LOCAL_GET, COUNT)
    code.emit(Op.JUMP_IF_ZERO, done)
    code.emit(Op.LOCAL_GET, DESTINATION)
    code.emit(Op.LOCAL_GET, SOURCE)
    code.emit(Op.LOCAL_SET, SEARCH_INDEX)
    _push_byte(code, data, store)
    code.place(store)
    code.emit(Op.STORE8, 0)
    for local, step in ((DESTINATION, 1), (SOURCE, 1), (COUNT, -1)):
        code.emit(Op.LOCAL_GET, local)
        code.emit(Op.CONST, step)
        code.emit(Op.ADD)
        code.emit(Op.LOCAL_SET, local)
    code.emit(Op.JUMP, loop)
    code.place(done)
    code.emit(Op.RETURN)
    code.place(out_of_bounds)
    code.emit(Op.TRAP, TrapReason.OUT_OF_BOUNDS_MEMORY)
    return code


def _check_range(code: Code, start: int, push_limit, out_of_bounds: Label) -> None:
    """Trap unless start + count <= limit, computed as start <= limit and count <= limit - start."""
    push_limit()
    code.emit(Op.LOCAL_GET, start)
    code.emit(Op.LT_U)
    code.emit(Op.JUMP_IF_NONZERO, out_of_bounds)
    code.emit(Op.LOCAL_GET, COUNT)
    push_limit()
    code.emit(Op.LOCAL_GET, start)
    code.emit(Op.SUB)
    code.emit(Op.GT_U)
    code.emit(Op.JUMP_IF_NONZERO, out_of_bounds)


def _push_byte(code: Code, data: bytes, then: Label) -> None:
    """Push data[index] (the index in SEARCH_INDEX, below len(data)), then go to ``then``."""
    if not data:
        code.emit(Op.TRAP, TrapReason.OUT_OF_BOUNDS_MEMORY)  # unreachable: the range check failed first
        return
    labels = {value: Label() for value in dict.fromkeys(data)}
    emit_index_search(code, SEARCH_INDEX, index_runs(list(data)[:-1], data[-1]), labels)
    for value, label in labels.items():
        code.place(label)
        code.emit(Op.CONST, value)
        code.emit(Op.JUMP, then)
