"""wasmformer.batch and `wasmformer batch`: every run through the transformer (outputs equal to single runs
and to wasmtime's), failures recorded without stopping the batch, a killed worker replaced, resumption,
manifest errors, and the same results on a local Ray instance when ray is installed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wasmformer
from wasmformer.batching import Entry, ManifestError
from wasmformer.batching.manifest import finished_ids, read_manifest
from wasmformer.frontend import module_bytes
from wasmformer.oracles.wasmtime_runner import run_program

SQUARES = """#include <stdio.h>
int main(int argc, char **argv) {{
    volatile int turns = {turns};
    long total = 0;
    for (int i = 0; i < turns; i++) total += i * i;
    printf("%ld %d\\n", total, argc);
    return {status};
}}
"""

ECHO = "#include <stdio.h>\nint main(void) { int c; while ((c = getchar()) != EOF) putchar(c + 1); return 0; }\n"


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("programs")
    for index in range(4):
        (directory / f"squares{index}.c").write_text(SQUARES.format(turns=50 + 40 * index, status=index))
    (directory / "echo.c").write_text(ECHO)
    (directory / "echo.input").write_text("HAL")
    (directory / "broken.c").write_text("int main(void) { return missing; }\n")
    return directory


def wasmtime_output(path: Path, input_bytes: bytes = b"", argv=None):
    return run_program(module_bytes(path), input_bytes, argv=argv or [path.name.encode()])


def write_manifest(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_a_directory_batch_matches_wasmtime_and_records_failures(programs, tmp_path):
    results = tmp_path / "results.jsonl"
    outcomes = {outcome.id: outcome for outcome in wasmformer.batch(programs, results=results, workers=2)}
    assert set(outcomes) == {"squares0.c", "squares1.c", "squares2.c", "squares3.c", "echo.c", "broken.c"}
    for index in range(4):
        outcome, expected = outcomes[f"squares{index}.c"], wasmtime_output(programs / f"squares{index}.c")
        assert (outcome.stdout, outcome.exit_status, outcome.ending) == (expected.output, index, "exit")
        assert outcome.tokens > 0 and outcome.engine
    assert outcomes["echo.c"].stdout == b"IBM"
    assert outcomes["broken.c"].error and "missing" in outcomes["broken.c"].error
    assert outcomes["broken.c"].exit_status is None
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert {record["id"]: record["stdout"] for record in records if "error" not in record} == {
        key: value.stdout.decode() for key, value in outcomes.items() if value.error is None}


def test_a_batch_run_equals_a_single_run_token_for_token(programs, tmp_path):
    entry = Entry("one", str(programs / "squares1.c"), b"", ("x", "y"))
    [outcome] = wasmformer.batch([entry], workers=1, trace_dir=tmp_path)
    single = wasmformer.run(programs / "squares1.c", args=["x", "y"], trace=True)
    assert outcome.stdout == single.stdout and outcome.stdout.endswith(b" 3\n")
    assert Path(outcome.trace_file).read_text().split() == single.trace


def test_a_rerun_skips_finished_runs_and_a_torn_line(programs, tmp_path):
    manifest = write_manifest(tmp_path / "runs.jsonl", [
        {"program": str(programs / "squares0.c"), "id": "a"},
        {"program": str(programs / "echo.c"), "input": "abc", "id": "b"},
        {"program": str(programs / "squares2.c"), "id": "c", "max_new_tokens": 50},
    ])
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"id": "a", "exit_status": 0}) + "\n" + '{"id": "b", "exit_st')  # interrupted
    outcomes = list(wasmformer.batch(manifest, results=results, workers=2))
    assert sorted(outcome.id for outcome in outcomes) == ["b", "c"]
    by_id = {outcome.id: outcome for outcome in outcomes}
    assert by_id["b"].stdout == b"bcd"
    assert (by_id["c"].ending, by_id["c"].tokens, by_id["c"].exit_status) == ("max_new_tokens", 50, 124)
    assert finished_ids(results) == {"a", "b", "c"}
    assert list(wasmformer.batch(manifest, results=results)) == []


def test_a_killed_worker_costs_only_its_run(programs, tmp_path):
    """A worker killed mid-run (as the OOM killer would): its entry is an error, a new worker runs the rest."""
    from wasmformer.batching import local

    victim = Entry("victim", str(programs / "squares3.c"))
    others = [Entry(f"other{index}", str(programs / f"squares{index}.c")) for index in range(3)]
    pool = local.LocalPool(1, None, None, None)
    first_worker = pool.workers[0].process

    def kill_once_it_has_the_victim():
        while pool.workers[0].entry is None:
            time.sleep(0.01)
        os.kill(first_worker.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_it_has_the_victim)
    try:
        outcomes = pool.run([victim] + others)
        killer.start()
        collected = {outcome.id: outcome for outcome in outcomes}
    finally:
        killer.join()
        pool.close()
    assert "died" in collected["victim"].error and collected["victim"].exit_status is None
    assert all(collected[f"other{index}"].exit_status == index for index in range(3))
    assert pool.workers[0].process is not first_worker


@pytest.mark.parametrize("line, words", [
    ("not json", "not JSON"),
    ('{"input": "x"}', '"program" path'),
    ('{"program": "a.c", "colour": 1}', "unknown key 'colour'"),
    ('{"program": "a.c", "args": "x"}', "list of strings"),
    ('{"program": "a.c", "max_new_tokens": 0}', "positive integer"),
    ('{"program": "a.c", "input": "x", "input_file": "y"}', "not both"),
])
def test_manifest_mistakes_name_the_line(tmp_path, line, words):
    manifest = tmp_path / "runs.jsonl"
    manifest.write_text('{"program": "fine.c"}\n' + line + "\n")
    with pytest.raises(ManifestError, match=words) as raised:
        read_manifest(manifest)
    assert f"{manifest}:2:" in str(raised.value)


def test_duplicate_ids_and_empty_directories_are_refused(tmp_path):
    manifest = write_manifest(tmp_path / "runs.jsonl", [{"program": "a.c", "id": "x"}, {"program": "b.c", "id": "x"}])
    with pytest.raises(ManifestError, match="used twice"):
        read_manifest(manifest)
    with pytest.raises(ManifestError, match="no .c, .wat or .wasm"):
        read_manifest(tmp_path)


def test_the_cli_writes_results_and_resumes(programs, tmp_path):
    results = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "wasmformer", "batch", str(programs), "-o", str(results), "--workers", "2"]
    first = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr
    assert "2 runs exited 0, 3 with another status, 1 could not run" in first.stderr
    assert len(results.read_text().splitlines()) == 6
    second = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert "6 of 6 runs already there" in second.stderr and len(results.read_text().splitlines()) == 6
    missing = subprocess.run(command[:4] + [str(tmp_path / "none.jsonl"), "-o", str(results)],
                             capture_output=True, text=True)
    assert missing.returncode == 125 and "no such manifest" in missing.stderr


def test_on_a_local_ray_instance_the_results_are_the_same(programs, tmp_path):
    pytest.importorskip("ray", reason="ray is an optional extra (pip install 'wasmformer[ray]'; make test-all)")
    local_outcomes = {o.id: (o.stdout, o.exit_status) for o in wasmformer.batch(programs, workers=2)}
    ray_outcomes = {o.id: (o.stdout, o.exit_status) for o in wasmformer.batch(programs, workers=2, ray="local")}
    assert ray_outcomes == local_outcomes
