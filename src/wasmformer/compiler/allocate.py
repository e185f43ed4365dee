"""Pass 3, slot allocation: give every materialised feature a residual slot.

Fixed slots come first and are never shared: ``one`` (the constant term of
every expression), then t, t², r(t) (the format requires them). Every other
feature holds a slot over its live interval (``timeline.py``); features whose
intervals are disjoint may share a slot. Intervals are colored greedily in
order of their first boundary, which for interval graphs uses exactly as many
slots as the most features live at one boundary.

The residual stream only ever adds, so a slot handed to a new feature must be
zero first: a *zeroing unit* ``(-x)·relu(one)`` in some FFN between the dead
feature's last read and the new feature's write subtracts the old value
exactly (x·1 = x in float64, and x + (-x) = 0). When the zeroing shares the FFN
that writes the new value, that FFN's output row sums the new value's terms and
-x before adding to x, which is exact for integers but not for approximate
values (prefix means): then the zeroing must run in an earlier FFN.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmformer.compiler.lower import FFN, Program
from wasmformer.compiler.placement import Schedule
from wasmformer.graph.expr import Feature

FIXED_ORDER = ("one", "t", "t2", "recency")  # slots 0..3


class AllocationError(AssertionError):
    """Two live features in one slot, or a reused slot never zeroed: a compiler bug."""


@dataclass(frozen=True)
class Zeroing:
    """A unit in the FFN of ``layer`` that clears ``slot`` (held by the dead ``feature``)."""

    layer: int
    slot: int
    feature: Feature


@dataclass
class Allocation:
    slot: dict[Feature, int]
    d_model: int
    zeroing: list[Zeroing]
    interval: dict[Feature, tuple[int, int]]  # feature -> (first, last) live boundary

    def fixed_slot(self, name: str) -> int:
        return FIXED_ORDER.index(name)


def allocate(program: Program, schedule: Schedule) -> Allocation:
    slot: dict[Feature, int] = {}
    fixed = dict(zip(FIXED_ORDER, [program.one, *(program.positional[k] for k in FIXED_ORDER[1:])]))
    for index, name in enumerate(FIXED_ORDER):
        slot[fixed[name]] = index
    interval = {f: schedule.live_interval(program, f) for f in program.features}
    units = _units_per_layer(program, schedule)
    holder: list[Feature | None] = [None] * len(FIXED_ORDER)  # the last feature of each slot
    zeroing: list[Zeroing] = []
    for feature in sorted(program.features, key=lambda f: (interval[f], f.index)):
        chosen = None
        for index in range(len(FIXED_ORDER), len(holder)):
            layers = _zeroing_layers(program, schedule, interval, holder[index], feature)
            if layers:
                chosen = index
                layer = min(layers, key=lambda a: (units[a], a))  # keep F balanced
                units[layer] += 1
                zeroing.append(Zeroing(layer, index, holder[index]))
                break
        if chosen is None:
            chosen = len(holder)
            holder.append(None)
        holder[chosen] = feature
        slot[feature] = chosen
    allocation = Allocation(slot, len(holder), zeroing, interval)
    check_allocation(program, schedule, allocation)
    return allocation


def _units_per_layer(program: Program, schedule: Schedule) -> list[int]:
    units = [0] * schedule.n_layers
    for op in program.ops:
        if op.parity == FFN:
            units[schedule.layer[op]] += len(op.units)
    return units


def _zeroing_layers(program, schedule, interval, old: Feature, new: Feature) -> list[int]:
    """FFN layers where a unit may clear ``old``'s slot for ``new``: after old's last read, by new's write."""
    old_last = interval[old][1]
    if old_last >= interval[new][0]:
        return []
    write = schedule.producer_sublayer(program, new)
    exact = old.exact and new.exact
    return [
        layer for layer in range(schedule.n_layers)
        if old_last <= 2 * layer + 1 <= write and (exact or 2 * layer + 1 < write)
    ]


def check_allocation(program: Program, schedule: Schedule, allocation: Allocation) -> None:
    """Raise AllocationError unless slots never hold two live features and every reuse is zeroed in time."""
    occupants: dict[int, list[Feature]] = {}
    for feature in program.features:
        occupants.setdefault(allocation.slot[feature], []).append(feature)
    fixed_slots = {allocation.slot[f] for f in program.fixed}
    if len(fixed_slots) != len(FIXED_ORDER) or fixed_slots & set(occupants):
        raise AllocationError("the fixed slots (one, t, t2, recency) must be distinct and never shared")
    zeroed = {(z.slot, z.feature): z.layer for z in allocation.zeroing}
    for slot, features in occupants.items():
        features.sort(key=lambda f: allocation.interval[f])
        for old, new in zip(features, features[1:]):
            old_first, old_last = allocation.interval[old]
            new_first, _ = allocation.interval[new]
            if old_last >= new_first:
                raise AllocationError(f"slot {slot}: {old.describe()} and {new.describe()} are live at once")
            layer = zeroed.get((slot, old))
            if layer is None or layer not in _zeroing_layers(program, schedule, allocation.interval, old, new):
                raise AllocationError(f"slot {slot}: {old.describe()} is not zeroed before {new.describe()} is written")
    for zeroing in allocation.zeroing:
        if zeroing.feature not in occupants.get(zeroing.slot, []):
            raise AllocationError(f"zeroing unit for slot {zeroing.slot} names a feature that never held it")
