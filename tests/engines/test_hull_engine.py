"""HullEngine against DenseEngine on hand-built random models, and its head specialisations."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmformer.engines import make_engine
from wasmformer.engines.base import generate
from wasmformer.engines.dense import DenseEngine
from wasmformer.engines.hull import HullEngine, KeyPolynomial, PositionalHead, positional_key
from wasmformer.engines.hull_cache import HullCache
from wasmformer.model import Layer, Model

from tests.engines.handbuilt import build_model


TEMPERATURE = 2.0**10  # integer scores at least 1 apart, times this, make softmax a hard max
SPREAD = 1024  # lookup keys weigh the matched feature by more than any position (traces stay shorter)
LOGIT_SCALE = 1024  # integer logit parts dominate the (possibly inexact) averaged part
T, T2, RECENCY, ONE = range(4)
N_FEATURES = 4


class _Slots:
    """Hands out residual slots; remembers which hold exact integers that later weights may read."""

    def __init__(self):
        self.size = 4
        self.features = self.take(N_FEATURES)  # token features in 0..3
        self.squares = self.take(N_FEATURES)  # their squares (lookup keys need -k^2)
        self.sink = self.take(1)[0]  # sum of the averaging heads' outputs: read only by the logits
        self.integers = list(self.features)
        self.found: list[int] = []  # one fetched and one looked-up feature per layer

    def take(self, count: int) -> list[int]:
        slots = list(range(self.size, self.size + count))
        self.size += count
        return slots


def _random_model(seed: int, n_layers: int, vocab_size: int = 16) -> Model:
    """A random integer-weight model whose attention has hard-max margins.

    Heads per layer: 0 positional fetch (k = (2t, -t^2)), 1 tie-free lookup by
    a token feature (the newest match wins by the position in the key), 2 mean
    head (constant key), 3 random integer head (may tie), 4 random parabolic
    positional head (may tie), 5 unused, 6 positional fetch from about t/2. Heads that may tie write their
    average into the sink slot, which the logits only read with small distinct
    coefficients, so rounding of averages cannot change the argmax; every
    other slot holds an exact integer.
    """
    rng = np.random.default_rng(seed)
    slots = _Slots()
    layer_plans = [_plan_layer(rng, slots) for _ in range(n_layers)]
    d = slots.size + 0
    embed = np.zeros((vocab_size, d))
    embed[:, ONE] = 1.0
    features = rng.integers(0, 4, size=(vocab_size, N_FEATURES))
    embed[:, slots.features] = features
    embed[:, slots.squares] = features**2
    layers = [plan(d) for plan in layer_plans]
    # next token = the id nearest to s = the sum of what the fetch and lookup heads found: logits 2 v s - v^2,
    # plus small random multiples of the other integer slots
    unembed = np.zeros((vocab_size, d))
    unembed[:, slots.integers] = rng.integers(-1, 2, size=(vocab_size, len(slots.integers)))
    ids = np.arange(vocab_size)
    unembed[:, slots.found] = 8 * ids[:, None]
    unembed[:, ONE] = -4 * ids**2
    unembed[:, slots.integers + [ONE]] *= LOGIT_SCALE
    unembed[:, slots.sink] = np.arange(vocab_size)  # distinct: equal integer parts are decided by sink > 0
    unembed[vocab_size - 1, ONE] = -(2.0**40)  # never halt: traces run to the token limit
    return Model(vocab=[f"v{i}" for i in range(vocab_size - 1)] + ["halt"], halt_token="halt",
                 positional={"t": T, "t2": T2, "recency": RECENCY}, output_bytes={}, max_exact_tokens=5_000,
                 embed=embed, unembed=unembed, layers=layers)


def _plan_layer(rng: np.random.Generator, slots: _Slots):
    """Choose this layer's slots now (so the model width is known), fill the weights later."""
    readable = list(slots.integers)  # integer slots written before this layer
    fetched, looked_up, halfway, ffn_out = slots.take(2), slots.take(2), slots.take(2), slots.take(2)
    slots.integers += fetched + looked_up + halfway + ffn_out
    slots.found += [fetched[0], looked_up[0], halfway[0]]
    n_heads, n_hidden = 7, 3

    def build(d: int) -> Layer:
        wq, wk, wv = (np.zeros((2 * n_heads, d)) for _ in range(3))
        wo = np.zeros((d, 2 * n_heads))

        def values(head: int, sources: list[int], targets: list[int] | None) -> None:
            for row, source in zip((2 * head, 2 * head + 1), rng.choice(sources, size=2)):
                wv[row, source] = 1.0
            for column, target in zip((2 * head, 2 * head + 1), targets or [slots.sink] * 2):
                wo[target, column] = 1.0

        # 0: fetch the token (t - lag - feature) positions back; the vertex is an integer, so no tie
        lag, feature = int(rng.integers(0, 4)), int(rng.choice(slots.features))
        wk[0, T], wk[1, T2] = 2.0, -1.0
        wq[0, T], wq[0, ONE], wq[0, feature], wq[1, ONE] = TEMPERATURE, -lag * TEMPERATURE, -TEMPERATURE, TEMPERATURE
        values(0, slots.features, fetched)
        # 1: newest token whose feature k equals the query feature: key (2Wk, -Wk^2 + t)
        index = int(rng.integers(0, N_FEATURES))
        wk[2, slots.features[index]], wk[3, slots.squares[index]], wk[3, T] = 2.0 * SPREAD, -SPREAD, 1.0
        wq[2, int(rng.choice(readable))], wq[3, ONE] = TEMPERATURE, TEMPERATURE
        values(1, slots.features, looked_up)
        # 2: mean head, constant key
        wk[5, ONE] = 3.0
        wq[4:6, slots.features] = TEMPERATURE * rng.integers(-2, 3, size=(2, N_FEATURES))
        values(2, slots.features, None)
        # 3: random integer keys and queries over features, t and the constant
        generic_inputs = slots.features + [T, ONE]
        wk[6:8, generic_inputs] = rng.integers(-2, 3, size=(2, len(generic_inputs)))
        wq[6:8, generic_inputs] = TEMPERATURE * rng.integers(-2, 3, size=(2, len(generic_inputs)))
        values(3, slots.features, None)
        # 4: random parabola k = (a t + c0, -b t^2 + d t + c1), queries over features
        wk[8, T], wk[8, ONE] = rng.integers(1, 4), rng.integers(-3, 4)
        wk[9, T2], wk[9, T], wk[9, ONE] = -rng.integers(1, 3), rng.integers(-3, 4), rng.integers(-3, 4)
        wq[8:10, slots.features + [ONE]] = TEMPERATURE * rng.integers(-3, 4, size=(2, N_FEATURES + 1))
        values(4, slots.features, None)
        # 5: unused (keys and queries but no output column)
        wk[10:12, T], wq[10:12, ONE] = 1.0, 1.0
        # 6: fetch the token near position t/2 (long-range memory, so traces do not settle):
        # key (2j, -2j^2 - j), query (t, 1): the vertex (2t - 1)/4 is never a half-integer, so no tie
        wk[12, T], wk[13, T2], wk[13, T] = 2.0, -2.0, -1.0
        wq[12, T], wq[13, ONE] = TEMPERATURE, TEMPERATURE
        values(6, slots.features, halfway)
        # FFN: gated products of small integer slots into fresh integer slots
        w_gate, w_up, w_down = np.zeros((n_hidden, d)), np.zeros((n_hidden, d)), np.zeros((d, n_hidden))
        small = slots.features + [ONE]
        w_gate[:, small] = rng.integers(-2, 3, size=(n_hidden, len(small)))
        w_up[:, small] = rng.integers(-2, 3, size=(n_hidden, len(small)))
        w_down[ffn_out, :] = rng.integers(-1, 2, size=(2, n_hidden))
        return Layer(wq=wq, wk=wk, wv=wv, wo=wo, w_gate=w_gate, w_up=w_up, w_down=w_down)

    return build


# seeds whose traces keep changing (many random models settle into a short cycle), with 1 to 3 layers
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 7, 9, 11, 14])
def test_hull_and_dense_give_identical_traces(seed):
    model = _random_model(seed, n_layers=1 + seed % 3)
    model.validate()
    prompt = [int(token) for token in np.random.default_rng(seed).integers(0, len(model.vocab) - 1, size=5)]
    hull = HullEngine(model)
    kinds = {kind for layer in hull.head_kinds() for kind in layer}
    assert kinds == {"hull", "positional", "mean", "unused"}
    dense_trace = generate(DenseEngine(model), prompt, max_new_tokens=300).trace
    hull_trace = generate(hull, prompt, max_new_tokens=300).trace
    assert len(set(dense_trace[-100:])) >= 3  # the model keeps doing something
    assert hull_trace == dense_trace


@pytest.mark.parametrize("options, prompt, tokens", [
    ({}, [3, 10, 17, 4], 1500),
    ({"recency_head": True}, [40, 7, 12], 600),  # non-integer keys: the hull rescales to exact integers
    ({"wide": 4, "addresses": 24}, [5, 1, 30, 22, 9], 600),
    ({"halt_after": 300}, [3, 10, 17, 4], 2000),
])
def test_handbuilt_machine_model_matches_dense(options, prompt, tokens):
    model = build_model(**options)
    expected = generate(DenseEngine(model), prompt, max_new_tokens=tokens)
    result = generate(HullEngine(model), prompt, max_new_tokens=tokens)
    assert (result.trace, result.stop_reason, result.output) == (expected.trace, expected.stop_reason, expected.output)


def test_make_engine_builds_the_hull_engine():
    engine = make_engine(_random_model(0, n_layers=1), "hull")
    assert isinstance(engine, HullEngine) and engine.name == "hull"


def test_positional_heads_are_detected_from_weights_only():
    model = _random_model(1, n_layers=2)
    assert positional_key(model, 0, 0) == KeyPolynomial(constant=(0, 0), linear=(2, 0), quadratic=(0, -1))
    assert positional_key(model, 1, 2).is_constant()
    assert positional_key(model, 0, 1) is None  # reads a token feature
    model.layers[0].wk[0, RECENCY] = 1.0
    assert positional_key(model, 0, 0) is None  # recency is not a polynomial of t
    model.layers[0].wk[0, RECENCY] = 0.0
    model.layers[0].wk[1, T2] = -0.5
    assert positional_key(model, 0, 0) is None  # non-integer weight: exactness unproven
    model.layers[0].wk[1, T2] = -1.0
    model.layers[0].wo[T, 0] = 1.0
    assert positional_key(model, 1, 0) is None  # an earlier layer writes the t slot
    assert positional_key(model, 0, 0) is not None  # but not before layer 0


@st.composite
def parabolic_heads(draw):
    ints = st.integers(-4, 4)
    linear = (draw(ints), draw(ints))
    quadratic = (draw(ints), -draw(st.integers(0, 3)))
    return KeyPolynomial(constant=(draw(ints), draw(ints)), linear=linear, quadratic=quadratic)


query_parts = st.integers(-20, 20).map(float) | st.sampled_from([0.5, -0.5, 2.0**-20]) | st.floats(-50, 50)


@settings(max_examples=300, deadline=None)
@given(parabolic_heads(), st.lists(st.tuples(query_parts, query_parts, st.integers(0, 3)), min_size=1, max_size=40))
def test_positional_head_matches_the_generic_hull(key, steps):
    positional, hull = PositionalHead(key, horizon=10_000), HullCache()
    for t, (qx, qy, value) in enumerate(steps):
        kx = key.constant[0] + key.linear[0] * t + key.quadratic[0] * t * t
        ky = key.constant[1] + key.linear[1] * t + key.quadratic[1] * t * t
        hull.insert(float(kx), float(ky), float(value), float(t))
        assert positional.attend(t, qx, qy, float(value), float(t)) == hull.query(qx, qy), (t, qx, qy)


def test_positional_head_ties_average_two_positions():
    head = PositionalHead(KeyPolynomial(constant=(0, 0), linear=(2, 0), quadratic=(0, -1)), horizon=100)
    for t in range(6):
        output = head.attend(t, 2.5, 1.0, float(10 * t), 0.0)  # score 5j - j^2 ties at j = 2 and 3
    assert output == (25.0, 0.0)
