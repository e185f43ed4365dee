"""Slot allocation (no two live features share a slot; reused slots are zeroed) and the weight checks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.compiler.compiler_oracle import chain_graph, random_graph
from wasmformer.compiler.allocate import AllocationError, allocate, check_allocation
from wasmformer.compiler.lower import lower
from wasmformer.compiler.schedule import asap, schedule
from wasmformer.compiler.verify import DataflowError, check_dataflow
from wasmformer.compiler.weights import build_tensors
from wasmformer.compiler import compile_graph
from wasmformer.graph.expr import GraphError
from wasmformer.graph.graph import Graph


def live_at(allocation, feature, boundary: int) -> bool:
    first, last = allocation.interval[feature]
    return first <= boundary <= last


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graph())
def test_no_slot_holds_two_live_features_and_every_reuse_is_zeroed(graph):
    program = lower(graph)
    layers, _ = schedule(program, time_limit=1.0)
    allocation = allocate(program, layers)
    for boundary in range(2 * layers.n_layers + 1):
        slots = [allocation.slot[f] for f in program.features if live_at(allocation, f, boundary)]
        assert len(slots) == len(set(slots)), boundary
    by_slot = {}
    for feature in program.features:
        by_slot.setdefault(allocation.slot[feature], []).append(feature)
    zeroed = {(z.slot, z.feature) for z in allocation.zeroing}
    for slot, features in by_slot.items():
        features.sort(key=lambda f: allocation.interval[f])
        assert all((slot, old) in zeroed for old in features[:-1])
    assert len(allocation.zeroing) == len(program.features) - len(by_slot)
    assert allocation.d_model == 4 + len(by_slot)


def test_the_allocation_checker_catches_overlaps_and_missing_zeroing():
    program = lower(chain_graph(length=12))
    layers = asap(program)
    allocation = allocate(program, layers)
    broken = [z for z in allocation.zeroing]
    allocation.zeroing = broken[1:]
    with pytest.raises(AllocationError, match="not zeroed"):
        check_allocation(program, layers, allocation)
    allocation.zeroing = broken
    a, b = [f for f in program.features if allocation.interval[f][0] == 0][:2]
    allocation.slot[a] = allocation.slot[b]
    with pytest.raises(AllocationError, match="live at once"):
        check_allocation(program, layers, allocation)


def test_the_dataflow_checker_catches_a_weight_in_the_wrong_slot():
    graph = chain_graph(length=12)
    program = lower(graph)
    layers, _ = schedule(program, time_limit=0)  # the greedy schedule, as compile_graph with time_limit=0
    allocation = allocate(program, layers)
    model, _ = compile_graph(graph, time_limit=0, log=lambda _: None)
    check_dataflow(model, program, layers, allocation)
    last = len(model.layers) - 1
    owned = {allocation.slot[f] for op in program.ops if layers.layer[op] == last and op.parity == 1 for f in op.writes()}
    owned |= {z.slot for z in allocation.zeroing if z.layer == last}
    stray = min(set(range(4, allocation.d_model)) - owned)
    model.layers[last].w_down[stray, 0] = 1.0  # the last FFN writes a slot it neither produces nor zeroes
    with pytest.raises(DataflowError, match="writes slots"):
        check_dataflow(model, program, layers, allocation)
    model.layers[last].w_down[stray, 0] = 0.0
    from_embedding = {allocation.slot[f] for f in program.features if program.producer[f] is None}
    unwritten = min({allocation.slot[f] for f in program.features} - from_embedding)
    model.layers[0].wq[0, unwritten] = 1.0  # attention 0 reads a slot nothing has written yet
    with pytest.raises(DataflowError, match="reads slot"):
        check_dataflow(model, program, layers, allocation)


def test_an_approximate_value_is_never_zeroed_by_the_ffn_that_overwrites_its_slot():
    graph = Graph(["x", "y", "halt"], halt_token="halt", max_exact_tokens=64, name="means")
    flag = graph.token_table("flag", {"x": 1})
    (count,) = graph.count_before("count", [flag])
    late = graph.persist("late", count + 1)
    graph.set_next_token_id(late)
    program = lower(graph)
    layers = asap(program)
    allocation = allocate(program, layers)
    write_sublayer = {f: layers.producer_sublayer(program, f) for f in program.features}
    for zeroing in allocation.zeroing:
        if not zeroing.feature.exact:
            successor = next(f for f in program.features if allocation.slot[f] == zeroing.slot
                             and allocation.interval[f][0] > allocation.interval[zeroing.feature][1])
            assert 2 * zeroing.layer + 1 < write_sublayer[successor]


def _tensors_with_penalty(clear_of, penalty):
    graph = Graph(["x", "y", "halt"], halt_token="halt", max_exact_tokens=64, name="huge")
    key = graph.token_table("key", {"x": 1})
    (fetched,) = graph.lookup("fetch", key, key, [key], clear=clear_of(key))
    graph.set_next_token_id(fetched)
    program = lower(graph)
    layers = asap(program)
    return build_tensors(program, layers, allocate(program, layers), {"fetch": penalty})


def test_a_clear_penalty_beyond_2_53_needs_a_flag_of_its_own():
    """1 - key puts -M on the constant slot, where other terms of the key would be lost: refused."""
    with pytest.raises(GraphError, match="latest lookup 'fetch'.*clear flag must be a single 0/1 feature"):
        _tensors_with_penalty(lambda key: 1 - key, 2**53)


def test_a_power_of_two_penalty_on_a_flag_slot_is_exact():
    tensors = _tensors_with_penalty(lambda key: key, 2**60)
    layers = tensors[2]
    assert any((layer["wk"] == -(2.0**60)).any() for layer in layers)


def test_a_weight_beyond_2_53_stops_the_compiler_naming_the_head():
    with pytest.raises(GraphError, match="latest lookup 'fetch'.*not below 2\\*\\*53"):
        _tensors_with_penalty(lambda key: key, 2**53 + 2)
