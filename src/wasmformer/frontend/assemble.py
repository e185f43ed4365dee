"""Relocatable code: instructions whose jump and call targets are still symbolic.

Lowering produces one ``Code`` per function (and per dispatcher, per helper).
A jump target is a ``Label`` placed inside the same ``Code``; a call target is
a ``Symbol`` naming another ``Code``. ``link`` lays the pieces out one after
another and turns both into absolute pcs. It also gives every call and return
its frame class (vm/ops.py FRAME_CLASSES): a piece's frame is the local words
its code uses, so a call of it and its returns name the smallest class that
holds them, and the machine reserves only that many words per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmformer.vm.ops import Immediate, call_op, frame_class, return_op, spec
from wasmformer.vm.program import Instr, Op


class Label:
    """A position inside one Code, known once placed (compared by identity)."""


@dataclass(frozen=True)
class Symbol:
    """The start of a linked Code: ("func", unit, index), ("dispatch", type), ..."""
    key: tuple


@dataclass
class Code:
    name: str
    items: list[tuple[Op, object]] = field(default_factory=list)  # arg: int, Label or Symbol
    origins: list[tuple[str, int] | None] = field(default_factory=list)
    labels: dict[Label, int] = field(default_factory=dict)
    origin: tuple[str, int] | None = None  # attached to what is emitted next

    def emit(self, op: Op, arg: object = 0) -> None:
        self.items.append((op, arg))
        self.origins.append(self.origin)

    def place(self, label: Label) -> None:
        self.labels[label] = len(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def frame_words(self) -> int:
        """The local words this code uses (one past the highest local index)."""
        return max((arg + 1 for op, arg in self.items if spec(op).immediate is Immediate.LOCAL), default=0)

    def labels_at(self, position: int) -> bool:
        """Whether some label points at ``position`` (a jump may enter there)."""
        return any(at == position for at in self.labels.values())


@dataclass
class Linked:
    instrs: list[Instr]
    origins: dict[int, tuple[str, int]]
    starts: dict[Symbol, int]


def link(pieces: list[tuple[Symbol, Code]], aliases: dict[Symbol, Symbol] | None = None) -> Linked:
    """Lay the pieces out in order; an alias symbol resolves to the start of its target."""
    starts: dict[Symbol, int] = {}
    pc = 0
    for symbol, code in pieces:
        starts[symbol] = pc
        pc += len(code)
    for alias, target in (aliases or {}).items():
        starts[alias] = starts[target]
    frames = {symbol: frame_class(code.frame_words()) for symbol, code in pieces}
    frames.update({alias: frames[target] for alias, target in (aliases or {}).items()})
    instrs: list[Instr] = []
    origins: dict[int, tuple[str, int]] = {}
    for symbol, code in pieces:
        base = starts[symbol]
        for offset, ((op, arg), origin) in enumerate(zip(code.items, code.origins)):
            op = _with_frame_class(op, arg, frames[symbol], frames)
            instrs.append(Instr(op, _resolve(arg, base, code, starts)))
            if origin is not None:
                origins[base + offset] = origin
    return Linked(instrs, origins, starts)


def _with_frame_class(op: Op, arg: object, own_frame: int, frames: dict[Symbol, int]) -> Op:
    """A plain call of a piece becomes the call of the piece's class, a plain return its own piece's."""
    if op is Op.CALL and isinstance(arg, Symbol):
        return call_op(frames[arg])
    if op is Op.RETURN:
        return return_op(own_frame)
    return op


def _resolve(arg: object, base: int, code: Code, starts: dict[Symbol, int]) -> int:
    if isinstance(arg, Label):
        return base + code.labels[arg]
    if isinstance(arg, Symbol):
        return starts[arg]
    return arg


def index_runs(targets: list, default) -> list[tuple[int, object]]:
    """A table of targets as runs (first index, target); indices past the table go to ``default``."""
    runs: list[tuple[int, object]] = []
    for position, target in enumerate(targets + [default]):
        if not runs or runs[-1][1] != target:
            runs.append((position, target))
    return runs


def emit_index_search(code: Code, index_local: int, runs: list[tuple[int, object]], labels: dict) -> None:
    """Jump to ``labels[target]`` of the run holding the (unsigned) value of ``index_local``.

    A binary search on the runs' first indices: O(log runs) compares, so a
    br_table or call_indirect costs a few steps however large its table. Each
    compare is ``local_get; const boundary; lt_u|ge_u; jump_if_nonzero`` (4
    steps); a half holding a single run is the compare's own jump target, so
    the search ends without a separate ``jump`` wherever it can.
    """
    if len(runs) == 1:
        code.emit(Op.JUMP, labels[runs[0][1]])
        return
    middle = len(runs) // 2
    lower, upper = runs[:middle], runs[middle:]
    code.emit(Op.LOCAL_GET, index_local)
    code.emit(Op.CONST, _signed(upper[0][0]))
    if len(lower) == 1:
        code.emit(Op.LT_U)
        code.emit(Op.JUMP_IF_NONZERO, labels[lower[0][1]])
        emit_index_search(code, index_local, upper, labels)
    elif len(upper) == 1:
        code.emit(Op.GE_U)
        code.emit(Op.JUMP_IF_NONZERO, labels[upper[0][1]])
        emit_index_search(code, index_local, lower, labels)
    else:
        lower_half = Label()
        code.emit(Op.LT_U)
        code.emit(Op.JUMP_IF_NONZERO, lower_half)
        emit_index_search(code, index_local, upper, labels)
        code.place(lower_half)
        emit_index_search(code, index_local, lower, labels)


def _signed(value: int) -> int:
    """Run boundaries are at most the table length (< 2^31 in practice); keep CONST signed anyway."""
    return value - (1 << 32) if value >= 1 << 31 else value
