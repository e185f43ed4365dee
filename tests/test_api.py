"""The Python API (wasmformer.api, re-exported by the package): every run through the transformer, its
results against wasmtime's and across engines, streaming, errors, and nothing printed by library calls."""

import threading
from pathlib import Path

import pytest

import wasmformer
from wasmformer.frontend import module_bytes
from wasmformer.oracles.wasmtime_runner import run_program

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

ARGS_AND_STATUS = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) total += atoi(argv[i]);
    printf("%d arguments, sum %d\n", argc - 1, total);
    fprintf(stderr, "to stderr\n");
    return total % 256;
}
"""

ECHO_INPUT = r"""
#include <stdio.h>
int main(void) {
    int c, count = 0;
    while ((c = getchar()) != EOF) { putchar(c == 'a' ? 'A' : c); count++; }
    return count;
}
"""

INVOKE_WAT = """(module
  (func (export "pair") (param i32 i32) (result i32 i32)
    (i32.add (local.get 0) (local.get 1)) (i32.sub (local.get 0) (local.get 1))))"""

TRAPS = "int main(void) { volatile int zero = 0; return 7 / zero; }"


@pytest.fixture(scope="module")
def model():
    return wasmformer.load_model()


def wasmtime_result(source: str, argv: list[bytes], input_bytes: bytes = b""):
    return run_program(module_bytes(source, kind="c"), input_bytes, argv=argv)


def test_a_c_program_with_arguments_as_wasmtime_runs_it(model):
    result = wasmformer.run(ARGS_AND_STATUS, args=["40", "2", "300"], model=model)
    expected = wasmtime_result(ARGS_AND_STATUS, [b"program", b"40", b"2", b"300"])
    assert (result.stdout, result.stderr, result.exit_status) == (expected.output, expected.errors,
                                                                 expected.exit_status)
    assert result.stdout == b"3 arguments, sum 342\n" and result.exit_status == 342 % 256
    assert (result.ending, result.halted, result.trap, result.message) == ("exit", True, None, None)
    assert result.tokens > 0 and result.prompt_tokens > 0 and result.seconds > 0
    assert result.tokens_per_second == pytest.approx((result.tokens + result.prompt_tokens) / result.seconds)
    assert not result.ok


def test_input_as_str_or_bytes(model):
    for given in ("banana", b"banana"):
        result = wasmformer.run(ECHO_INPUT, given, model=model)
        assert (result.stdout, result.exit_status) == (b"bAnAnA", 6)


def test_a_path_a_program_and_a_prompt_file_run_alike(model, tmp_path):
    from wasmformer import runner
    from wasmformer.machine import purpose

    by_path = wasmformer.run(EXAMPLES / "hello.c", model=model, trace=True)
    program = wasmformer.compile(str(EXAMPLES / "hello.c"))
    assert program.name == "hello" and program.instructions > 0 and not program.reads_input
    by_program = wasmformer.run(program, model=model, trace=True)
    prompt_file = tmp_path / "hello.prompt"
    runner.write_prompt_file(prompt_file, program.prompt(), purpose.universal())
    by_prompt_file = wasmformer.run(prompt_file, model=model, trace=True)
    assert by_path.stdout == (EXAMPLES / "hello.expected").read_bytes()
    assert by_path.trace == by_program.trace == by_prompt_file.trace
    assert by_path.trace[-1] == "halt" and len(by_path.trace) == by_path.tokens


def test_the_trace_is_the_same_on_every_engine(model):
    # no stdio: a short prompt, so the Python hull engine takes seconds rather than a minute
    source = "int main(void) { volatile int n = 40, sum = 0; for (int i = 0; i < n; i++) sum += i; return sum % 256; }"
    program = wasmformer.compile(source)
    native = wasmformer.run(program, model=model, trace=True)
    assert native.exit_status == sum(range(40)) % 256
    hull = wasmformer.run(program, model=model, trace=True, engine="hull", max_new_tokens=3_000)
    assert hull.engine == "hull"
    assert hull.trace == native.trace[:len(hull.trace)] and len(hull.trace) == min(3_000, len(native.trace))


def test_an_invoked_function_returns_values(model):
    result = wasmformer.run(INVOKE_WAT, invoke="pair", invoke_args=(7, 10), model=model)
    assert (result.values, result.stdout, result.exit_status) == ([17, -3], b"", 0)


def test_a_trap_and_a_token_cap_end_the_run_with_the_cli_statuses(model):
    trapped = wasmformer.run(TRAPS, model=model)
    assert (trapped.exit_status, trapped.ending, trapped.trap) == (134, "trap", "divide_by_zero")
    assert "integer divide by zero" in trapped.message
    capped = wasmformer.run(EXAMPLES / "collatz.c", model=model, max_new_tokens=500)
    assert (capped.exit_status, capped.ending, capped.tokens, capped.halted) == (124, "max_new_tokens", 500, False)


def test_stream_yields_the_output_in_order_as_it_is_generated(model):
    lines = b"one\ntwo\nthree\n"
    whole = wasmformer.run(ECHO_INPUT, input=lines, model=model)
    assert whole.stdout == lines
    stream = wasmformer.stream(ECHO_INPUT, input=lines, model=model)
    chunks = list(stream)
    assert len(chunks) > 1 and {chunk.stream for chunk in chunks} == {"stdout"}
    assert b"".join(chunk.data for chunk in chunks) == whole.stdout
    assert stream.result.stdout == whole.stdout and stream.result.tokens == whole.tokens


def test_stream_separates_stdout_and_stderr(model):
    chunks = list(wasmformer.stream(ARGS_AND_STATUS, args=["1"], model=model))
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"1 arguments, sum 1\n"
    assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"to stderr\n"


def test_closing_a_stream_early_stops_the_run(model):
    stream = wasmformer.stream(EXAMPLES / "collatz.c", model=model)
    with stream:
        first = next(iter(stream))
    assert first.stream == "stdout" and stream.result is None
    assert not any(thread.name == "wasmformer-stream" for thread in threading.enumerate())


def test_a_stream_iterates_once(model):
    stream = wasmformer.stream(EXAMPLES / "hello.c", model=model)
    list(stream)
    with pytest.raises(RuntimeError, match="once"):
        list(stream)


def test_library_calls_print_nothing(model, capfd):
    wasmformer.run(ARGS_AND_STATUS, args=["5"], model=model)
    list(wasmformer.stream(TRAPS, model=model))
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("call, error, words", [
    (lambda: wasmformer.run("no/such/file.c"), wasmformer.ProgramError, "no such file"),
    (lambda: wasmformer.compile("int main(void) { return undeclared; }"), wasmformer.ProgramError,
     "undeclared identifier"),
    (lambda: wasmformer.compile("(module (func (bogus)))"), wasmformer.ProgramError, "invalid WAT"),
    (lambda: wasmformer.compile("(module (func $f (result i32)))"), wasmformer.ProgramError,
     "invalid wasm module: type mismatch"),
    (lambda: wasmformer.compile(42), wasmformer.ProgramError, "not int"),
    (lambda: wasmformer.load_model("no/such/model"), wasmformer.ModelFormatError, "no such model directory"),
    (lambda: wasmformer.run("int main(void){return 0;}", max_new_tokens=0), wasmformer.EngineError,
     "must be positive"),
    (lambda: wasmformer.run("int main(void){return 0;}", engine="gpu"), wasmformer.EngineError, "gpu"),
    (lambda: wasmformer.run("int main(void){return 0;}", input=3), wasmformer.ProgramError, "bytes or str"),
])
def test_user_mistakes_raise_documented_errors(call, error, words):
    with pytest.raises(error, match=words) as raised:
        call()
    assert isinstance(raised.value, wasmformer.WasmformerError)


def test_a_specialised_model_runs_its_program_with_the_universal_trace(model, tmp_path):
    source = "#include <wasmformer.h>\nint main(void) { int c; while ((c = wasmformer_getchar()) >= 0) " \
             "wasmformer_putchar(c + 1); return 9; }"
    specialised = wasmformer.specialize(source, output_dir=tmp_path / "model", input=b"abc")
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "program.prompt").is_file()
    baked = wasmformer.run(source, b"HAL", model=specialised, trace=True)
    universal = wasmformer.run(source, b"HAL", model=model, trace=True)
    assert (baked.stdout, baked.exit_status) == (b"IBM", 9)
    assert baked.trace == universal.trace and baked.prompt_tokens < universal.prompt_tokens
    from_directory = wasmformer.run(tmp_path / "model" / "program.prompt", model=tmp_path / "model")
    assert from_directory.stdout == b"bcd"
    with pytest.raises(wasmformer.ProgramError, match="specialised for program"):
        wasmformer.run(TRAPS, model=specialised)


def test_import_wasmformer_is_cheap():
    import subprocess
    import sys

    code = "import sys, wasmformer; print(int('numpy' in sys.modules), int('wasmformer.api' in sys.modules))"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["0", "0"], "import wasmformer should not load numpy or the API until used"
