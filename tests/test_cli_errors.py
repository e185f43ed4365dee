"""The command line on what fuzzing found (issue 10): right answers, or one error line and exit status 125 (EXIT_ERROR).

Damaged models are the hand-built model (tests/engines/handbuilt.py) saved to a
temporary directory and broken there. Programs are small WAT modules; runs on
the transformer use the universal model (cached on disk) and small
specialised models built here, and wasmtime or the reference VM says what
the right answer is.
"""

from __future__ import annotations

import json
import os
import struct

import pytest
import wasmtime

from wasmformer import runner
from wasmformer.cli import EXIT_ERROR, EXIT_NOT_HALTED, EXIT_OK, EXIT_TRAPPED, main
from wasmformer.engines import native_available
from wasmformer.frontend import load_program
from wasmformer.machine import purpose
from wasmformer.machine.specialize import program_digest
from wasmformer.model import BUILT_FOR_KEY, CONFIG_FILE, WEIGHTS_FILE, save_model
from wasmformer.oracles import refvm

from tests.engines.handbuilt import build_model

PRINT_THEN_RETURN = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (func (export "answer") (result i32)
    (call $putchar (i32.const 65)) (call $putchar (i32.const 10)) (i32.const 42))
  (func (export "pair") (result i32 i32)
    (call $putchar (i32.const 66)) (i32.const -7) (i32.const 1000))
  (func (export "crash") (result i32)
    (call $putchar (i32.const 67)) unreachable)
  (func (export "wide") (result i64 i32)
    (call $putchar (i32.const 68)) (i64.const -5000000000) (i32.const 7))
  (func $halve (export "float") (result i32)
    (call $putchar (i32.const 69)) (i32.trunc_f64_s (f64.mul (f64.const 3) (f64.const 0.5)))))
"""
ECHO = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (import "wasmformer" "getchar" (func $getchar (result i32)))
  (func (export "main") (local $c i32)
    (block $done (loop $next
      (local.set $c (call $getchar))
      (br_if $done (i32.lt_s (local.get $c) (i32.const 0)))
      (call $putchar (local.get $c))
      (br $next)))))
"""
GREET = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (func (export "main") (call $putchar (i32.const 104)) (call $putchar (i32.const 105))))
"""
NON_UTF8_INPUT = b"\xff\xfe caf\xe9 \x80"


def run(capsys, *argv) -> tuple[int, bytes, str]:
    """(exit status, stdout bytes, stderr text) of the command line; ``capsys`` is pytest's capsysbinary."""
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.decode()


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("wasmformer: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def refused(capsys, *argv) -> str:
    """Run argv, check it failed with the error status (125), nothing on stdout and one error line; return that line."""
    status, out, err = run(capsys, *argv)
    assert (status, out) == (EXIT_ERROR, b""), err
    return one_error_line(err)


@pytest.fixture
def wat(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / f"{name}.wat"
        path.write_text(text)
        return path
    return write


def wasmtime_invoke(text: str, name: str) -> tuple[bytes, str]:
    """What `wasmtime --invoke` shows: the function's output bytes, then its results one per line."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    output = bytearray()
    linker = wasmtime.Linker(engine)
    linker.define_func("wasmformer", "putchar", wasmtime.FuncType([wasmtime.ValType.i32()], []),
                       lambda value: output.append(value & 0xFF))
    instance = linker.instantiate(store, wasmtime.Module(engine, text))
    try:
        results = instance.exports(store)[name](store)
    except wasmtime.Trap:
        return bytes(output), ""
    results = results if isinstance(results, list) else [results]
    return bytes(output), "".join(f"{value}\n" for value in results)


# -- --invoke of a function that also prints -----------------------------------------------------------


@pytest.mark.parametrize("function", ["answer", "pair", "wide"])
@pytest.mark.parametrize("command", ["refvm", "run"])
def test_invoke_prints_the_output_then_the_results_like_wasmtime(capsysbinary, wat, command, function):
    printed, results = wasmtime_invoke(PRINT_THEN_RETURN, function)
    status, out, _ = run(capsysbinary, command, wat("prints", PRINT_THEN_RETURN), "--invoke", function)
    assert status == EXIT_OK
    assert out == printed + results.encode()


@pytest.mark.parametrize("command", ["refvm", "run"])
def test_invoke_of_a_trapping_function_writes_its_output_raw(capsysbinary, wat, command):
    printed, results = wasmtime_invoke(PRINT_THEN_RETURN, "crash")
    assert results == ""  # wasmtime traps too
    status, out, err = run(capsysbinary, command, wat("prints", PRINT_THEN_RETURN), "--invoke", "crash")
    assert (status, out) == (EXIT_TRAPPED, printed)
    assert "unreachable" in err.lower()


@pytest.mark.parametrize("command", ["refvm", "run"])
def test_float_arithmetic_runs_like_wasmtime(capsysbinary, wat, command):
    printed, results = wasmtime_invoke(PRINT_THEN_RETURN, "float")
    status, out, _ = run(capsysbinary, command, wat("prints", PRINT_THEN_RETURN), "--invoke", "float")
    assert (status, out) == (EXIT_OK, printed + results.encode())  # E, then trunc(3 * 0.5) = 1


# -- prompts and the model they belong to ------------------------------------------------------------


@pytest.fixture(scope="module")
def specialised(tmp_path_factory):
    """(GREET's source, the model directory specialised for it)."""
    root = tmp_path_factory.mktemp("specialised")
    source = root / "greet.wat"
    source.write_text(GREET)
    assert main(["specialize", str(source), "-o", str(root / "model")]) == EXIT_OK
    return source, root / "model"


def test_a_source_runs_on_the_model_specialised_for_it(capsysbinary, specialised):
    source, model = specialised
    expected = refvm.run(load_program(source)).output
    assert run(capsysbinary, "run", source, "--model", model, "--quiet")[:2] == (EXIT_OK, expected)


def test_another_source_is_refused_by_a_specialised_model(capsysbinary, specialised, wat):
    _, model = specialised
    message = refused(capsysbinary, "run", wat("echo", ECHO), "--model", model)
    assert f"{model} was specialised for program 'greet', not for this build of 'echo'" in message


def test_compile_for_a_specialised_model_writes_a_header_run_checks(capsysbinary, specialised, tmp_path):
    source, model = specialised
    prompt = tmp_path / "greet.prompt"
    assert run(capsysbinary, "compile", source, "--for-model", model, "-o", prompt)[0] == EXIT_OK
    header = prompt.read_text().splitlines()[0]
    assert header.startswith("# wasmformer-prompt specialised ")
    assert f"sha256={program_digest(load_program(source))}" in header.split()
    assert run(capsysbinary, "run", prompt, "--model", model, "--quiet")[:2] == (EXIT_OK, b"hi")
    message = refused(capsysbinary, "run", prompt)  # on the universal model
    assert f"{prompt}: the prompt is for a specialised model, but the default model is the universal model" in message


def test_a_universal_prompt_is_refused_by_a_specialised_model(capsysbinary, specialised, tmp_path):
    source, model = specialised
    prompt = tmp_path / "universal.prompt"
    assert run(capsysbinary, "compile", source, "-o", prompt)[0] == EXIT_OK
    assert prompt.read_text().splitlines()[0] == "# wasmformer-prompt universal"
    assert run(capsysbinary, "run", prompt, "--quiet")[:2] == (EXIT_OK, b"hi")
    message = refused(capsysbinary, "run", prompt, "--model", model)
    assert "the prompt is for a universal model, but" in message and "is specialised for program 'greet'" in message


def test_bench_refuses_a_prompt_file_made_for_another_model(capsysbinary, specialised, tmp_path):
    source, model = specialised
    prompt = tmp_path / "greet.prompt"
    assert run(capsysbinary, "compile", source, "--for-model", model, "-o", prompt)[0] == EXIT_OK
    message = refused(capsysbinary, "bench", "--engines", "hull", "--prompt", prompt)  # the universal model
    assert f"{prompt}: the prompt is for a specialised model, but the default model is the universal model" in message


@pytest.mark.parametrize("prompt_of", ["universal", "specialised"])
def test_without_a_header_the_layout_still_tells_the_kinds_apart(capsysbinary, specialised, tmp_path, prompt_of):
    source, model = specialised
    with_header = tmp_path / "with.prompt"
    compile_args = ["--for-model", model] if prompt_of == "specialised" else []
    assert run(capsysbinary, "compile", source, *compile_args, "-o", with_header)[0] == EXIT_OK
    bare = tmp_path / "bare.prompt"
    bare.write_text("\n".join(with_header.read_text().splitlines()[1:]) + "\n")
    wrong_model = [] if prompt_of == "specialised" else ["--model", model]
    message = refused(capsysbinary, "run", bare, *wrong_model)
    expected_marker = "<mem>" if prompt_of == "specialised" else "<input_bytes>"
    assert f"{bare}: not a {'universal' if prompt_of == 'specialised' else 'specialised'} prompt" in message
    assert f"expected '{expected_marker}'" in message
    right_model = ["--model", model] if prompt_of == "specialised" else []
    assert run(capsysbinary, "run", bare, *right_model, "--quiet")[:2] == (EXIT_OK, b"hi")


def test_a_header_for_another_program_is_refused(capsysbinary, specialised, tmp_path):
    _, model = specialised
    prompt = tmp_path / "other.prompt"
    lines = (model / "greet.prompt").read_text().splitlines()
    prompt.write_text("# wasmformer-prompt specialised sha256=" + "0" * 64 + "\n" + "\n".join(lines[1:]) + "\n")
    assert "the prompt is for a model specialised for another program" in refused(capsysbinary, "run", prompt,
                                                                                    "--model", model)


def test_models_saved_before_built_for_are_recognised():
    model = build_model()
    assert purpose.built_for(model) is None  # another machine: not checked
    model.extra = {"graph": purpose.LEGACY_UNIVERSAL_GRAPH}
    assert purpose.built_for(model) == purpose.universal()
    model.extra = {purpose.LEGACY_PROGRAM_KEY: {"name": "greet", "sha256": "ab" * 32}}
    assert purpose.built_for(model) == purpose.specialised("greet", "ab" * 32)


def test_comment_lines_of_a_prompt_file_hold_no_tokens(tmp_path):
    prompt = tmp_path / "commented.prompt"
    prompt.write_text("# wasmformer-prompt universal\nv1 v2\n  # a note v3\n#v4 v5\n")
    read = runner.read_prompt_file(prompt)
    assert read.tokens == ["v1", "v2", "#v4", "v5"] and read.made_for == purpose.universal()


# -- damaged model directories -----------------------------------------------------------------------


def _damage_weights(directory):
    path = directory / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:100])


def _list_config(directory):
    (directory / CONFIG_FILE).write_text("[1, 2, 3]")


def _extra_layer(directory):
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["n_layers"] -= 1
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def _binary_config(directory):
    (directory / CONFIG_FILE).write_bytes(struct.pack("<4d", 1, 2, 3, 4))


DAMAGE = {"truncated weights": (_damage_weights, WEIGHTS_FILE), "config a list": (_list_config, CONFIG_FILE),
          "n_layers short": (_extra_layer, CONFIG_FILE), "binary config": (_binary_config, CONFIG_FILE)}


@pytest.fixture
def handbuilt_dir(tmp_path):
    directory = save_model(build_model(), tmp_path / "handbuilt")
    prompt = tmp_path / "handbuilt.prompt"
    prompt.write_text("v3 v10 v17 v4\n")
    return directory, prompt


@pytest.mark.parametrize("case", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["run", "inspect", "compile --for-model", "bench"])
def test_a_damaged_model_is_one_line_naming_the_file(capsysbinary, handbuilt_dir, wat, tmp_path, case, command):
    directory, prompt = handbuilt_dir
    damage, damaged_file = DAMAGE[case]
    damage(directory)
    argv = {"run": ["run", prompt, "--model", directory],
            "inspect": ["inspect", directory],
            "compile --for-model": ["compile", wat("greet", GREET), "--for-model", directory, "-o", tmp_path / "p"],
            "bench": ["bench", "--prompt", prompt, "--model", directory]}[command]
    assert f"{directory / damaged_file}: " in refused(capsysbinary, *argv)


def test_a_model_that_is_not_specialised_is_refused_by_compile_for_model(capsysbinary, handbuilt_dir, wat, tmp_path):
    directory, _ = handbuilt_dir
    message = refused(capsysbinary, "compile", wat("greet", GREET), "--for-model", directory, "-o", tmp_path / "p")
    assert f"{directory} is not a specialised model" in message and BUILT_FOR_KEY in message


# -- arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["refvm", "run"])
def test_non_utf8_input_passes_through_as_given(capsysbinary, wat, tmp_path, command):
    source = wat("echo", ECHO)
    as_file = tmp_path / "input.bin"
    as_file.write_bytes(NON_UTF8_INPUT)
    # Python decodes a real argv with surrogateescape: os.fsdecode is what main receives
    status, out, _ = run(capsysbinary, command, source, "--input", os.fsdecode(NON_UTF8_INPUT))
    assert (status, out) == (EXIT_OK, NON_UTF8_INPUT)
    assert run(capsysbinary, command, source, "--input-file", as_file)[:2] == (EXIT_OK, NON_UTF8_INPUT)


def test_a_huge_max_new_tokens_means_up_to_the_horizon(capsysbinary, wat):
    source = wat("greet", GREET)
    status, out, err = run(capsysbinary, "run", source, "--max-new-tokens", "99999999999999999999999")
    assert (status, out) == (EXIT_OK, b"hi")
    assert "reaches past the model's precision horizon; running at most" in err


def test_max_new_tokens_past_a_small_horizon_stops_at_it(capsysbinary, handbuilt_dir, tmp_path):
    import dataclasses

    directory, prompt = handbuilt_dir
    small = save_model(dataclasses.replace(build_model(), max_exact_tokens=30), tmp_path / "small")
    status, _, err = run(capsysbinary, "run", prompt, "--model", small, "--max-tokens", str(10**30))
    assert status == EXIT_NOT_HALTED
    assert "stopped after 26 tokens without halting: the model's precision horizon (max_exact_tokens = 30)" in err


@pytest.mark.skipif(not native_available(), reason="the native engine is not built")
@pytest.mark.parametrize("cap", [10**6, 2**63, 10**30])
def test_the_native_loop_takes_any_cap(cap):
    from wasmformer.engines import native

    model = build_model(max_exact_tokens=200)  # never halts: the horizon ends every run
    with pytest.raises(native.PrecisionHorizonError):
        native.generate_fast(native.NativeEngine(model), [3, 10, 17, 4], max_new_tokens=cap)


def test_a_directory_as_the_source_says_so(capsysbinary, tmp_path):
    for command in ("run", "compile", "refvm"):
        extra = ["-o", tmp_path / "out"] if command == "compile" else []
        assert f"{tmp_path}: is a directory" in refused(capsysbinary, command, tmp_path, *extra)


def test_an_unwritable_output_is_one_line_naming_it(capsysbinary, wat, tmp_path):
    message = refused(capsysbinary, "compile", wat("greet", GREET), "-o", tmp_path)
    assert message == f"wasmformer: error: {tmp_path}: is a directory"
    message = refused(capsysbinary, "compile", wat("greet", GREET), "-o", tmp_path / "missing" / "p.prompt")
    assert message == f"wasmformer: error: {tmp_path / 'missing' / 'p.prompt'}: no such file or directory"


@pytest.mark.parametrize("steps", ["-5", "0"])
def test_refvm_refuses_a_step_limit_that_is_not_positive(capsysbinary, wat, steps):
    assert f"argument --max-steps: {steps} is not positive" in refused(capsysbinary, "refvm", wat("greet", GREET),
                                                                        "--max-steps", steps)


def test_no_command_is_one_error_line(capsys):
    assert main([]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("wasmformer: error: no command given")


def test_specialize_refuses_a_non_empty_directory_without_force(tmp_path, capsys):
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    source = tmp_path / "tiny.wat"
    source.write_text('(module (func (export "main")))')
    assert main(["specialize", str(source), "-o", str(target)]) == EXIT_ERROR
    assert "not empty" in capsys.readouterr().err and (target / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("name, content", [
    ("bogus.wat", b"(module\r(bogus))"),  # wasmtime quotes the source line
    ("nul.wat", b"(module\x00(bogus\x1e))"),
    ("import.wat", b'(module (import "wasmformer" "put\x7fchar" (func)) (func (export "main")))'),  # a name
])
def test_error_lines_show_control_characters_as_escapes(tmp_path, capsys, name, content):
    """Found by the CLI fuzzer: a message quoting the user's file must stay one printable line."""
    source = tmp_path / name
    source.write_bytes(content)
    assert main(["run", str(source)]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("wasmformer: error:") and error.count("\n") == 1
    assert all(char.isprintable() for char in error.rstrip("\n"))
