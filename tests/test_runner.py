"""wasmformer.runner: one run on any engine, streaming, progress, horizon, traps, examples, benchmarks.

Models are the small graph-DSL machines (wasmformer.graph.examples), compiled
into a temporary cache; the reference for every trace is a run on the
dense engine (the MODEL_FORMAT definition).
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from wasmformer import runner
from wasmformer.engines import native_available
from wasmformer.engines.base import EngineError, PrecisionHorizonError, encode
from wasmformer.graph import examples
from wasmformer.model import save_model

REPO = Path(__file__).resolve().parents[1]
ENGINES = ["native", "hull", "dense"] if native_available() else ["hull", "dense"]


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    """(model, prompt ids) of the counter machine from 950: 197 generated tokens, then halt."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WASMFORMER_CACHE", str(tmp_path_factory.mktemp("cache")))
        from wasmformer.compiler import build_model

        graph, make_prompt = examples.counter_machine()
        model = build_model(graph, log=lambda message: None)
    return model, encode(model, make_prompt(950))


def dense_reference(model, prompt_ids, max_new_tokens=None):
    return runner.run_prompt(model, prompt_ids, engine_name="dense", max_new_tokens=max_new_tokens)


def expected_counter_output(start: int = 950) -> bytes:
    return b"".join(f"{n:03d} ".encode() for n in range(start + 1, 1000))


@pytest.mark.parametrize("engine_name", ENGINES)
def test_run_prompt_matches_the_dense_definition(counter, engine_name):
    model, prompt_ids = counter
    result = runner.run_prompt(model, prompt_ids, engine_name=engine_name, max_new_tokens=10_000)
    reference = dense_reference(model, prompt_ids)
    assert result.trace == reference.trace
    assert result.output == reference.output == expected_counter_output()
    assert result.halted and result.stop_reason == "halt" and result.trap is None
    assert result.engine == engine_name and result.engine_note is None
    assert result.prompt_tokens == len(prompt_ids) and result.generated_tokens == len(reference.trace)
    assert result.seconds > 0 and result.tokens_per_second > 0


@pytest.mark.parametrize("engine_name", ENGINES)
def test_output_streams_in_order_and_progress_counts_up(counter, engine_name):
    model, prompt_ids = counter
    chunks, reports = [], []
    result = runner.run_prompt(model, prompt_ids, engine_name=engine_name, max_new_tokens=10_000, batch=16,
                                on_output=chunks.append, progress=lambda done, elapsed: reports.append(done))
    assert len(chunks) > 1  # streamed, not handed over at the end
    assert b"".join(chunks) == result.output == expected_counter_output()
    assert reports == sorted(reports) and reports[-1] == result.generated_tokens


def test_max_new_tokens_stops_the_run(counter):
    model, prompt_ids = counter
    result = runner.run_prompt(model, prompt_ids, max_new_tokens=10)
    assert result.stop_reason == "max_new_tokens" and not result.halted
    assert result.trace == dense_reference(model, prompt_ids, max_new_tokens=10).trace
    assert result.output == b"951 952 95"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_precision_horizon_refuses_after_streaming_what_came_before(counter, engine_name):
    model, prompt_ids = counter
    small = dataclasses.replace(model, max_exact_tokens=45)  # room for 45 - 5 + 1 = 41 generated tokens
    chunks = []
    with pytest.raises(PrecisionHorizonError, match="max_exact_tokens = 45"):
        runner.run_prompt(small, prompt_ids, engine_name=engine_name, max_new_tokens=1_000, on_output=chunks.append)
    assert b"".join(chunks) == dense_reference(model, prompt_ids, max_new_tokens=41).output


def test_default_max_new_tokens_stays_inside_the_horizon(counter):
    model, prompt_ids = counter
    small = dataclasses.replace(model, max_exact_tokens=45)
    assert runner.default_max_new_tokens(small, len(prompt_ids)) == 40
    result = runner.run_prompt(small, prompt_ids)  # by default, what the horizon allows
    assert result.stop_reason == "max_new_tokens" and result.generated_tokens == 40


def renamed(model, old: str, new: str):
    """The same weights with one token string renamed (ids unchanged)."""
    vocab = [new if token == old else token for token in model.vocab]
    output_bytes = {new if token == old else token: value for token, value in model.output_bytes.items()}
    return dataclasses.replace(model, vocab=vocab, output_bytes=output_bytes)


def test_a_trap_token_is_reported(counter):
    model, prompt_ids = counter
    trapping = renamed(model, "9", "trap.unreachable")  # the hundreds digit of every number from 951 on
    result = runner.run_prompt(trapping, prompt_ids, max_new_tokens=10_000)
    assert result.trap == "trap.unreachable"


def test_without_the_native_engine_the_runner_says_why(counter, monkeypatch):
    model, prompt_ids = counter
    monkeypatch.setattr(runner, "native_available", lambda: False)
    result = runner.run_prompt(model, prompt_ids, max_new_tokens=20)
    assert result.engine == "hull"
    assert "native engine is not built" in result.engine_note and "hull" in result.engine_note


def test_unknown_prompt_tokens_are_named_with_their_index(counter):
    model, _ = counter
    with pytest.raises(EngineError, match=r"my\.prompt: prompt token 2 \('x'\) is not in the model's vocabulary"):
        runner.prompt_ids_or_error(model, [",", "9", "x"], "my.prompt")
    with pytest.raises(EngineError, match="empty"):
        runner.prompt_ids_or_error(model, [], "my.prompt")


def test_trace_file_holds_the_trace_only(counter, tmp_path):
    model, prompt_ids = counter
    trace = dense_reference(model, prompt_ids).trace
    path = tmp_path / "run.trace"
    tokens = [model.vocab[token] for token in trace]
    runner.write_trace_file(path, tokens)
    assert path.read_text().split() == tokens


def test_progress_line_draws_at_most_ten_times_a_second_and_clears():
    stream = io.StringIO()
    line = runner.ProgressLine(stream, label="x: ")
    line(1_000, 0.5)
    line(2_000, 0.6)  # too soon after the first draw
    assert stream.getvalue().count("\r") == 1 and "1,000 tokens" in stream.getvalue()
    line.hide()
    assert stream.getvalue().endswith("\r\x1b[K") and not line.shown
    line.last_draw = float("-inf")
    line.paused = True
    line(3_000, 0.7)
    assert "3,000" not in stream.getvalue()


def test_progress_line_only_on_a_terminal():
    assert runner.progress_line(io.StringIO()) is None


def test_bundled_examples_include_runs_of_a_shared_source():
    found = {example.name: example for example in runner.bundled_examples()}
    assert {"hello", "sudoku", "sudoku_hard"} <= set(found)
    assert found["sudoku_hard"].source.name == "sudoku.c"
    assert found["sudoku_hard"].input_file.name == "sudoku_hard.input"
    assert found["hello"].input_file is None and found["hello"].expected_file.name == "hello.expected"
    with pytest.raises(runner.ExamplesUnavailableError, match="no example named nope"):
        runner.bundled_examples(["hello", "nope"])


def test_bench_caps_the_slow_engines(counter):
    model, prompt_ids = counter
    workload = runner.Workload("counter", [model.vocab[token] for token in prompt_ids], expected_counter_output())
    rows = runner.bench_workloads(model, [workload], ENGINES, {"hull": 50, "dense": 20})
    by_engine = {row.engine: row for row in rows}
    assert by_engine["dense"].generated_tokens == 20 and by_engine["dense"].max_new_tokens == 20
    assert by_engine["hull"].generated_tokens == 50 and by_engine["hull"].verdict == "prefix ok"
    if "native" in by_engine:
        assert by_engine["native"].halted and by_engine["native"].verdict == "ok"
        assert by_engine["native"].max_new_tokens is None
    assert "first 20 tokens (cap)" in runner.bench_markdown(rows)


def test_run_all_benchmarks_a_prompt_on_a_given_model(counter, tmp_path):
    model, prompt_ids = counter
    model_dir = save_model(model, tmp_path / "model")
    prompt_file = tmp_path / "counter.prompt"
    prompt_file.write_text(" ".join(model.vocab[token] for token in prompt_ids) + "\n")
    out = tmp_path / "results"
    finished = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--model", str(model_dir), "--prompt",
         str(prompt_file), "--engines", ",".join(ENGINES), "--lengths", "30", "1000", "5000", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    record = json.loads((out / "results.json").read_text())
    assert {row["engine"] for row in record["examples"]} == set(ENGINES)
    scaling = {(point["engine"], point["target_tokens"]): point for point in record["scaling"]}
    for engine in ENGINES:
        assert scaling[engine, 30]["generated_tokens"] == 30
        assert scaling[engine, 30]["peak_rss_mib"] > 0
        assert scaling[engine, 1000]["halted"]  # the counter halts after 197 tokens
        assert "halts before" in scaling[engine, 5000]["note"]
    assert "(b) Speed and memory against trace length" in (out / "results.md").read_text()


def load_run_all():
    import importlib.util

    name = "benchmarks_run_all"
    if name not in sys.modules:  # dataclasses look their module up in sys.modules
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "run_all.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_spin_reference_agrees_with_the_reference_vm():
    from wasmformer.frontend import load_program
    from wasmformer.oracles import refvm

    run_all = load_run_all()
    for turns in (0, 1, 100):
        program = load_program(run_all.SPIN_SOURCE, invoke="spin", args=(turns,))
        assert refvm.run(program).output == run_all.spin_reference(turns).to_bytes(4, "little")


def test_results_block_of_the_docs_is_replaced(tmp_path):
    run_all = load_run_all()
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"intro\n{run_all.RESULTS_BEGIN}\nold numbers\n{run_all.RESULTS_END}\nafter\n")
    run_all.update_docs("new numbers\n", docs)
    assert docs.read_text() == f"intro\n{run_all.RESULTS_BEGIN}\nnew numbers\n{run_all.RESULTS_END}\nafter\n"
