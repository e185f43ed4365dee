"""The exact evaluator on hand-computed expectations, one primitive at a time."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from wasmformer.graph.evaluate import EvaluationError, Evaluator, recency, run
from wasmformer.graph.graph import Graph

LETTERS = ["a", "b", "c", "d", "halt"]


def graph(max_exact_tokens: int = 64) -> Graph:
    return Graph(LETTERS, halt_token="halt", max_exact_tokens=max_exact_tokens, output_bytes={"a": 65, "b": 66})


def feed(g: Graph, tokens: list[str]) -> Evaluator:
    if g.logits is None:
        g.set_logits({})
    evaluator = Evaluator(g)
    for token in tokens:
        evaluator.step(token)
    return evaluator


def column(evaluator: Evaluator, name: str) -> list:
    return [evaluator.values(t)[name] for t in range(evaluator.position)]


# -- inputs and FFN primitives ------------------------------------------------------------
def test_token_tables_and_positional_features():
    g = graph()
    g.token_table("code", {"a": 3, "c": -2})
    ev = feed(g, ["a", "b", "c", "a"])
    assert column(ev, "code") == [3, 0, -2, 3]
    assert column(ev, "one") == [1, 1, 1, 1]
    assert column(ev, "t") == [0, 1, 2, 3]
    assert column(ev, "t2") == [0, 1, 4, 9]
    assert column(ev, "recency")[0] == 0.0
    assert column(ev, "recency")[3] == pytest.approx(1 / math.log(2) - 1 / math.log(5))
    assert recency(1) < recency(2) < 1 / math.log(2)


def test_neurons_sum_gated_units():
    g = graph()
    # 2 * t * relu(t - 2) - 1 * relu(3 - t), by hand for t = 0..4
    g.neurons("n", [(2, g.t, g.t - 2), (-1, g.one, 3 - g.t)])
    assert column(feed(g, ["a"] * 5), "n") == [-3, -2, -1, 6, 16]


def test_relu_step_equals_select_product_persist():
    g = graph()
    x = g.token_table("x", {"a": -2, "b": 0, "c": 3, "d": 1})
    flag = g.token_table("flag", {"c": 1, "d": 1})
    g.relu("relu", x)
    g.step("step", x, 5 + x)  # (5 + x) * [x >= 0]
    g.equals("equals", x, 3, 7)
    g.select("select", flag, 10 * x, x - 100)
    g.product("product", x, x - 1)  # b may be negative: two units
    g.persist("persist", 2 * x + g.t)
    ev = feed(g, ["a", "b", "c", "d"])
    assert column(ev, "relu") == [0, 0, 3, 1]
    assert column(ev, "step") == [0, 5, 8, 6]
    assert column(ev, "equals") == [0, 0, 7, 0]
    assert column(ev, "select") == [-102, -100, 30, 10]
    assert column(ev, "product") == [6, 0, 6, 0]
    assert column(ev, "persist") == [-4, 1, 8, 5]


def test_placeholder_takes_its_definitions_value():
    g = graph()
    later = g.placeholder("later", -3, 64)
    g.persist("doubled", 2 * later)
    g.define(later, g.t - 3)
    assert column(feed(g, ["a"] * 4), "doubled") == [-6, -4, -2, 0]


# -- lookups ----------------------------------------------------------------------------------
def test_latest_picks_the_newest_equal_key():
    g = graph()
    key = g.token_table("key", {"a": 1, "b": 2, "c": 1})
    g.lookup("fetch", 1, key, [g.t])
    ev = feed(g, ["a", "b", "c", "b", "a", "d"])
    # key 1 at positions 0, 2, 4: the newest so far wins
    assert column(ev, "fetch") == [0, 0, 2, 2, 4, 4]


def test_latest_takes_the_closest_key_when_none_matches():
    g = graph()
    key = g.token_table("key", {"a": 10, "b": 4, "c": 7})
    query = g.token_table("query", {"d": 6, "halt": 5})
    g.lookup("fetch", query, key, [key])
    # at t=3 (d, query 6): keys 10, 4, 7 -> 7 is closest; the 'd' itself has key 0
    ev = feed(g, ["a", "b", "c", "d"])
    assert column(ev, "fetch")[3] == 7


def test_latest_breaks_an_equidistant_tie_by_position():
    g = graph()
    key = g.token_table("key", {"a": 2, "b": 6, "c": 9})
    query = g.token_table("query", {"d": 4})
    g.lookup("fetch", query, key, [g.t])
    # 'd' (key 0, query 4): keys 2 and 6 are both at distance 2; the newer one wins
    assert column(feed(g, ["a", "b", "c", "d"]), "fetch")[3] == 1
    assert column(feed(g, ["b", "a", "c", "d"]), "fetch")[3] == 1  # now key 2 is the newer
    assert column(feed(g, ["b", "a", "a", "d"]), "fetch")[3] == 2


def test_cleared_tokens_are_skipped():
    g = graph()
    hidden = g.token_table("hidden", {"b": 1})
    key = g.token_table("key", {"a": 1, "b": 1})
    g.lookup("fetch", 1, key, [g.t], clear=hidden)
    ev = feed(g, ["a", "b", "b", "a", "b"])
    assert column(ev, "fetch") == [0, 0, 0, 3, 3]


def test_no_uncleared_candidate_is_an_error_naming_head_and_position():
    g = graph()
    hidden = g.token_table("hidden", {"b": 1})
    g.lookup("fetch", 0, 0, [g.t], clear=hidden)
    ev = feed(g, ["a", "b"])
    assert column(ev, "fetch") == [0, 0]
    g2 = graph()
    g2.lookup("fetch", 0, 0, [g2.t], clear=g2.token_table("hidden", {"b": 1}))
    with pytest.raises(EvaluationError, match=r"'fetch'.*t=0"):
        feed(g2, ["b"])


def test_unique_averages_exact_ties():
    g = graph()
    key = g.token_table("key", {"a": 5, "b": 5, "c": 9})
    value = g.token_table("value", {"a": 2, "b": 4, "c": 100})
    g.lookup("fetch", 5, key, [value, g.t], tie="unique")
    ev = feed(g, ["a", "c", "b"])
    assert column(ev, "fetch.0") == [2, 2, 3]  # (2 + 4) / 2 once both key-5 tokens exist
    assert column(ev, "fetch.1") == [0, 0, 1]  # positions 0 and 2 average to 1


def test_unique_average_that_is_not_an_integer_breaks_exactness():
    g = graph()
    key = g.token_table("key", {"a": 5, "b": 5})
    value = g.token_table("value", {"a": 1, "b": 2})
    g.lookup("fetch", 5, key, [value], tie="unique")
    with pytest.raises(EvaluationError, match=r"'fetch'.*3/2.*t=1.*exact"):
        feed(g, ["a", "b"])


def test_unique_closest_key_and_equidistant_keys_average():
    g = graph()
    key = g.token_table("key", {"a": 2, "b": 6, "c": 20})
    value = g.token_table("value", {"a": 10, "b": 30, "c": 1})
    query = g.token_table("query", {"d": 4, "halt": 7})
    g.lookup("fetch", query, key, [value], tie="unique")
    ev = feed(g, ["a", "b", "c", "d", "halt"])
    assert column(ev, "fetch")[3] == 20  # keys 2 and 6 tie at distance 2: (10 + 30) / 2
    assert column(ev, "fetch")[4] == 30  # query 7: key 6 is closest


def test_mean_averages_over_uncleared_tokens():
    g = graph()
    value = g.token_table("value", {"a": 1, "b": 2, "c": 7})
    g.mean("avg", [value, g.t], clear=g.token_table("skip", {"c": 1}))
    ev = feed(g, ["a", "b", "c", "b"])
    assert column(ev, "avg.0") == [1, Fraction(3, 2), Fraction(3, 2), Fraction(5, 3)]
    assert column(ev, "avg.1") == [0, Fraction(1, 2), Fraction(1, 2), Fraction(4, 3)]


def test_count_before_counts_earlier_tokens_only():
    g = graph()
    is_a = g.token_table("is_a", {"a": 1})
    is_b = g.token_table("is_b", {"b": 1})
    g.count_before("seen", [is_a, is_b])
    ev = feed(g, ["a", "a", "b", "c", "a", "b"])
    assert column(ev, "seen.0.snap") == [0, 1, 2, 2, 2, 3]
    assert column(ev, "seen.1.snap") == [0, 0, 0, 1, 1, 1]
    assert column(ev, "seen.0.scaled") == [1, 2, 2, 2, 3, 3]  # mean * (t+1): the inclusive count


# -- checks made while running ------------------------------------------------------------------
def test_a_value_outside_its_bounds_is_an_error_naming_feature_and_position():
    g = graph()
    g.neurons("liar", [(1, g.t, g.one)], bounds=(0, 2))  # t exceeds the claimed bound at t=3
    ev = feed(g, ["a", "a", "a"])
    with pytest.raises(EvaluationError, match=r"'liar'.*value 3 at t=3.*\[0, 2\]"):
        ev.step("a")
    with pytest.raises(EvaluationError, match="already failed"):
        ev.step("a")


def test_unknown_token_and_horizon_are_errors():
    g = graph(max_exact_tokens=3)
    ev = feed(g, ["a", "b", "c"])
    with pytest.raises(EvaluationError, match="beyond max_exact_tokens = 3"):
        ev.step("a")
    with pytest.raises(EvaluationError, match="'zz'.*not in the vocabulary"):
        feed(graph(), ["zz"])


# -- output and decoding ---------------------------------------------------------------------
def test_argmax_takes_the_lowest_index_on_an_exact_tie():
    g = graph()
    g.set_logits({"c": 5, "b": 5, "d": 4})
    assert Evaluator(g).step("a") == "b"
    g2 = graph()
    g2.set_logits({"c": -1})  # absent tokens score 0: 'a' is first among them
    assert Evaluator(g2).step("a") == "a"


def test_run_follows_the_decoding_loop():
    g = graph()
    # next token id = t + 1 while t < 3, then the halt token (id 4)
    late = g.step("late", g.t - 3)
    g.set_next_token_id(g.select("next", late, 4, g.t + 1))
    result = run(g, ["a"], max_new_tokens=10)
    assert result.trace == ["b", "c", "d", "halt"] and result.halted
    assert result.output == b"B"
    limited = run(g, ["a"], max_new_tokens=2)
    assert limited.trace == ["b", "c"] and not limited.halted
    with pytest.raises(EvaluationError, match="empty"):
        run(g, [], max_new_tokens=2)
