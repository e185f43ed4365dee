"""config.json's head, FFN-group and slot metadata (compiler/metadata.py) agree with the tensors it describes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.compiler.compiler_oracle import chain_graph
from wasmformer.compiler import compile_graph
from wasmformer.compiler.metadata import describe_expr
from wasmformer.graph.examples import stack_machine
from wasmformer.graph.expr import Expr, Feature


@pytest.fixture(scope="module", params=["chain", "stack"])
def compiled(request):
    graph = chain_graph(length=20) if request.param == "chain" else stack_machine()[0]
    model, report = compile_graph(graph, time_limit=1.0, log=lambda _: None)
    return model, report


def test_every_head_names_its_query_key_and_outputs(compiled):
    model, report = compiled
    heads = model.extra["heads"]
    assert len(heads) == report.heads
    for head in heads:
        assert head["tie"] in ("latest", "unique", "average") and head["outputs"]
        if head["tie"] != "average":
            assert head["query"] and head["key"]
        layer = model.layers[head["layer"]]
        # the head's output rows are live exactly when it has a read output
        written = np.flatnonzero(layer.wo[:, 2 * head["head"]:2 * head["head"] + 2].any(axis=1))
        assert len(written) == sum(output is not None for output in head["outputs"])


def test_ffn_groups_cover_exactly_the_live_units(compiled):
    model, _ = compiled
    for index, layer in enumerate(model.layers):
        live = set(np.flatnonzero(layer.w_down.any(axis=0)))
        grouped = set()
        for group in model.extra["ffn_groups"]:
            if group["layer"] == index:
                first, stop = group["units"]
                assert group["kind"] in ("neurons", "zeroing") and group["feature"]
                assert not grouped & set(range(first, stop))
                grouped |= set(range(first, stop))
        assert live <= grouped, index


def test_each_group_writes_the_slot_of_its_feature(compiled):
    model, _ = compiled
    slots = {}
    for tenant in model.extra["slots"]:
        slots.setdefault(tenant["feature"], tenant["slot"])
    for group in model.extra["ffn_groups"]:
        first, stop = group["units"]
        down = model.layers[group["layer"]].w_down[:, first:stop]
        assert set(np.flatnonzero(down.any(axis=1))) <= {slots[group["feature"]]}, group


def test_expressions_read_as_text():
    a, b = Feature("a", 0, 1), Feature("b", 0, 1)
    assert describe_expr(Expr({a: 2, b: -1}, 3)) == "2*a - b + 3"
    assert describe_expr(Expr({}, 0)) == "0"
    assert describe_expr(None) is None
