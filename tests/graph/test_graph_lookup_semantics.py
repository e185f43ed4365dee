"""The evaluator's head indexes against the lookup semantics written out by brute force."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from wasmformer.graph.evaluate import LatestIndex, MeanIndex, UniqueIndex

# a token: (key, cleared, value); keys from a small range so that ties are common
tokens = st.lists(st.tuples(st.integers(-4, 4), st.booleans(), st.integers(-50, 50)), min_size=1, max_size=30)
queries = st.one_of(st.integers(-7, 7), st.fractions(-7, 7, max_denominator=4))


def brute_latest(history, q):
    candidates = [(-(q - k) ** 2, j, v) for j, (k, cleared, v) in enumerate(history) if not cleared]
    return max(candidates)[2] if candidates else None


def brute_unique(history, q):
    candidates = [(-(q - k) ** 2, v) for k, cleared, v in history if not cleared]
    if not candidates:
        return None
    best = max(score for score, _ in candidates)
    winners = [v for score, v in candidates if score == best]
    return Fraction(sum(winners), len(winners))


def brute_mean(history):
    values = [v for _, cleared, v in history if not cleared]
    return Fraction(sum(values), len(values)) if values else None


def fill(index, history):
    for position, (key, cleared, value) in enumerate(history):
        if not cleared:
            index.add(key, position, (value,))
    return index


def first(result):
    return None if result is None else result[0]


@settings(max_examples=300, deadline=None)
@given(tokens, queries)
def test_latest_is_closest_key_then_newest(history, q):
    assert first(fill(LatestIndex(), history).query(q)) == brute_latest(history, q)


@settings(max_examples=300, deadline=None)
@given(tokens, queries)
def test_unique_averages_every_exact_tie(history, q):
    assert first(fill(UniqueIndex(1), history).query(q)) == brute_unique(history, q)


@settings(max_examples=100, deadline=None)
@given(tokens)
def test_mean_is_over_uncleared_tokens(history):
    assert first(fill(MeanIndex(1), history).query(0)) == brute_mean(history)
