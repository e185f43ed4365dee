"""The dense engine (the MODEL_FORMAT definition) and the shared decoding loop, on hand-built models."""

from __future__ import annotations

import numpy as np
import pytest

from wasmformer.engines.base import EngineError, PrecisionHorizonError, encode, generate
from wasmformer.engines.dense import DenseEngine
from wasmformer.model import Layer, Model, load_model, save_model

TEMPERATURE = 2.0**11
# slots of the hand-built model
T, T2, RECENCY, ONE, VALUE, FETCHED = range(6)
D = 6


def _copy_model(vocab_size: int = 5, lag: int = 2, max_exact_tokens: int = 10_000) -> Model:
    """Emits the token that stood `lag` positions earlier (plus one, modulo the vocabulary).

    One head with key (2t, -t^2) and query S*(t - lag, 1): score S*(2(t-lag)j - j^2)
    peaks at j = t - lag. Tokens carry their id in slot VALUE.
    """
    vocab = [f"v{i}" for i in range(vocab_size - 1)] + ["halt"]
    embed = np.zeros((vocab_size, D))
    embed[:, ONE] = 1.0
    embed[:, VALUE] = np.arange(vocab_size)
    wq, wk, wv, wo = np.zeros((2, D)), np.zeros((2, D)), np.zeros((2, D)), np.zeros((D, 2))
    wq[0, T], wq[0, ONE], wq[1, ONE] = TEMPERATURE, -lag * TEMPERATURE, TEMPERATURE
    wk[0, T], wk[1, T2] = 2.0, -1.0
    wv[0, VALUE] = 1.0
    wo[FETCHED, 0] = 1.0
    no_ffn = dict(w_gate=np.zeros((1, D)), w_up=np.zeros((1, D)), w_down=np.zeros((D, 1)))
    layer = Layer(wq=wq, wk=wk, wv=wv, wo=wo, **no_ffn)
    # next id = fetched + 1 (never the halt id while fetched + 1 < halt): logits 2*v*id - v^2
    ids = np.arange(vocab_size, dtype=np.float64)
    unembed = np.zeros((vocab_size, D))
    unembed[:, FETCHED] = 2 * ids
    unembed[:, ONE] = 2 * ids - ids * ids
    return Model(vocab=vocab, halt_token="halt", positional={"t": T, "t2": T2, "recency": RECENCY},
                 output_bytes={"v1": 49}, max_exact_tokens=max_exact_tokens, embed=embed, unembed=unembed,
                 layers=[layer])


def test_dense_follows_the_definition_on_a_copy_model():
    model = _copy_model()
    prompt = encode(model, ["v0", "v1", "v2"])
    result = generate(DenseEngine(model), prompt, max_new_tokens=20)
    tokens = prompt + result.trace
    # token at position p (p >= 3) is token(p-1-lag)+1, the fetched value being the token two back
    for position in range(3, len(tokens)):
        expected = min(tokens[position - 3] + 1, 4)
        assert tokens[position] == expected, position
    assert result.halted and model.vocab[result.trace[-1]] == "halt"
    assert result.output == bytes([49]) * result.trace.count(1)


def test_equal_scores_average_like_softmax():
    model = _copy_model()
    model.layers[0].wk[:] = 0.0  # every key (0, 0): all scores equal, so the output is the mean value
    engine = DenseEngine(model)
    for token in [0, 2, 1]:
        engine.step(token)
    # mean of the values 0, 2, 1, 3 is 1.5; the logits 2v(1.5 + 1) - v^2 tie at v = 2 and v = 3: lowest id wins
    assert engine.step(3) == 2


def test_max_new_tokens_stops_without_halting():
    model = _copy_model(vocab_size=40)
    result = generate(DenseEngine(model), encode(model, ["v0", "v0", "v0"]), max_new_tokens=5)
    assert not result.halted and result.stop_reason == "max_new_tokens" and len(result.trace) == 5


def test_precision_horizon_is_refused_before_it_is_crossed():
    model = _copy_model(vocab_size=40, max_exact_tokens=8)
    with pytest.raises(PrecisionHorizonError, match="max_exact_tokens = 8"):
        generate(DenseEngine(model), encode(model, ["v0", "v0", "v0"]), max_new_tokens=100)
    with pytest.raises(PrecisionHorizonError):
        generate(DenseEngine(model), encode(model, ["v0"] * 9))


def test_unknown_prompt_token_is_a_clear_error():
    model = _copy_model()
    with pytest.raises(EngineError, match=r"\('nope'\) is not in the model's vocabulary"):
        encode(model, ["v0", "nope"])


def test_save_and_load_are_bit_identical(tmp_path):
    model = _copy_model()
    model.extra["graph"] = "copy"
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config() == model.config()
    for name, tensor in model.tensors().items():
        assert np.array_equal(loaded.tensors()[name], tensor), name
        assert loaded.tensors()[name].dtype == np.float64


def test_loading_a_broken_model_names_the_problem(tmp_path):
    from wasmformer.model import ModelFormatError

    model = _copy_model()
    save_model(model, tmp_path / "m")
    config = (tmp_path / "m" / "config.json").read_text().replace('"halt_token": "halt"', '"halt_token": "zzz"')
    (tmp_path / "m" / "config.json").write_text(config)
    with pytest.raises(ModelFormatError, match="halt_token 'zzz' is not in vocab"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="not a model directory"):
        load_model(tmp_path / "nowhere")
