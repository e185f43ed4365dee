"""Static validation: every failure names the offending node; the budget numbers on a small graph."""

from __future__ import annotations

import pytest

from wasmformer.graph import precision
from wasmformer.graph.expr import GraphError
from wasmformer.graph.graph import Graph
from wasmformer.graph.validate import largest_passing, validate

VOCAB = ["a", "b", "halt"]


def graph(max_exact_tokens: int = 1024) -> Graph:
    return Graph(VOCAB, halt_token="halt", max_exact_tokens=max_exact_tokens)


def test_a_valid_graph_reports_its_budget():
    g = graph(max_exact_tokens=1000)
    key = g.token_table("key", {"a": 3, "b": -5})
    (fetched,) = g.lookup("fetch", 2, key, [g.t])
    (by_position,) = g.lookup("back", g.t - 1, g.t, [key], tie="unique")
    g.set_logits({"a": fetched + by_position})
    report = validate(g)
    assert report.max_exact_tokens == 1000
    assert report.tie_break_scale == 1024
    # latest: B * (2*|q|*|k| + |k|^2) + T = 1024 * (2*2*5 + 25) + 1000
    assert report.heads["fetch"].magnitude == 1024 * 45 + 1000
    assert report.clear_penalty(report.heads["fetch"].head) == precision.clear_penalty(1024 * 45 + 1000)
    # unique: |q| <= 999 (t - 1 ranges over [-1, 998]... bound 999 from t <= 999), |k| <= 999
    budget = report.heads["back"]
    assert (budget.query_max, budget.key_max) == (998, 999)
    assert budget.magnitude == 2 * 998 * 999 + 999 * 999
    assert [type(node).__name__ for node in report.order].index("Attention") > 0
    assert report.snap_heads == []


def test_cycle_names_its_nodes():
    g = graph()
    loop = g.placeholder("loop", 0, 100)
    doubled = g.relu("doubled", loop)
    g.define(loop, doubled)
    g.set_logits({"a": doubled})
    with pytest.raises(GraphError, match=r"cycle.*'doubled'.*'loop'|cycle.*'loop'.*'doubled'"):
        validate(g)


def test_undefined_placeholder_is_named():
    g = graph()
    pending = g.placeholder("pending", 0, 5)
    g.set_logits({"a": pending})
    with pytest.raises(GraphError, match="placeholder 'pending' is never defined"):
        validate(g)


def test_missing_output_is_reported():
    with pytest.raises(GraphError, match="no output"):
        validate(graph())


def test_key_magnitude_too_large_names_the_head_and_the_horizon_that_passes():
    g = graph(max_exact_tokens=1 << 20)
    (x,) = g.lookup("position_fetch", g.t - 1, g.t, [g.one])  # latest: B * 3T^2 ~ 2^61
    g.set_logits({"a": x})
    with pytest.raises(GraphError) as caught:
        validate(g)
    message = str(caught.value)
    assert "latest lookup 'position_fetch'" in message
    assert "largest max_exact_tokens that passes is 131072" in message
    assert "keys and queries within +-" in message
    # the advice is right: at the suggested horizon the same graph validates, one more token fails
    for max_exact_tokens, ok in ((131072, True), (131073, False)):
        h = graph(max_exact_tokens=max_exact_tokens)
        (y,) = h.lookup("position_fetch", h.t - 1, h.t, [h.one])
        h.set_logits({"a": y})
        if ok:
            assert validate(h).max_exact_tokens == max_exact_tokens
        else:
            with pytest.raises(GraphError, match="position_fetch"):
                validate(h)


def test_key_built_from_a_large_table_fails_at_construction_naming_the_head():
    g = graph()
    key = g.token_table("key", {"a": 2**30})
    with pytest.raises(GraphError, match=r"'fetch.key_square'.*2\*\*53"):
        g.lookup("fetch", 0, key, [g.one])


def test_count_horizon_is_checked():
    g = graph(max_exact_tokens=1 << 25)
    (count,) = g.count_before("seen", [g.token_table("is_a", {"a": 1})])
    g.set_logits({"a": count})
    with pytest.raises(GraphError) as caught:
        validate(g)
    message = str(caught.value)
    assert "'seen.snap'" in message and "rounding error" in message
    horizon = int(message.split("largest max_exact_tokens that passes is ")[1].split()[0])
    assert precision.snap_rounding_error(horizon) < 0.25 <= precision.snap_rounding_error(horizon + 1)


def test_value_bound_not_below_2_53():
    g = graph()
    with pytest.raises(GraphError, match=r"token table 'huge'.*2\*\*53"):
        g.token_table("huge", {"a": 2**53})
    # a bound edited after construction is caught again by validate
    big = g.token_table("big", {"a": 7})
    g.set_logits({"a": big})
    big.features[0].hi = 2**53
    with pytest.raises(GraphError, match=r"token table 'big'.*not below 2\*\*53"):
        validate(g)


def test_a_gated_unit_too_large_is_named():
    g = graph()
    wide = g.token_table("wide", {"a": 2**30})
    g.neurons("square", [(1, wide, wide)], bounds=(0, 1))  # the unit itself reaches 2**60
    g.set_logits({"a": g.one})
    with pytest.raises(GraphError, match=r"neurons 'square': unit 0 \(a\*relu\(b\)\)"):
        validate(g)


def test_non_integer_condition_to_step_is_named():
    g = graph()
    (avg,) = g.mean("avg", [g.token_table("is_a", {"a": 1})])
    with pytest.raises(GraphError, match="step 'late'.*condition.*not an exact integer"):
        g.step("late", avg)


def test_clear_flag_must_be_0_or_1():
    g = graph()
    two = g.token_table("two", {"a": 2})
    with pytest.raises(GraphError, match="lookup 'fetch'.*clear flag must be 0 or 1"):
        g.lookup("fetch", 0, 0, [g.one], clear=two)
    # re-checked by validate when a flag's bound is edited after construction
    flag = g.token_table("flag", {"a": 1})
    (x,) = g.lookup("fetch2", 0, 0, [g.one], clear=flag)
    g.set_logits({"a": x})
    flag.features[0].hi = 2
    with pytest.raises(GraphError, match="lookup 'fetch2'.*clear flag must be 0 or 1"):
        validate(g)


def test_unknown_tokens_are_named():
    g = graph()
    with pytest.raises(GraphError, match="token table 'bad'.*unknown token 'zz'"):
        g.token_table("bad", {"zz": 1})
    with pytest.raises(GraphError, match="unknown token 'zz'"):
        g.set_logits({"zz": g.one})
    table = g.token_table("edited", {"a": 1})
    table.features[0].table["yy"] = 3
    g.set_logits({"a": table})
    with pytest.raises(GraphError, match="token table 'edited'.*unknown token 'yy'"):
        validate(g)


def test_duplicate_names_are_named():
    g = graph()
    g.token_table("twice", {"a": 1})
    with pytest.raises(GraphError, match="'twice' is used twice"):
        g.relu("twice", g.t)
    with pytest.raises(GraphError, match="'twice' is used twice"):
        g.lookup("twice", 0, 0, [g.one])


def test_exact_feature_reading_an_approximate_one_is_named():
    g = graph()
    (avg,) = g.mean("avg", [g.token_table("is_a", {"a": 1})])
    g.neurons("claims_exact", [(1, avg, g.t + 1)], bounds=(0, 1024), exact=True)
    g.set_logits({"a": g.one})
    with pytest.raises(GraphError, match="neurons 'claims_exact': marked exact but reads the approximate"):
        validate(g)


def test_largest_passing_is_a_binary_search():
    assert largest_passing(lambda n: n * n < 50, 2, 1000) == 7
    assert largest_passing(lambda n: True, 2, 9) == 9
    assert largest_passing(lambda n: False, 2, 9) is None
