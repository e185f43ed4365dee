"""The command line (wasmformer.cli.main): run, build, bench; stdout, stderr and exit status.

Models are small graph-DSL machines saved to temporary directories; the
universal model is replaced by one of them where a command would build it.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from wasmformer import runner
from wasmformer.cli import EXIT_ERROR, EXIT_NOT_HALTED, EXIT_OK, EXIT_TRAPPED, main
from wasmformer.engines import native_available
from wasmformer.engines.base import encode
from wasmformer.graph import examples
from wasmformer.model import load_model, save_model

COUNTER_OUTPUT = b"".join(f"{n:03d} ".encode() for n in range(951, 1000))
DEFAULT_ENGINE = "native" if native_available() else "hull"


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    """A namespace: the counter machine's model, its directory and a prompt file counting from 950."""
    root = tmp_path_factory.mktemp("counter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WASMFORMER_CACHE", str(root / "cache"))
        from wasmformer.compiler import build_model

        graph, make_prompt = examples.counter_machine()
        model = build_model(graph, log=lambda message: None)
    prompt_file = root / "counter.prompt"
    prompt_file.write_text(" ".join(make_prompt(950)) + "\n")
    return dataclasses.make_dataclass("Counter", ["model", "directory", "prompt_file", "prompt"])(
        model, save_model(model, root / "model"), prompt_file, make_prompt(950))


def run(capsys, *argv) -> tuple[int, bytes, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out.encode(), captured.err


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wasmformer: error: "), stderr
    return lines[0]


# -- run ---------------------------------------------------------------------------------------------


def test_run_prints_only_the_output_and_a_summary(counter, capsys):
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", counter.directory)
    assert status == EXIT_OK
    assert out == COUNTER_OUTPUT
    summary = err.strip().splitlines()[-1]
    assert summary.startswith(f"{DEFAULT_ENGINE} engine: 197 tokens generated after a 5-token prompt")
    assert "tok/s" in summary and summary.endswith("halted")


@pytest.mark.parametrize("engine", ["hull", "dense"])
def test_run_on_a_named_engine(counter, capsys, engine):
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", counter.directory, "--engine", engine)
    assert (status, out) == (EXIT_OK, COUNTER_OUTPUT)
    assert err.startswith(f"{engine} engine: ")


def test_quiet_run_says_nothing_on_stderr(counter, capsys):
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", counter.directory, "--quiet")
    assert (status, out, err) == (EXIT_OK, COUNTER_OUTPUT, "")


def test_trace_out_is_the_dense_definitions_trace(counter, capsys, tmp_path):
    trace_file = tmp_path / "counter.trace"
    status, _, _ = run(capsys, "run", counter.prompt_file, "--model", counter.directory, "--trace-out", trace_file)
    expected = runner.run_prompt(counter.model, encode(counter.model, counter.prompt), engine_name="dense")
    assert status == EXIT_OK
    assert trace_file.read_text().split() == [counter.model.vocab[token] for token in expected.trace]


def test_max_new_tokens_stops_with_the_not_halted_status(counter, capsys, tmp_path):
    trace_file = tmp_path / "short.trace"
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", counter.directory,
                           "--max-new-tokens", "10", "--trace-out", trace_file)
    assert status == EXIT_NOT_HALTED
    assert out == b"951 952 95"
    assert "wasmformer: stopped after 10 tokens without halting (raise --max-new-tokens)" in err
    assert len(trace_file.read_text().split()) == 10


def test_the_default_limit_is_the_precision_horizon(counter, capsys, tmp_path):
    small = save_model(dataclasses.replace(counter.model, max_exact_tokens=45), tmp_path / "small")
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", small)
    assert status == EXIT_NOT_HALTED
    assert out == COUNTER_OUTPUT[:len(out)] and len(out) > 0
    assert "stopped after 40 tokens without halting: the model's precision horizon (max_exact_tokens = 45)" in err


def test_a_cap_past_the_horizon_means_up_to_the_horizon(counter, capsys, tmp_path):
    small = save_model(dataclasses.replace(counter.model, max_exact_tokens=45), tmp_path / "small")
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", small, "--max-new-tokens", "1000")
    assert status == EXIT_NOT_HALTED
    assert out == COUNTER_OUTPUT[:len(out)] and len(out) > 0
    assert "--max-new-tokens 1,000 reaches past the model's precision horizon; running at most 40 tokens" in err
    assert "stopped after 40 tokens without halting: the model's precision horizon" in err


def test_a_prompt_longer_than_the_horizon_is_an_error(counter, capsys, tmp_path):
    tiny = save_model(dataclasses.replace(counter.model, max_exact_tokens=3), tmp_path / "tiny")
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", tiny)
    assert (status, out) == (EXIT_ERROR, b"")
    assert "precision horizon (max_exact_tokens = 3)" in one_error_line(err.strip().splitlines()[-1])


def test_a_trap_token_is_an_error_naming_the_trap(counter, capsys, tmp_path):
    vocab = ["trap.out_of_bounds_memory" if token == "9" else token for token in counter.model.vocab]
    output_bytes = {token: value for token, value in counter.model.output_bytes.items() if token != "9"}
    trapping = save_model(dataclasses.replace(counter.model, vocab=vocab, output_bytes=output_bytes),
                          tmp_path / "trapping")
    prompt_file = tmp_path / "trapping.prompt"
    prompt_file.write_text(", trap.out_of_bounds_memory 5 0 ,\n")  # 950, the digit 9 renamed
    status, out, err = run(capsys, "run", prompt_file, "--model", trapping, "--quiet")
    assert status == EXIT_TRAPPED
    assert out.startswith(b"51 ")  # output before and after the trap token is still printed
    assert "wasmformer: error: the program trapped: trap.out_of_bounds_memory" in err


def test_unknown_prompt_token_is_named(counter, capsys, tmp_path):
    prompt_file = tmp_path / "bad.prompt"
    prompt_file.write_text(", 9 5\n0 bogus ,\n")
    status, out, err = run(capsys, "run", prompt_file, "--model", counter.directory)
    assert (status, out) == (EXIT_ERROR, b"")
    assert one_error_line(err) == (f"wasmformer: error: {prompt_file}: prompt token 4 ('bogus') "
                                   "is not in the model's vocabulary")


@pytest.mark.parametrize("argv, message", [
    (["run", "missing.prompt"], "missing.prompt: no such file"),
    (["run", "{prompt}", "--model", "no_such_model"], "no_such_model: no such model directory"),
    (["run", "{prompt}", "--model", "{prompt}"], "is not a model directory"),
    (["run", "{prompt}", "--input", "x"], "--input is only for a .c, .wat or .wasm source"),
    (["run", "{prompt}", "--engine", "gpu"], "argument --engine: invalid choice: 'gpu'"),
    (["run", "{prompt}", "--max-new-tokens", "0"], "argument --max-new-tokens/--max-tokens: 0 is not positive"),
    (["run", "{prompt}", "--max-tokens", "0"], "argument --max-new-tokens/--max-tokens: 0 is not positive"),
    (["run", "missing.c"], "missing.c: no such file"),
])
def test_user_mistakes_are_one_line_and_the_error_status(counter, capsys, argv, message):
    argv = [str(counter.prompt_file) if arg == "{prompt}" else arg for arg in argv]
    status, out, err = run(capsys, *argv)
    assert (status, out) == (EXIT_ERROR, b"")
    assert message in one_error_line(err)


def test_run_uses_the_universal_model_by_default(counter, capsys, monkeypatch):
    monkeypatch.setattr(runner, "load_universal_model", lambda log=None: counter.model)
    status, out, _ = run(capsys, "run", counter.prompt_file)
    assert (status, out) == (EXIT_OK, COUNTER_OUTPUT)


def test_run_says_which_engine_replaces_a_missing_native_one(counter, capsys, monkeypatch):
    monkeypatch.setattr(runner, "native_available", lambda: False)
    status, out, err = run(capsys, "run", counter.prompt_file, "--model", counter.directory)
    assert (status, out) == (EXIT_OK, COUNTER_OUTPUT)
    first, summary = err.strip().splitlines()
    assert "the native engine is not built" in first and "running on the hull engine" in first
    assert summary.startswith("hull engine: ")


# -- build -------------------------------------------------------------------------------------------


def test_build_writes_the_universal_model(counter, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "load_universal_model", lambda log=None: counter.model)
    target = tmp_path / "universal"
    status, out, err = run(capsys, "build", "-o", target)
    assert (status, out) == (EXIT_OK, b"")
    model = counter.model
    assert (f"D={model.d_model} L={len(model.layers)} H={model.n_heads} F={model.d_ffn} vocab={len(model.vocab)} "
            f"nonzeros={model.nonzero_weights():,} max_exact_tokens={model.max_exact_tokens:,}") in err
    assert load_model(target).vocab == model.vocab

    status, _, err = run(capsys, "build", "-o", target)
    assert status == EXIT_ERROR and "already exists" in one_error_line(err)
    status, _, _ = run(capsys, "build", "-o", target, "--force")
    assert status == EXIT_OK


def test_bench_prints_a_table_and_writes_results(counter, capsys, tmp_path):
    expected = counter.prompt_file.with_suffix(".expected")
    expected.write_bytes(COUNTER_OUTPUT)
    out_dir = tmp_path / "bench"
    try:
        status, out, err = run(capsys, "bench", "--model", counter.directory, "--prompt", counter.prompt_file,
                               "--engines", "hull,dense", "--dense-tokens", "25", "--out", out_dir)
    finally:
        expected.unlink()
    table = out.decode()
    assert status == EXIT_OK
    assert "hull" in table and "dense" in table and "first 25 tokens (cap)" in table
    record = json.loads((out_dir / "results.json").read_text())
    rows = {row["engine"]: row for row in record["rows"]}
    assert rows["hull"]["verdict"] == "ok" and rows["hull"]["halted"]
    assert rows["dense"]["generated_tokens"] == 25 and rows["dense"]["verdict"] == "prefix ok"
    assert "AMD" in record["machine"]["summary"] or record["machine"]["cores"] > 0


def test_bench_rejects_unknown_engines_and_examples(counter, capsys):
    status, _, err = run(capsys, "bench", "--model", counter.directory, "--engines", "hull,tpu")
    assert status == EXIT_ERROR and "unknown engine tpu" in one_error_line(err)
    status, _, err = run(capsys, "bench", "--model", counter.directory, "--examples", "nope")
    assert status == EXIT_ERROR and "no example named nope" in one_error_line(err)


def test_usage_mistakes_are_the_error_status_not_argparse_2(capsys):
    status, _, err = run(capsys, "run")
    assert status == EXIT_ERROR
    assert "the following arguments are required: source" in one_error_line(err)


