"""What each part of a compiled model is for: the graph's names for its heads, FFN units and residual slots.

The compiler records this in config.json (``Model.extra``) for tools
(``wasmformer inspect --heads``, ``wasmformer explain``); readers may ignore
it and engines never read it. Three keys (docs/model-format.md, docs/inspect.md):

- ``heads``: one entry per placed head, ``{"layer", "head", "name", "tie",
  "query", "key", "clear", "values", "outputs"}``: the lookup kind (``tie``),
  its query, key and clear flag as linear expressions over graph features,
  the values it fetches and the features its outputs become (None: unread);
- ``ffn_groups``: per layer, consecutive FFN units that implement one graph
  node, ``{"layer", "units": [first, stop), "feature", "kind"}``, where
  ``kind`` is ``neurons`` (the units of one neuron feature) or ``zeroing``
  (a unit clearing a reused slot, ``feature`` naming the dead feature);
- ``slots``: every residual slot's tenants, ``{"slot", "feature", "live":
  [first, last]}``, with the live interval in boundaries (boundary 2l is the
  residual before layer l's attention, 2l+1 before its FFN: compiler/timeline.py).

The unit order mirrors ``weights._ffn_units`` (ops in program order, then
the zeroing units), which ``tests/compiler`` checks against the tensors.
"""

from __future__ import annotations

from wasmformer.compiler.allocate import Allocation
from wasmformer.compiler.lower import FfnOp, Program
from wasmformer.compiler.placement import Schedule
from wasmformer.compiler.weights import HeadPlacement
from wasmformer.graph.expr import Expr

NEURONS, ZEROING = "neurons", "zeroing"


def describe_expr(expr: Expr | None) -> str | None:
    """A linear expression as text: ``2*a + b - 3`` (None stays None)."""
    if expr is None:
        return None
    parts: list[str] = []
    for feature, coefficient in expr.terms.items():
        magnitude = abs(coefficient)
        term = feature.name if magnitude == 1 else f"{magnitude}*{feature.name}"
        parts.append(("- " if coefficient < 0 else "+ " if parts else "") + term)
    if expr.constant or not parts:
        constant = expr.constant
        parts.append(str(constant) if not parts else f"{'-' if constant < 0 else '+'} {abs(constant)}")
    return " ".join(parts)


def head_entries(placements: list[HeadPlacement]) -> list[dict]:
    return [{
        "layer": p.layer, "head": p.index, "name": p.op.name, "tie": p.op.tie,
        "query": describe_expr(p.op.query), "key": describe_expr(p.op.key), "clear": describe_expr(p.op.clear),
        "values": [describe_expr(value) for value in p.op.values],
        "outputs": [output.name if output is not None else None for output in p.op.outputs],
    } for p in placements]


def ffn_groups(program: Program, schedule: Schedule, allocation: Allocation) -> list[dict]:
    """Unit ranges per layer in the order ``weights._ffn_units`` lays the units out."""
    next_unit = [0] * schedule.n_layers
    groups: list[dict] = []

    def add(layer: int, count: int, feature: str, kind: str) -> None:
        groups.append({"layer": layer, "units": [next_unit[layer], next_unit[layer] + count],
                       "feature": feature, "kind": kind})
        next_unit[layer] += count

    for op in program.ops:
        if isinstance(op, FfnOp):
            add(schedule.layer[op], len(op.units), op.feature.name, NEURONS)
    for zeroing in allocation.zeroing:
        add(zeroing.layer, 1, zeroing.feature.name, ZEROING)
    return sorted(groups, key=lambda group: (group["layer"], group["units"][0]))


def slot_tenants(allocation: Allocation, n_layers: int) -> list[dict]:
    """Each feature's slot and live interval; the fixed slots (one, t, t², r(t)) are live throughout."""
    whole_model = (0, 2 * n_layers)
    return sorted(({"slot": slot, "feature": feature.name, "live": list(allocation.interval.get(feature, whole_model))}
                   for feature, slot in allocation.slot.items()), key=lambda entry: (entry["slot"], entry["live"]))


def model_metadata(program: Program, schedule: Schedule, allocation: Allocation,
                   placements: list[HeadPlacement]) -> dict:
    """The ``heads``, ``ffn_groups`` and ``slots`` keys of config.json."""
    return {"heads": head_entries(placements), "ffn_groups": ffn_groups(program, schedule, allocation),
            "slots": slot_tenants(allocation, schedule.n_layers)}
