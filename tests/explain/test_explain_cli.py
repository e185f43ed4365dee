"""`wasmformer explain` and `wasmformer inspect --heads/--plot` through the CLI: output, JSON, errors."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from tests.compiler.compiler_oracle import chain_graph
from tests.explain.programs import TINY_OUTPUT, TINY_WAT
from wasmformer.cli import EXIT_ERROR, EXIT_OK, main
from wasmformer.compiler import compile_graph
from wasmformer.explain.roles import BAR_WIDTH, GAP, INK, MATRICES
from wasmformer.machine.specialize import write_specialised
from wasmformer.model import save_model


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wasmformer: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("explain") / "tiny.wat"
    path.write_text(TINY_WAT)
    return path


@pytest.fixture(scope="module")
def specialised_dir(tmp_path_factory, tiny_program):
    directory = tmp_path_factory.mktemp("specialised") / "model"
    _, prompt_path = write_specialised(tiny_program, b"", directory)
    return directory, prompt_path


def test_the_json_steps_are_the_runs(capsys, tiny_source, tiny_run, universal):
    status, out, err = run(capsys, "explain", tiny_source, "--json", "-q")
    assert status == EXIT_OK and err == ""
    document = json.loads(out)
    assert document["steps_total"] == len(tiny_run.steps) == len(document["steps"])
    assert [step["pushed"] for step in document["steps"]] == [step.pushed for step in tiny_run.steps]
    assert "".join(step["output"] for step in document["steps"]).encode() == TINY_OUTPUT
    assert document["steps"][1]["instruction"] == "i32.const 3" and document["steps"][1]["function"] == "main"


def test_the_table_lists_the_chosen_steps(capsys, tiny_source, universal):
    status, out, _ = run(capsys, "explain", tiny_source, "--steps", "11:12", "-q")
    assert status == EXIT_OK
    assert "2 of 32 steps" in out and "return1" in out and "mem[0x10..0x13]=09000000" in out
    assert "i32.const 3" not in out


def test_token_names_every_heads_winner(capsys, tiny_source, tiny_run, universal):
    get = next(s for s in tiny_run.steps if s.function == "square" and s.instruction == "local.get 0")
    status, out, _ = run(capsys, "explain", tiny_source, "--token", get.start, "--json", "-q")
    assert status == EXIT_OK
    (token,) = json.loads(out)["tokens"]
    assert token["produced"] == token["expected"] == "v.03" and token["produced_in_step"] == get.number
    variable = next(head for head in token["heads"] if head["name"] == "variable.bank0")
    assert variable["winner_step"] == get.number - 1 and variable["winner_token"] == "v.00"
    assert {"layer", "head", "tie", "query_expr", "outputs"} <= set(variable)


def test_step_explains_each_of_its_tokens(capsys, tiny_source, tiny_run, universal):
    status, out, _ = run(capsys, "explain", tiny_source, "--step", 12, "-q")
    assert status == EXIT_OK
    assert out.count("is the argmax of the forward pass") == len(tiny_run.steps[11].tokens)
    assert "memory.bank0" in out and "fetch" in out


def test_a_saved_trace_and_prompt_file_give_the_same_steps(capsys, tmp_path, tiny_source, universal):
    prompt_file, trace_file = tmp_path / "tiny.prompt", tmp_path / "tiny.trace"
    assert run(capsys, "compile", tiny_source, "-o", prompt_file)[0] == EXIT_OK
    assert run(capsys, "run", prompt_file, "-q", "--trace-out", trace_file)[0] == EXIT_OK
    _, from_source, _ = run(capsys, "explain", tiny_source, "--json", "-q")
    status, from_files, _ = run(capsys, "explain", prompt_file, "--trace", trace_file, "--program", tiny_source,
                                "--json", "-q")
    assert status == EXIT_OK
    assert json.loads(from_files)["steps"] == json.loads(from_source)["steps"]
    _, unlabelled, _ = run(capsys, "explain", prompt_file, "--trace", trace_file, "--json", "-q")
    steps = json.loads(unlabelled)["steps"]
    assert steps[1]["function"] is None and steps[1]["pushed"] == [3]


def test_a_specialised_model_is_explained_with_its_program(capsys, specialised_dir, tiny_source, tiny_run):
    directory, prompt_path = specialised_dir
    status, out, _ = run(capsys, "explain", tiny_source, "--model", directory, "--json", "-q")
    assert status == EXIT_OK
    document = json.loads(out)
    assert document["code"] == "specialised"
    assert [s["pushed"] for s in document["steps"]] == [s.pushed for s in tiny_run.steps]
    status, out, _ = run(capsys, "explain", prompt_path, "--model", directory, "--program", tiny_source,
                         "--step", 8, "--json", "-q")
    assert status == EXIT_OK
    (first, *_) = json.loads(out)["tokens"]
    assert first["produced"] == first["expected"]
    assert "--program SOURCE" in one_error_line(run(capsys, "explain", prompt_path, "--model", directory)[2])


@pytest.mark.parametrize("argv, message", [
    (["--steps", "5:2"], "the range is empty"),
    (["--steps", "x"], "expected A:B"),
    (["--steps", "999:"], "the run has 32 steps"),
    (["--token", "100000"], "positions run from 1 to"),
    (["--step", "33"], "the run has steps 1 to 32"),
    (["--step", "0"], "is not positive"),
    (["--trace", "/nonexistent/trace"], "no such file"),
    (["--token", "3", "--step", "2"], "not allowed with argument"),
])
def test_user_mistakes_are_one_line(capsys, tiny_source, universal, argv, message):
    status, _, err = run(capsys, "explain", tiny_source, "-q", *argv)
    assert status == EXIT_ERROR and message in one_error_line(err)


def test_a_trace_with_foreign_tokens_is_refused(capsys, tmp_path, tiny_source, universal):
    trace = tmp_path / "bad.trace"
    trace.write_text("v.03 banana\n")
    status, _, err = run(capsys, "explain", tiny_source, "--trace", trace, "-q")
    assert status == EXIT_ERROR and "'banana' is not in the model's vocabulary" in one_error_line(err)


# -- inspect ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    model, _ = compile_graph(chain_graph(length=20), time_limit=1.0, log=lambda _: None)
    return model, save_model(model, tmp_path_factory.mktemp("chain") / "model")


def test_inspect_heads_lists_every_head_and_ffn_group(capsys, small_model):
    model, directory = small_model
    status, out, _ = run(capsys, "inspect", directory, "--heads")
    assert status == EXIT_OK
    for head in model.extra["heads"]:
        assert f"head {head['head']:>2}  {head['tie']:<7} {head['name']}" in out
        assert f"query: {head['query']}" in out or head["tie"] == "average"
    for group in model.extra["ffn_groups"]:
        assert group["feature"] in out
    assert out.count("layer ") >= len(model.layers)


def test_inspect_heads_without_metadata_reads_the_weights(capsys, small_model, tmp_path):
    model, _ = small_model
    bare = type(model)(**{**model.__dict__, "extra": {}})
    status, out, _ = run(capsys, "inspect", save_model(bare, tmp_path / "bare"), "--heads")
    assert status == EXIT_OK and "no head metadata" in out and "(no metadata)" in out and "writes slots" in out


def read_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        assert struct.unpack(">I", data[position + 8 + length:position + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 0)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return rows[:, 1:]


def test_inspect_plot_writes_a_png_with_one_dark_pixel_per_nonzero_weight(capsys, small_model, tmp_path):
    model, directory = small_model
    status, _, err = run(capsys, "inspect", directory, "--plot", tmp_path / "sparsity.png")
    assert status == EXIT_OK and "wrote" in err
    image = read_png((tmp_path / "sparsity.png").read_bytes())
    nonzero = sum(int(np.count_nonzero(getattr(layer, name))) for layer in model.layers for name in MATRICES)
    bars, panels = image[:, GAP:GAP + BAR_WIDTH], image[:, GAP + BAR_WIDTH + GAP:]
    assert int((panels == INK).sum()) == nonzero
    assert (bars == INK).any()


def test_inspect_refuses_a_missing_directory(capsys, tmp_path):
    status, _, err = run(capsys, "inspect", tmp_path / "nothing", "--heads")
    assert status == EXIT_ERROR and "no such model directory" in one_error_line(err)


def test_a_prompt_of_another_machine_is_refused_before_running(capsys, tmp_path, monkeypatch):
    from wasmformer.graph import examples
    from wasmformer import runner

    graph, make_prompt = examples.counter_machine()
    model, _ = compile_graph(graph, time_limit=1.0, log=lambda _: None)
    prompt = tmp_path / "counter.prompt"
    prompt.write_text(" ".join(make_prompt(950)))
    monkeypatch.setattr(runner, "run_prompt", lambda *a, **k: pytest.fail("ran the model"))
    status, _, err = run(capsys, "explain", prompt, "--model", save_model(model, tmp_path / "counter"), "-q")
    assert status == EXIT_ERROR and "not a prompt of the WebAssembly machine" in one_error_line(err)
