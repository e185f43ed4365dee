"""The native (C++) engine: same traces as the dense definition, same decoding rules, exact hulls.

Skipped, with the reason shown, only when the extension is not importable
(``pip install ./native`` failed or was skipped); CI installs it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wasmformer.engines import native
from wasmformer.engines.base import EngineError, PrecisionHorizonError, generate
from wasmformer.engines.dense import DenseEngine

from tests.engines.handbuilt import build_model


pytestmark = pytest.mark.skipif(not native.available(), reason=native.unavailable_reason())

PROMPT = [3, 10, 17, 4]


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def _assert_same_trace(model, prompt, tokens):
    expected = generate(DenseEngine(model), prompt, max_new_tokens=tokens)
    result = native.generate_fast(native.NativeEngine(model), prompt, max_new_tokens=tokens, batch=97)
    assert _first_difference(expected.trace, result.trace) is None
    assert (result.stop_reason, result.halted, result.output) == (expected.stop_reason, expected.halted, expected.output)
    return expected


# -- traces against the dense definition ------------------------------------------------------------
def test_handbuilt_model_matches_dense_for_thousands_of_tokens():
    expected = _assert_same_trace(build_model(), PROMPT, 3000)
    assert len(set(expected.trace)) > 30  # the trace goes through many states, not a short cycle


def test_wide_model_matches_dense():
    _assert_same_trace(build_model(wide=4, addresses=24), [5, 1, 30, 22, 9], 2000)


def test_halting_model_matches_dense():
    expected = _assert_same_trace(build_model(halt_after=900), PROMPT, 5000)
    assert expected.halted and len(expected.trace) < 5000


def test_non_integer_keys_fall_back_to_a_scan_and_still_match_dense():
    model = build_model(recency_head=True)
    engine = native.NativeEngine(model)
    result = native.generate_fast(engine, [40, 7, 12], max_new_tokens=1500)
    assert engine.stats()["scanning_heads"] == 1
    expected = generate(DenseEngine(model), [40, 7, 12], max_new_tokens=1500)
    assert _first_difference(expected.trace, result.trace) is None


def assert_residuals_match_dense(model, fast, steps: int) -> None:
    """Decode ``steps`` tokens (PROMPT, then greedy) on both engines: the same token and residual at each."""
    dense = DenseEngine(model)
    token = PROMPT[0]
    for position in range(steps):
        token = PROMPT[position] if position < len(PROMPT) else token
        residual = dense.residual(token)
        expected = int(np.argmax(model.unembed @ residual))
        assert fast.step(token) == expected, position
        # Fractions (means, recency) may differ in the last bits between the two summation orders.
        np.testing.assert_allclose(np.array(fast._native.residual()), residual, rtol=1e-12, atol=1e-12)
        token = expected


def test_values_of_past_positions_are_recomputed_exactly():
    """Positional heads keep no values: they recompute a past position's value from its token,
    its position (t, t2, recency) and the recorded slots that earlier layers computed."""
    model = build_model(recall_values=True)
    fast = native.NativeEngine(model)
    assert fast.head_kinds()[2][2:4] == ["positional", "positional"]
    assert_residuals_match_dense(model, fast, 1500)
    stats = fast.stats()
    # ksq, count, mem, prev, cnt, big; count (a mean times t + 1) is the one stored as float64
    assert stats["recorded_slots"] == 6 and stats["wide_slots"] == 1


# The real machine on a real program, native against the Python hull engine token for token: a C program
# in tests/test_api.py; every example's first 20,000 tokens in make test-all (tests/machine/test_model_traces.py,
# test_hull_engine_agrees_with_the_fast_engine).


def test_head_kinds_are_read_from_the_weights():
    engine = native.NativeEngine(build_model())
    kinds = engine.head_kinds(chains=True)
    assert kinds[0] == ["positional", "mean", "hull-upper", "hull-upper"]  # query y is always +S
    assert kinds[1] == ["positional", "hull-upper", "unused", "unused"]
    assert kinds[2][1] == "hull"  # its query y is +S, -S or 0 depending on the token
    assert engine.head_kinds()[0] == ["positional", "mean", "hull", "hull"]


def test_step_follows_the_engine_protocol():
    model = build_model()
    dense, fast = DenseEngine(model), native.NativeEngine(model)
    assert fast.name == "native" and fast.model is model
    token_dense = token_fast = PROMPT[0]
    for position in range(400):
        token = PROMPT[position] if position < len(PROMPT) else token_dense
        token_dense, token_fast = dense.step(token), fast.step(token)
        assert token_dense == token_fast, position
    assert fast.position == 400
    assert generate(native.NativeEngine(model), PROMPT, max_new_tokens=300).trace == \
        native.generate_fast(native.NativeEngine(model), PROMPT, max_new_tokens=300).trace


@pytest.mark.parametrize("machine", ["counter", "running_sum", "memory", "stack"])
def test_compiled_example_machines_match_dense(machine):
    examples = pytest.importorskip("wasmformer.graph.examples", reason="the graph examples are not written yet")
    compiler = pytest.importorskip("wasmformer.compiler", reason="the compiler is not written yet")
    if not hasattr(compiler, "compile_graph"):
        pytest.skip("the compiler has no compile_graph yet")
    builders = {
        "counter": (lambda: examples.counter_machine(width=2), (0,)),
        "running_sum": (examples.running_sum_machine, ([3, 1, 4, 1, 5, 9, 2, 6],)),
        "memory": (examples.memory_machine, ([("store", 3, 7), ("store", 9, 200), ("load", 3), ("store", 3, 5),
                                               ("load", 3), ("load", 9)],)),
        "stack": (examples.stack_machine, (examples.random_stack_program(20, seed=1),)),
    }
    build, arguments = builders[machine]
    graph, make_prompt = build()
    model, _ = compiler.compile_graph(graph, log=lambda line: None)
    prompt = [model.token_ids[token] for token in make_prompt(*arguments)]
    _assert_same_trace(model, prompt, 2000)


# -- the decoding loop: the rules of base.generate ---------------------------------------------------
def test_horizon_refusal_is_the_same_as_generate():
    model = build_model(max_exact_tokens=60)
    streamed_dense: list[int] = []
    with pytest.raises(PrecisionHorizonError) as dense_error:
        generate(DenseEngine(model), PROMPT, on_tokens=streamed_dense.extend)
    streamed_native: list[int] = []
    with pytest.raises(PrecisionHorizonError) as native_error:
        native.generate_fast(native.NativeEngine(model), PROMPT, on_tokens=streamed_native.extend, batch=7)
    assert str(native_error.value) == str(dense_error.value)
    assert streamed_native == streamed_dense and len(streamed_native) == 60 - len(PROMPT) + 1


def test_a_prompt_beyond_the_horizon_is_refused():
    model = build_model(max_exact_tokens=3)
    with pytest.raises(PrecisionHorizonError, match="max_exact_tokens = 3"):
        native.generate_fast(native.NativeEngine(model), PROMPT)


def test_step_refuses_positions_beyond_the_horizon():
    engine = native.NativeEngine(build_model(max_exact_tokens=5))
    for token in range(5):
        engine.step(token)
    with pytest.raises(PrecisionHorizonError):
        engine.step(0)


@pytest.mark.parametrize("max_new_tokens", [0, 1, 2, 250])
def test_max_new_tokens_stops_like_generate(max_new_tokens):
    model = build_model()
    expected = generate(DenseEngine(model), PROMPT, max_new_tokens=max_new_tokens)
    result = native.generate_fast(native.NativeEngine(model), PROMPT, max_new_tokens=max_new_tokens)
    assert result.trace == expected.trace and result.stop_reason == "max_new_tokens"
    assert result.prompt_tokens == len(PROMPT)


def test_callback_receives_every_token_in_batches():
    batches: list[list[int]] = []
    result = native.generate_fast(native.NativeEngine(build_model()), PROMPT, max_new_tokens=1000,
                                  on_tokens=batches.append, batch=128)
    assert [token for batch in batches for token in batch] == result.trace
    assert [len(batch) for batch in batches] == [128] * 7 + [104]


def test_callback_exceptions_stop_the_run():
    def stop(_tokens):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        native.generate_fast(native.NativeEngine(build_model()), PROMPT, max_new_tokens=10_000, on_tokens=stop,
                             batch=10)


def test_bad_input_is_a_clear_engine_error():
    engine = native.NativeEngine(build_model())
    with pytest.raises(EngineError, match="the prompt is empty"):
        native.generate_fast(engine, [])
    with pytest.raises(EngineError, match="outside the vocabulary"):
        engine.step(10_000)


def test_missing_extension_message(monkeypatch):
    monkeypatch.setattr(native, "_engine", None)
    assert not native.available()
    with pytest.raises(EngineError, match="pip install ./native"):
        native.NativeEngine(build_model())


# -- one hull against brute force ----------------------------------------------------------------------
def _brute_force(points, qx, qy):
    """The exact argmax of q . k (q taken exactly as the float it is), ties averaged."""
    scores = [Fraction(qx) * kx + Fraction(qy) * ky for kx, ky, _, _ in points]
    best = max(scores)
    winners = [(vx, vy) for score, (_, _, vx, vy) in zip(scores, points) if score == best]
    return (float(sum(Fraction(w[0]) for w in winners) / len(winners)),
            float(sum(Fraction(w[1]) for w in winners) / len(winners)))


small = st.integers(-6, 6)
coordinate = st.one_of(small, st.integers(-(2**61), 2**61))
query_component = st.one_of(small, st.integers(-(2**40), 2**40),
                            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def hull_sessions(draw):
    """Inserts (keys with duplicates, collinear runs, huge values) interleaved with queries."""
    points, operations = [], []
    for _ in range(draw(st.integers(1, 30))):
        if points and draw(st.integers(0, 3)) == 0:
            kx, ky = draw(st.sampled_from(points))[:2]  # a duplicate key
        elif len(points) >= 2 and draw(st.integers(0, 3)) == 0:
            (ax, ay, _, _), (bx, by, _, _) = draw(st.sampled_from(points)), draw(st.sampled_from(points))
            step = draw(st.integers(-3, 3))
            kx, ky = ax + step * (bx - ax), ay + step * (by - ay)  # on the line through two keys
        else:
            kx, ky = draw(coordinate), draw(coordinate)
        kx, ky = int(float(kx)), int(float(ky))  # keys are floats: the brute force sees the same numbers
        assume(abs(kx) < 2**62 and abs(ky) < 2**62)  # the exact integer regime
        point = (kx, ky, draw(st.integers(-50, 50)), draw(st.integers(-50, 50)))
        points.append(point)
        operations.append(("insert", point))
        for _ in range(draw(st.integers(0, 2))):
            if len(points) >= 2 and draw(st.booleans()):
                (ax, ay, _, _), (bx, by, _, _) = draw(st.sampled_from(points)), draw(st.sampled_from(points))
                query = (float(by - ay), float(ax - bx))  # perpendicular to two keys: ties when both are best
            else:
                query = (draw(query_component), draw(query_component))
            operations.append(("query", query))
    return operations


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(operations=hull_sessions())
def test_hull_equals_brute_force(operations):
    hull = native._engine.Hull()
    points = []
    for kind, item in operations:
        if kind == "insert":
            points.append(item)
            hull.insert(float(item[0]), float(item[1]), float(item[2]), float(item[3]))
        else:
            qx, qy = item
            assert hull.query(qx, qy) == _brute_force(points, qx, qy), (qx, qy)
    assert hull.exact
    assert hull.stored_points <= 2 * len(points)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.tuples(st.integers(-40, 40), st.integers(-40, 40)), min_size=1, max_size=30),
       queries=st.lists(st.tuples(small, small), min_size=1, max_size=5))
def test_hull_with_one_chain_answers_its_half_plane(keys, queries):
    upper, lower = native._engine.Hull(True, False), native._engine.Hull(False, True)
    points = [(kx, ky, index, 1) for index, (kx, ky) in enumerate(keys)]
    for kx, ky, vx, vy in points:
        upper.insert(kx, ky, vx, vy)
        lower.insert(kx, ky, vx, vy)
    for qx, qy in queries:
        qy = abs(qy) + 1
        assert upper.query(qx, qy) == _brute_force(points, qx, qy)
        assert lower.query(qx, -qy) == _brute_force(points, qx, -qy)
    assert upper.stored_points <= len(keys)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=1, max_size=25),
       fraction_at=st.integers(0, 24),
       queries=st.lists(st.tuples(small, small), min_size=1, max_size=5))
def test_non_integer_keys_switch_to_a_scan_with_the_same_answers(keys, fraction_at, queries):
    """Keys with a .5 part leave the integer regime; with these small numbers float scores are exact."""
    hull = native._engine.Hull()
    points = []
    for index, (kx, ky) in enumerate(keys):
        key = (kx + 0.5, float(ky)) if index == fraction_at else (float(kx), float(ky))
        points.append((Fraction(key[0]), Fraction(key[1]), index, -index))
        hull.insert(key[0], key[1], float(index), float(-index))
        for qx, qy in queries:
            assert hull.query(float(qx), float(qy)) == _brute_force(points, qx, qy)
    assert hull.exact == (fraction_at >= len(keys))


@settings(max_examples=300, deadline=None)
@given(a=st.integers(-5, 5), c0=st.integers(-100, 100), b=st.integers(1, 4), d=st.integers(-20, 20),
       c1=st.integers(-100, 100), length=st.integers(1, 60),
       queries=st.lists(st.tuples(query_component, query_component), min_size=1, max_size=6))
def test_positional_head_equals_the_hull_on_the_same_keys(a, c0, b, d, c1, length, queries):
    head = native._engine.PositionalHead(a, c0, b, d, c1)
    hull = native._engine.Hull()
    points = []
    for t in range(length):
        key = (a * t + c0, -b * t * t + d * t + c1)
        value = (float(t), float((t * 7) % 5))
        points.append((*key, *value))
        head.append(*value)
        hull.insert(float(key[0]), float(key[1]), *value)
    for qx, qy in queries + [(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (3.0, -2.0)]:
        expected = _brute_force(points, qx, qy)
        assert head.query(qx, qy) == expected, (qx, qy)
        assert hull.query(qx, qy) == expected, (qx, qy)


def _plain_integer(value: float) -> bool:
    return math.isfinite(value) and value == int(value) and not (value == 0.0 and math.copysign(1.0, value) < 0)


def _narrowest_form(values: list[float]) -> str:
    if not all(_plain_integer(value) for value in values):
        return "float64"
    for form, low, high in (("uint8", 0, 2**8 - 1), ("uint16", 0, 2**16 - 1)):
        if all(low <= value <= high for value in values):
            return form
    if all(-(2**31) <= value < 2**31 for value in values) or all(0 <= value < 2**32 for value in values):
        return "bits32"
    return "float64"


column_value = st.one_of(
    st.integers(0, 300), st.integers(0, 2**16 + 5), st.integers(-(2**31), 2**32 - 1),
    st.integers(-(2**53), 2**53), st.sampled_from([-0.0, 0.5, -1.0, 2.0**31, 2.0**32, float("inf")]),
    st.floats(allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(column_value, max_size=40).map(lambda values: [float(value) for value in values]))
def test_recorded_slot_column_reads_back_every_value_exactly(values):
    column = native._engine.SlotColumn()
    for value in values:
        column.append(value)
    assert len(column) == len(values)
    stored = np.array([column[index] for index in range(len(values))], dtype=np.float64)
    assert stored.view(np.int64).tolist() == np.array(values, dtype=np.float64).view(np.int64).tolist()  # bit for bit
    assert column.form == _narrowest_form(values)


CLEARED = -(2**50)  # a clear penalty: far below every live key


@st.composite
def memo_sessions(draw):
    """Inserts that mostly fall far below the chain, repeated queries from a small pool, and
    the keys that must invalidate a remembered answer: straight above a winner, the same key
    as a winner (values summed), on a winning edge, beyond the ends; sometimes a fraction."""
    pool = draw(st.lists(st.tuples(small, st.integers(1, 4)), min_size=1, max_size=3))
    points, operations = [], []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["cleared", "cleared", "cleared", "random", "duplicate", "above", "fraction"]))
        kx, ky = float(draw(small)), float(draw(small))
        if kind == "cleared":
            ky = float(CLEARED + draw(st.integers(0, 50)))
        elif kind in ("duplicate", "above") and points:
            kx, ky = draw(st.sampled_from(points))[:2]
            ky += draw(st.integers(1, 3)) if kind == "above" else 0
        elif kind == "fraction" and draw(st.integers(0, 3)) == 0:
            kx += 0.5
        point = (kx, ky, float(draw(st.integers(-50, 50))), float(draw(st.integers(-50, 50))))
        points.append(point)
        operations.append(("insert", point))
        for _ in range(draw(st.integers(0, 3))):
            qx, qy = draw(st.sampled_from(pool))
            operations.append(("query", (float(qx), float(qy * draw(st.sampled_from([1, -1]))))))
    return operations


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=memo_sessions())
def test_remembered_answers_and_skipped_keys_equal_brute_force(operations):
    """Three hulls: both chains and the extremes; one chain per sign of q_y, fed only the keys
    it does not ignore. Every answer, memoised or not, equals the exact argmax of every key."""
    full = native._engine.Hull()
    halves = {1: native._engine.Hull(True, False, False), -1: native._engine.Hull(False, True, False)}
    points = []
    for kind, item in operations:
        if kind == "insert":
            points.append(item)
            full.insert(*item)
            for half in halves.values():
                if not half.ignores(item[0], item[1]):
                    half.insert(*item)
        else:
            qx, qy = item
            expected = _brute_force(points, qx, qy)
            assert full.query(qx, qy) == expected, (qx, qy)
            assert halves[1 if qy > 0 else -1].query(qx, qy) == expected, (qx, qy)


def _query_after_each(inserts, query):
    hull, points, answers = native._engine.Hull(True, False, False), [], []
    for point in inserts:
        points.append(point)
        hull.insert(*point)
        answers.append(hull.query(*query))
        assert answers[-1] == _brute_force(points, *query), (point, answers)
    return hull, answers


def test_a_memoised_answer_survives_cleared_keys_and_not_a_new_winner():
    sentinel, cleared = (0.0, 0.0, 1.0, 0.0), [(float(x), float(CLEARED + x), 9.0, 9.0) for x in range(-3, 4)]
    hull, answers = _query_after_each(
        [(-4.0, -20.0, 2.0, 0.0), sentinel, (4.0, -20.0, 3.0, 0.0), *cleared, (1.0, 1.0, 5.0, 0.0),
         *cleared, (1.0, 3.0, 6.0, 0.0), *cleared],
        (0.0, 1.0),
    )
    assert answers[1:10] == [(1.0, 0.0)] * 9  # the cleared keys change nothing
    assert answers[10:18] == [(5.0, 0.0)] * 8  # a key that beats the remembered winner
    assert answers[18:] == [(6.0, 0.0)] * 8    # one straight above the winner replaces it
    assert all(hull.ignores(x, y) for x, y, _, _ in cleared)
    assert not hull.ignores(-5.0, float(CLEARED))  # beyond the ends: it becomes an end itself


def test_a_memoised_answer_takes_identical_keys_and_ties_on_its_edge():
    _, answers = _query_after_each(
        [(0.0, 0.0, 2.0, 0.0), (0.0, 0.0, 4.0, 0.0),                      # the same key: values summed
         (-2.0, 0.0, 0.0, 6.0), (2.0, 0.0, 0.0, 6.0), (1.0, 0.0, 3.0, 0.0)],  # an edge perpendicular to q
        (0.0, 1.0),
    )
    assert answers == [(2.0, 0.0), (3.0, 0.0), (2.0, 2.0), (1.5, 3.0), (1.8, 2.4)]


def test_idle_bank_heads_match_dense_residual_by_residual():
    """Eight 'latest' heads over memory banks: each token clears its key in seven of them and
    queries those at address 0, so nearly every key is ignored and nearly every query repeats.
    The banks' outputs (the winner's value and position) reach the residual stream only."""
    model = build_model(banks=8)
    fast = native.NativeEngine(model)
    assert fast.head_kinds(chains=True)[0][4:] == ["hull-upper"] * 8
    assert_residuals_match_dense(model, fast, 2000)
    assert fast.stats()["hull_points"] <= 4 * 16 + 8 * 2 * 16  # per bank: its distinct addresses, cleared and live


def test_bank_model_traces_equal_the_python_hull_engine_and_dense():
    from wasmformer.engines.hull import HullEngine

    model = build_model(banks=8, addresses=24)
    expected = _assert_same_trace(model, [5, 1, 30, 22, 9], 2500)
    assert generate(HullEngine(model), [5, 1, 30, 22, 9], max_new_tokens=2500).trace == expected.trace


def test_hull_memory_follows_the_distinct_keys_not_the_trace():
    hull = native._engine.Hull(True, False)
    rng = np.random.default_rng(0)
    for t in range(20_000):  # 'latest' keys over 50 addresses: (2B a, -B a^2 + t)
        address = int(rng.integers(50))
        hull.insert(2.0 * 2**15 * address, -(2.0**15) * address * address + t, float(address), float(t))
    assert hull.stored_points <= 50
    for address in range(50):
        vx, _ = hull.query(float(address), 1.0)
        assert vx == address
