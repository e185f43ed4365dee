"""HullCache against a brute-force exact argmax over every inserted key."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from wasmformer.engines.hull_cache import HullCache

CLEARED = 2.0**40  # how far the model pushes a cleared key down
LARGE = 2**52  # largest coordinates the float64 budget allows


def brute_force(keys: list[tuple[float, float, float, float]], qx: float, qy: float) -> tuple[float, float]:
    """Exact scores of every key; the average value of those attaining the maximum."""
    q = (Fraction(qx), Fraction(qy))
    scores = [q[0] * Fraction(kx) + q[1] * Fraction(ky) for kx, ky, _, _ in keys]
    best = max(scores)
    tied = [key for key, score in zip(keys, scores) if score == best]
    total1 = sum(Fraction(v1) for _, _, v1, _ in tied)
    total2 = sum(Fraction(v2) for _, _, _, v2 in tied)
    return float(total1 / len(tied)), float(total2 / len(tied))


def check(operations) -> HullCache:
    """Run inserts and queries in order; every query must match the brute force exactly."""
    cache, keys = HullCache(), []
    for operation in operations:
        if operation[0] == "insert":
            keys.append(operation[1:])
            cache.insert(*operation[1:])
        elif keys:
            _, qx, qy = operation
            assert cache.query(qx, qy) == brute_force(keys, qx, qy), (operation, keys)
    return cache


values = st.integers(-5, 5).map(float) | st.floats(-1e6, 1e6, allow_nan=False)
small_ints = st.integers(-6, 6).map(float)
queries = st.tuples(st.just("query"), small_ints, small_ints)


def operations(keys):
    inserts = st.tuples(st.just("insert"), *keys, values, values)
    return st.lists(inserts | queries, min_size=1, max_size=80)


@settings(max_examples=400)
@given(operations((small_ints, small_ints)))
def test_small_integer_keys_with_duplicates_and_collinear_runs(ops):
    check(ops)


@settings(max_examples=200)
@given(operations((st.integers(0, 3).map(float), st.integers(-20, 20).map(float))))
def test_few_columns_many_points_per_x(ops):
    check(ops)


@settings(max_examples=200)
@given(operations((st.integers(-3, 3).map(lambda k: 5.0 * k), st.integers(-3, 3).map(lambda k: -3.0 * k))))
def test_every_key_on_one_line(ops):
    check(ops + [("query", 3.0, 5.0), ("query", -3.0, -5.0), ("query", 0.0, 0.0)])


finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
dyadic = st.integers(-64, 64).map(lambda n: n / 8)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.just("insert"), finite | dyadic, finite | dyadic, values, values)
                | st.tuples(st.just("query"), finite | dyadic | small_ints, finite | dyadic | small_ints),
                min_size=1, max_size=60))
def test_float_keys_and_queries(ops):
    check(ops)


huge = st.integers(-LARGE, LARGE).map(float)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.just("insert"), huge | small_ints, huge | small_ints, values, values)
                | st.tuples(st.just("query"), huge | small_ints, huge | small_ints), min_size=1, max_size=60))
def test_coordinates_up_to_2_to_the_52(ops):
    check(ops)


@st.composite
def parabola_key(draw):
    """A lookup key (2k, -k^2 + small) as the model builds it, sometimes cleared far below."""
    k = draw(st.integers(-8, 8))
    small = draw(st.sampled_from([0.0, 0.25, 0.5]) | st.floats(0, 0.9))
    cleared = draw(st.booleans()) and draw(st.booleans())
    return ("insert", 2.0 * k, -k * k + small - (CLEARED if cleared else 0.0),
            draw(values), draw(values))


lookup_queries = st.tuples(st.just("query"), st.integers(-10, 10).map(lambda q: 1024.0 * q), st.just(1024.0))


@settings(max_examples=300)
@given(st.lists(parabola_key() | lookup_queries | queries, min_size=1, max_size=100))
def test_lookup_keys_on_a_parabola(ops):
    check(ops)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.just("insert"), small_ints, small_ints, values, values), min_size=1, max_size=30))
def test_axis_queries(ops):
    check(ops + [("query", 1.0, 0.0), ("query", -1.0, 0.0), ("query", 0.0, 0.0),
                 ("query", 0.0, 1.0), ("query", 0.0, -1.0), ("query", 0.0, 2.0**-30)])


def test_identical_keys_average_their_values():
    cache = HullCache()
    for value in (1.0, 2.0, 4.0):
        cache.insert(3.0, 3.0, value, -value)
    assert cache.query(1.0, 1.0) == (7 / 3, -7 / 3)
    assert cache.upper_size == cache.lower_size == 1


def test_collinear_edge_points_tie_with_the_endpoints():
    cache = HullCache()
    for x in range(5):  # the segment from (0, 4) to (4, 0); (2, 5) above would hide none of it from (1, 1)
        cache.insert(float(x), float(4 - x), float(x), 0.0)
    cache.insert(2.0, -9.0, 100.0, 0.0)
    assert cache.query(1.0, 1.0) == (2.0, 0.0)  # all five score 4: mean of 0..4
    assert cache.query(1.0, 2.0) == (0.0, 0.0)


def test_memory_follows_the_hull_not_the_inserts():
    distinct = range(-5, 6)
    cache, latest = HullCache(), {}
    for t in range(100_000):
        k = distinct[(t * 7) % len(distinct)]
        cache.insert(2.0 * k, -k * k + t, float(t), 1.0)
        latest[k] = t  # at one x the newest key is the highest: it replaces the older ones
    assert cache.upper_size <= len(distinct) and cache.lower_size <= len(distinct)
    assert cache.count == 100_000
    winner = max(distinct, key=lambda k: 6 * k - k * k + latest[k])
    assert cache.query(3 * 1024.0, 1024.0) == (float(latest[winner]), 1.0)
