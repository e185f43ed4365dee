"""The last check: a built Model's tensors follow the schedule and the slot plan.

Read from the tensors alone (their nonzero pattern), every sub-layer must read
only slots whose feature is live there (or the fixed slots), and write only
the slots of the features it produces plus the slots it zeroes; the logits may
read only what is live at the end. A weight in the wrong column, or an op
scheduled before its input exists, shows up here as a read of a dead or
not-yet-written slot.
"""

from __future__ import annotations

import numpy as np

from wasmformer.compiler.allocate import Allocation
from wasmformer.compiler.lower import Program
from wasmformer.compiler.placement import Schedule
from wasmformer.model import Model


class DataflowError(AssertionError):
    """The tensors read a slot nobody holds at that point, or write one they should not: a compiler bug."""


def check_dataflow(model: Model, program: Program, schedule: Schedule, allocation: Allocation) -> None:
    holders = _holders(program, schedule, allocation)
    written = _planned_writes(program, schedule, allocation)
    for layer_index, layer in enumerate(model.layers):
        attention, ffn = 2 * layer_index, 2 * layer_index + 1
        _check_reads(_columns(layer.wq, layer.wk, layer.wv), attention, holders, allocation)
        _check_writes(_rows(layer.wo), attention, written)
        _check_reads(_columns(layer.w_gate, layer.w_up), ffn, holders, allocation)
        _check_writes(_rows(layer.w_down), ffn, written)
    _check_reads(_columns(model.unembed), 2 * len(model.layers), holders, allocation)


def _columns(*matrices: np.ndarray) -> set[int]:
    return {int(c) for m in matrices for c in np.flatnonzero(np.any(m != 0, axis=0))}


def _rows(matrix: np.ndarray) -> set[int]:
    return {int(r) for r in np.flatnonzero(np.any(matrix != 0, axis=1))}


def _holders(program: Program, schedule: Schedule, allocation: Allocation) -> dict[int, list[tuple[int, int]]]:
    """slot -> the (first, last) boundaries at which each of its features can be read."""
    holders: dict[int, list[tuple[int, int]]] = {}
    for feature in program.features:
        readable_from = schedule.producer_sublayer(program, feature) + 1  # not the reserved boundary of a head output
        holders.setdefault(allocation.slot[feature], []).append((readable_from, allocation.interval[feature][1]))
    for zeroing in allocation.zeroing:  # a zeroing unit reads the dead value it subtracts
        holders[zeroing.slot].append((2 * zeroing.layer + 1, 2 * zeroing.layer + 1))
    return holders


def _planned_writes(program: Program, schedule: Schedule, allocation: Allocation) -> dict[int, set[int]]:
    """sub-layer -> slots it may write (its outputs and its zeroing units)."""
    written: dict[int, set[int]] = {}
    for op in program.ops:
        for feature in op.writes():
            written.setdefault(schedule.sublayer(op), set()).add(allocation.slot[feature])
    for zeroing in allocation.zeroing:
        written.setdefault(2 * zeroing.layer + 1, set()).add(zeroing.slot)
    return written


def _check_reads(slots: set[int], boundary: int, holders: dict, allocation: Allocation) -> None:
    fixed = {allocation.fixed_slot(name) for name in ("one", "t", "t2", "recency")}
    for slot in slots - fixed:
        if not any(first <= boundary <= last for first, last in holders.get(slot, [])):
            raise DataflowError(f"sub-layer {boundary} reads slot {slot}, which holds no live feature there")


def _check_writes(slots: set[int], sublayer: int, written: dict[int, set[int]]) -> None:
    unexpected = slots - written.get(sublayer, set())
    if unexpected:
        raise DataflowError(f"sub-layer {sublayer} writes slots {sorted(unexpected)}, which it neither produces nor zeroes")
