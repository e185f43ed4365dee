"""Model files round-trip bit for bit, and build_model compiles once and loads afterwards."""

from __future__ import annotations

import json

import numpy as np

from tests.compiler.compiler_oracle import chain_graph
from wasmformer.compiler import build_model, compile_graph, graph_hash
from wasmformer.compiler.cache import CACHE_ENV
from wasmformer.model import load_model, save_model


def test_save_then_load_is_bit_identical(tmp_path):
    model, _ = compile_graph(chain_graph(length=20), time_limit=1.0, log=lambda _: None)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.config() == model.config()
    assert json.loads((tmp_path / "model" / "config.json").read_text()) == model.config()
    original, reread = model.tensors(), loaded.tensors()
    assert original.keys() == reread.keys()
    for name, tensor in original.items():
        assert reread[name].dtype == np.float64 and reread[name].tobytes() == tensor.tobytes(), name


def test_the_config_names_every_head_and_the_schedule(tmp_path):
    model, report = compile_graph(chain_graph(length=20), time_limit=1.0, log=lambda _: None)
    config = model.config()
    assert config["graph"] == "chain" and config["compiler"]["n_layers"] == len(model.layers)
    assert len(config["heads"]) == report.heads
    assert {(h["layer"], h["head"]) for h in config["heads"]} <= {(l, h) for l in range(len(model.layers))
                                                                  for h in range(model.n_heads)}


def test_the_second_build_loads_from_the_cache(tmp_path):
    lines = []
    first = build_model(lambda: chain_graph(length=20), cache_dir=tmp_path, time_limit=1.0, log=lines.append)
    assert any("compiled and cached" in line for line in lines)
    lines.clear()
    second = build_model(chain_graph(length=20), cache_dir=tmp_path, log=lines.append)
    assert any("loaded from cache" in line for line in lines) and not any("schedule:" in line for line in lines)
    for name, tensor in first.tensors().items():
        assert second.tensors()[name].tobytes() == tensor.tobytes()
    entries = list((tmp_path / "models").iterdir())
    assert [entry.name for entry in entries] == [graph_hash(chain_graph(length=20))]  # no temporary left behind


def test_the_hash_follows_the_graph_and_the_env_var_moves_the_cache(tmp_path, monkeypatch):
    assert graph_hash(chain_graph(length=20)) == graph_hash(chain_graph(length=20))
    assert graph_hash(chain_graph(length=20)) != graph_hash(chain_graph(length=21))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    build_model(chain_graph(length=6), time_limit=0.5, log=lambda _: None)
    assert (tmp_path / "elsewhere" / "models" / graph_hash(chain_graph(length=6)) / "config.json").is_file()


def test_a_corrupt_cache_entry_is_rebuilt(tmp_path):
    graph = chain_graph(length=6)
    build_model(graph, cache_dir=tmp_path, time_limit=0.5, log=lambda _: None)
    entry = tmp_path / "models" / graph_hash(graph)
    (entry / "config.json").write_text("{ not json")
    lines = []
    model = build_model(graph, cache_dir=tmp_path, time_limit=0.5, log=lines.append)
    assert any("unreadable" in line for line in lines) and model.n_heads >= 1
    assert load_model(entry).config()["graph"] == "chain"
