"""wasmformer.model.load_model: a damaged or inconsistent model directory is a ModelFormatError naming the problem.

Every case starts from the hand-built model (tests/engines/handbuilt.py) saved
to a temporary directory, damages one thing in config.json or
model.safetensors, and checks that loading refuses it with a message naming
the file and what is wrong, never another exception.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from wasmformer.graph.expr import GraphError
from wasmformer.graph.graph import Graph
from wasmformer.graph.precision import EXACT_INTEGER_LIMIT
from wasmformer.model import (BUILT_FOR_KEY, CONFIG_FILE, LARGEST_HORIZON, WEIGHTS_FILE, ModelFormatError,
                              load_model, save_model)

from tests.engines.handbuilt import build_model


@pytest.fixture(scope="module")
def reference():
    return build_model()


@pytest.fixture
def model_dir(reference, tmp_path):
    return save_model(reference, tmp_path / "model")


def edit_config(directory, change) -> None:
    path = directory / CONFIG_FILE
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def refused(directory) -> str:
    with pytest.raises(ModelFormatError) as caught:
        load_model(directory)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_saved_model_loads_back_unchanged(reference, model_dir):
    loaded = load_model(model_dir)
    assert loaded.config() == reference.config()
    for name, tensor in reference.tensors().items():
        assert np.array_equal(loaded.tensors()[name], tensor), name


# -- config.json: types and ranges ---------------------------------------------------------------------


def _set(key, value):
    return lambda config: config.__setitem__(key, value)


def _set_positional(name, value):
    return lambda config: config["positional"].__setitem__(name, value)


CONFIG_DAMAGE = {
    "horizon a string": (_set("max_exact_tokens", "1000"), "max_exact_tokens is '1000'"),
    "horizon a float": (_set("max_exact_tokens", 1000.0), "max_exact_tokens is 1000.0"),
    "horizon a boolean": (_set("max_exact_tokens", True), "max_exact_tokens is True"),
    "horizon zero": (_set("max_exact_tokens", 0), "max_exact_tokens is 0"),
    "horizon negative": (_set("max_exact_tokens", -5), "max_exact_tokens is -5"),
    "horizon 2^40": (_set("max_exact_tokens", 2**40), f"max_exact_tokens is {2**40}"),
    "n_layers a string": (_set("n_layers", "3"), "n_layers is '3'"),
    "d_model negative": (_set("d_model", -1), "d_model is -1"),
    "d_head 3": (_set("d_head", 3), "d_head is 3"),
    "vocab an int": (_set("vocab", 64), "vocab is 64"),
    "vocab entry with a space": (lambda c: c["vocab"].__setitem__(5, "v 5"), "vocab[5] is 'v 5'"),
    "vocab entry empty": (lambda c: c["vocab"].__setitem__(5, ""), "vocab[5] is ''"),
    "vocab entry a number": (lambda c: c["vocab"].__setitem__(5, 5), "vocab[5] is 5"),
    "vocab duplicate": (lambda c: c["vocab"].__setitem__(5, "v4"), "vocab lists 'v4' twice"),
    "halt token unknown": (_set("halt_token", "stop"), "halt_token 'stop' is not in vocab"),
    "positional a list": (_set("positional", [0, 1, 2]), "positional is [0, 1, 2]"),
    "positional missing recency": (lambda c: c["positional"].pop("recency"), "positional is"),
    "positional slot outside d_model": (_set_positional("t", 10_000), "positional slot t is 10000"),
    "positional slot negative": (_set_positional("t2", -1), "positional slot t2 is -1"),
    "positional slot a string": (_set_positional("t2", "1"), "positional slot t2 is '1'"),
    "positional slots shared": (_set_positional("t2", 0), "are not distinct"),
    "output byte 256": (lambda c: c["output_bytes"].__setitem__("v1", 256), "output_bytes['v1'] is 256"),
    "output byte unknown token": (lambda c: c["output_bytes"].__setitem__("zz", 1), "names 'zz'"),
    "output_bytes a list": (_set("output_bytes", [1, 2]), "output_bytes is [1, 2]"),
    "format missing": (lambda c: c.pop("format"), "format is None"),
    "halt_token missing": (lambda c: c.pop("halt_token"), "missing 'halt_token'"),
    "built_for not an object": (_set(BUILT_FOR_KEY, "universal"), "built_for is 'universal'"),
    "built_for without kind": (_set(BUILT_FOR_KEY, {"program": "x"}), "built_for is"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_DAMAGE))
def test_a_badly_typed_config_is_refused_with_the_key(model_dir, case):
    change, expected = CONFIG_DAMAGE[case]
    edit_config(model_dir, change)
    message = refused(model_dir)
    assert message.startswith(str(model_dir / CONFIG_FILE) + ": ")
    assert expected in message


@pytest.mark.parametrize("text, expected", [
    (b"[1, 2, 3]", "not a JSON object"),
    (b'"wasmformer/1"', "not a JSON object"),
    (b"{\"format\": ", "invalid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    (b'{"max_exact_tokens": ' + b"9" * 5_000 + b"}", "invalid JSON"),
])
def test_a_config_that_is_not_a_json_object_is_refused(model_dir, text, expected):
    (model_dir / CONFIG_FILE).write_bytes(text)
    message = refused(model_dir)
    assert message.startswith(str(model_dir / CONFIG_FILE)) and expected in message


# -- config.json against the tensors -------------------------------------------------------------------


def test_n_layers_must_match_the_blocks_in_the_weights(reference, model_dir):
    layers = len(reference.layers)
    edit_config(model_dir, _set("n_layers", layers - 1))
    assert refused(model_dir) == (f"{model_dir / CONFIG_FILE}: n_layers is {layers - 1} "
                                  f"but {WEIGHTS_FILE} has {layers} blocks")
    edit_config(model_dir, _set("n_layers", layers + 1))
    assert f"n_layers is {layers + 1} but {WEIGHTS_FILE} has {layers} blocks" in refused(model_dir)
    edit_config(model_dir, _set("n_layers", 1 << 32))  # found by the fuzzer: refused at once, not after a hang
    assert f"n_layers is {1 << 32} but {WEIGHTS_FILE} has {layers} blocks" in refused(model_dir)


@pytest.mark.parametrize("key, tensor", [
    ("d_model", "embed"), ("n_heads", "blocks.0.attn.wq"), ("d_ffn", "blocks.0.ffn.w_gate"),
])
def test_every_size_must_match_the_tensor_shapes(reference, model_dir, key, tensor):
    edit_config(model_dir, _set(key, reference.config()[key] + 1))
    message = refused(model_dir)
    assert f"{tensor} has shape" in message and "expected" in message


def test_the_vocabulary_size_must_match_embed_and_unembed(model_dir):
    edit_config(model_dir, lambda config: config["vocab"].append("extra"))
    assert "embed has shape [64, " in refused(model_dir)


# -- model.safetensors ---------------------------------------------------------------------------------


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _huge_header(path):
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")


WEIGHTS_DAMAGE = {
    "truncated": _truncate,
    "empty": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(b"this is not a safetensors file" * 10),
    "huge header": _huge_header,
    "header not JSON": lambda path: path.write_bytes(struct.pack("<Q", 8) + b"not json"),
}


@pytest.mark.parametrize("case", sorted(WEIGHTS_DAMAGE))
def test_damaged_weights_are_refused(model_dir, case):
    WEIGHTS_DAMAGE[case](model_dir / WEIGHTS_FILE)
    message = refused(model_dir)
    assert message.startswith(f"{model_dir / WEIGHTS_FILE}: not a readable safetensors file")


def _rewrite_tensors(directory, change) -> None:
    path = directory / WEIGHTS_FILE
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("change, expected", [
    (lambda t: t.__setitem__("embed", t["embed"].astype(np.float32)), "embed is float32"),
    (lambda t: t.pop("blocks.1.ffn.w_up"), "lacks blocks.1.ffn.w_up"),
    (lambda t: t.__setitem__("lm_head", np.zeros((2, 2))), "unexpected tensor 'lm_head'"),
    (lambda t: t["unembed"].__setitem__((0, 0), np.nan), "unembed has non-finite entries"),
])
def test_tensors_must_be_the_named_float64_ones(model_dir, change, expected):
    _rewrite_tensors(model_dir, change)
    assert expected in refused(model_dir)


# -- the precision horizon bound -----------------------------------------------------------------------


def test_the_largest_horizon_is_where_t_squared_stops_being_exact():
    last = LARGEST_HORIZON - 1  # the last position of a trace of LARGEST_HORIZON tokens
    assert last * last < EXACT_INTEGER_LIMIT <= (last + 1) ** 2
    assert math.isqrt(EXACT_INTEGER_LIMIT) in (last, last + 1)


def test_the_compiler_cannot_build_a_graph_past_the_largest_horizon():
    Graph(["a", "halt"], halt_token="halt", max_exact_tokens=LARGEST_HORIZON)
    with pytest.raises(GraphError, match="2\\*\\*53"):
        Graph(["a", "halt"], halt_token="halt", max_exact_tokens=LARGEST_HORIZON + 1)


def test_the_horizon_is_accepted_up_to_the_bound(model_dir):
    edit_config(model_dir, _set("max_exact_tokens", LARGEST_HORIZON))
    assert load_model(model_dir).max_exact_tokens == LARGEST_HORIZON
    edit_config(model_dir, _set("max_exact_tokens", LARGEST_HORIZON + 1))
    assert f"max_exact_tokens is {LARGEST_HORIZON + 1}" in refused(model_dir)


def test_saving_refuses_what_loading_would_refuse(reference, tmp_path):
    import dataclasses

    with pytest.raises(ModelFormatError, match="max_exact_tokens is 1099511627776"):
        save_model(dataclasses.replace(reference, max_exact_tokens=2**40), tmp_path / "bad")
    assert not (tmp_path / "bad" / CONFIG_FILE).exists()
