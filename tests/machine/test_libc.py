"""C on the standard C library (wasi-libc) and WASI modules: stdout, stderr and exit status as wasmtime's.

Every program runs under wasmtime with its own WASI (the oracle) and on the
reference VM (the machine's semantics, WASI through frontend/wasi.wat); the
three streams must agree. Some also run through the universal model, whose
trace must equal the trace oracle's and whose stdout, stderr and exit status
are read from the generated tokens (o.XX, e.XX, x.XX). The CLI tests check
what `wasmformer run` makes of them: streams, argv, stdin and exit statuses.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from wasmformer.frontend import FrontendError, load_program, module_bytes
from wasmformer.machine.execute import run_program, trace_tokens
from wasmformer.machine.trace import expected_trace
from wasmformer.oracles import refvm
from wasmformer.oracles.wasmtime_runner import run_program as run_wasmtime
from wasmformer.vm.program import TrapReason

pytestmark = [pytest.mark.oracle, pytest.mark.wasmtime]
pytest.importorskip("ziglang")

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
TOUR = PROGRAMS / "libc_tour.c"
TOUR_INPUT = b"12 -5 word\nsecond line\nthird"
TOUR_ARGV = [b"libc_tour.c", b"x", b"y z"]

RETURN_3 = "int main(void) { return 3; }\n"
EXIT_FROM_A_FUNCTION = """#include <stdio.h>
#include <stdlib.h>
static void leave(int status) { printf("leaving with %d\\n", status); exit(status); }
int main(void) { leave(100); return 1; }
"""
ABORT = """#include <stdio.h>
#include <stdlib.h>
int main(void) { fputs("about to abort\\n", stderr); abort(); }
"""
FAILED_ASSERT = """#include <assert.h>
#include <stdio.h>
int main(int argc, char **argv) { printf("argc %d\\n", argc); fflush(stdout); assert(argc == 5); return 0; }
"""
DIVIDE_BY_ZERO = "int main(int argc, char **argv) { return 7 / (argc - 1); }\n"
ECHO_UPPER = """#include <ctype.h>
#include <stdio.h>
int main(void) { int c, n = 0; while ((c = getchar()) != EOF) { putchar(toupper(c)); n++; }
                 fprintf(stderr, "%d bytes\\n", n); return n; }
"""
WASI_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "to stdout\\nto stderr\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 10))
    (i32.store (i32.const 8) (i32.const 110)) (i32.store (i32.const 12) (i32.const 10))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))
    (drop (call $write (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 20)))
    (drop (call $write (i32.const 9) (i32.const 0) (i32.const 1) (i32.const 20)))  ;; EBADF, nothing written
    (call $exit (i32.const 42))))
"""

# name -> (source, kind, input, argv, (stdout, stderr, exit status) or the trap the machine reports)
CASES = {
    "return_3": (RETURN_3, "c", b"", [b"input.c"], (b"", b"", 3)),
    "exit_100_from_a_function": (EXIT_FROM_A_FUNCTION, "c", b"", [b"input.c"], (b"leaving with 100\n", b"", 100)),
    "abort": (ABORT, "c", b"", [b"input.c"], TrapReason.UNREACHABLE),
    "failed_assert": (FAILED_ASSERT, "c", b"", [b"input.c", b"one"], TrapReason.UNREACHABLE),
    "divide_by_zero": (DIVIDE_BY_ZERO, "c", b"", [b"input.c"], TrapReason.DIVIDE_BY_ZERO),
    "echo_upper": (ECHO_UPPER, "c", b"hi there\n", [b"input.c"], (b"HI THERE\n", b"9 bytes\n", 9)),
    "wasi_wat": (WASI_WAT, "wat", b"", [b"program"], (b"to stdout\n", b"to stderr\n", 42)),
}
ON_THE_MODEL = ("return_3", "abort", "echo_upper", "wasi_wat")


def _program(name: str):
    source, kind, input_bytes, argv, expected = CASES[name]
    return load_program(source, kind=kind, argv=argv), module_bytes(source, kind=kind), input_bytes, argv, expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_vm_agrees_with_wasmtime(name):
    program, wasm, input_bytes, argv, expected = _program(name)
    oracle = run_wasmtime(wasm, input_bytes, argv=argv)
    reference = refvm.run(program, input_bytes)
    assert reference.halted and (reference.output, reference.errors) == (oracle.output, oracle.errors)
    if isinstance(expected, TrapReason):
        assert oracle.trapped and reference.trap is expected and reference.exit_status is None
    else:
        assert not oracle.trapped and reference.trap is None
        assert (oracle.output, oracle.errors, oracle.exit_status) == expected
        assert (reference.exit_status or 0) == oracle.exit_status


def test_an_exit_status_past_a_byte_keeps_its_low_byte_as_natively():
    """exit(300) is status 44 for a native program's shell (wasmtime refuses statuses from 126 on)."""
    reference = refvm.run(load_program(EXIT_FROM_A_FUNCTION.replace("leave(100)", "leave(300)"), kind="c"))
    assert (reference.output, reference.exit_status) == (b"leaving with 300\n", 300 % 256)


def test_a_failed_assert_says_so_on_stderr():
    program, _, input_bytes, _, _ = _program("failed_assert")
    reference = refvm.run(program, input_bytes)
    assert reference.output == b"argc 2\n"
    assert reference.errors == b"Assertion failed: argc == 5 (input.c: main: 3)\n"


def test_the_libc_tour_agrees_with_wasmtime():
    program = load_program(TOUR, argv=TOUR_ARGV)
    oracle = run_wasmtime(module_bytes(TOUR), TOUR_INPUT, argv=TOUR_ARGV)
    reference = refvm.run(program, TOUR_INPUT)
    assert reference.trap is None and not oracle.trapped
    assert (reference.output, reference.errors, reference.exit_status) == (oracle.output, oracle.errors, 7)
    assert b"sorted: -35 -4 5 8 9 15 26 31, 15 at 5\n" in reference.output
    assert b'argv[2] = "y z"\n' in reference.output and reference.output.endswith(b"atexit handler ran\n")
    assert reference.errors == b"a line on stderr (3)\n"


@pytest.mark.parametrize("name", ON_THE_MODEL)
def test_on_the_model_stdout_stderr_and_status_come_from_the_tokens(universal, name):
    program, wasm, input_bytes, argv, expected = _program(name)
    trace = expected_trace(program, input_bytes)
    run = run_program(universal, program, input_bytes, max_new_tokens=len(trace.tokens) + 16)
    assert trace_tokens(universal, run) == trace.tokens
    oracle = run_wasmtime(wasm, input_bytes, argv=argv)
    assert (run.output, run.errors) == (oracle.output, oracle.errors)
    if isinstance(expected, TrapReason):
        assert run.trap == f"trap.{expected.name.lower()}" and run.exit_status is None
    else:
        assert run.trap is None and run.exit_status == (expected[2] or None)


def test_the_libc_tour_on_the_model(universal):
    program = load_program(TOUR, argv=TOUR_ARGV)
    trace = expected_trace(program, TOUR_INPUT)
    run = run_program(universal, program, TOUR_INPUT, max_new_tokens=len(trace.tokens) + 16)
    oracle = run_wasmtime(module_bytes(TOUR), TOUR_INPUT, argv=TOUR_ARGV)
    assert trace_tokens(universal, run) == trace.tokens
    assert (run.output, run.errors, run.exit_status) == (oracle.output, oracle.errors, 7)


MATH_AND_FLOAT_FORMATS = r"""#include <math.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    double x = argc / 3.0, parsed;
    printf("%f %e %g\n", x, sqrt(2.0) * 1e10, exp(1.0));
    printf("%.4f %.4f %.4f %.4f %.4f\n", pow(2.0, 0.5), log(10.0), sin(1.0), cos(1.0), fmod(7.5, 2.0));
    printf("%g %g %g %g %g\n", fabs(-3.5), floor(-2.5), ceil(2.1), strtod("3.25e2", 0), atof("-1.5"));
    if (scanf("%lf", &parsed) == 1) printf("%.17g %a\n", parsed / 7, (float)parsed);
    return 0;
}
"""


def test_math_h_printf_scanf_and_strtod_on_doubles_as_wasmtime():
    program = load_program(MATH_AND_FLOAT_FORMATS, kind="c")
    reference = refvm.run(program, b"2.5e-3\n", max_steps=20_000_000)
    oracle = run_wasmtime(module_bytes(MATH_AND_FLOAT_FORMATS, kind="c"), b"2.5e-3\n")
    assert reference.trap is None and reference.output == oracle.output
    assert reference.output.startswith(b"0.333333 1.414214e+10 2.71828\n")


def test_an_import_the_machine_lacks_is_refused_with_its_name():
    wat = ('(module (import "wasi_snapshot_preview1" "fd_allocate" (func (param i32 i64 i64) (result i32)))\n'
           ' (memory 1) (func (export "_start")))')
    with pytest.raises(FrontendError, match=r"wasi_snapshot_preview1\.fd_allocate is not supported"):
        load_program(wat, kind="wat")
    wrong_type = '(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i64))) (func (export "_start")))'
    with pytest.raises(FrontendError, match=r"proc_exit must have type \(i32\) -> \(\)"):
        load_program(wrong_type, kind="wat")


# -- the command line --------------------------------------------------------------------------------------


def _cli(capsys, monkeypatch, *argv, stdin: bytes | None = None):
    from wasmformer.cli import main

    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out.encode(), captured.err


def _source(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "input.c"
    path.write_text(CASES[name][0])
    return path


ARGV_AND_STREAMS = r"""#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("argv[%d] = %s\n", i, argv[i]);
    fprintf(stderr, "%d arguments\n", argc - 1);
    return argc + 4;
}
"""


def test_cli_run_gives_argv_and_separates_stdout_stderr_and_status(universal, capsys, monkeypatch, tmp_path):
    source = tmp_path / "args.c"
    source.write_text(ARGV_AND_STREAMS)
    status, out, err = _cli(capsys, monkeypatch, "run", source, "-q", "--", "x", "y z")
    oracle = run_wasmtime(module_bytes(source), b"", argv=[b"args.c", b"x", b"y z"])
    assert oracle.output == b"argv[0] = args.c\nargv[1] = x\nargv[2] = y z\n" and oracle.errors == b"2 arguments\n"
    assert (status, out, err.encode()) == (7, oracle.output, oracle.errors)


def test_cli_reads_a_piped_stdin_when_the_program_reads_input(universal, capsys, monkeypatch, tmp_path):
    status, out, err = _cli(capsys, monkeypatch, "run", _source(tmp_path, "echo_upper"), "-q", stdin=b"piped\n")
    assert (status, out, err) == (6, b"PIPED\n", "6 bytes\n")
    status, out, _ = _cli(capsys, monkeypatch, "run", _source(tmp_path, "echo_upper"), "-q", "--input", "x",
                          stdin=b"ignored")
    assert (status, out) == (1, b"X")


def test_cli_statuses_for_traps_the_token_limit_and_errors(universal, capsys, monkeypatch, tmp_path):
    from wasmformer.cli import EXIT_ERROR, EXIT_NOT_HALTED, EXIT_TRAPPED

    status, out, err = _cli(capsys, monkeypatch, "run", _source(tmp_path, "failed_assert"), "-q")
    assert status == EXIT_TRAPPED == 134 and out == b"argc 1\n"
    assert err.startswith("Assertion failed: argc == 5") and "trap.unreachable" in err.splitlines()[-1]
    status, _, err = _cli(capsys, monkeypatch, "run", _source(tmp_path, "return_3"), "-q", "--max-new-tokens", "10")
    assert status == EXIT_NOT_HALTED == 124 and "stopped after 10 tokens" in err
    status, _, err = _cli(capsys, monkeypatch, "run", tmp_path / "absent.c", "-q")
    assert status == EXIT_ERROR == 125 and err.startswith("wasmformer: error:")
    status, _, err = _cli(capsys, monkeypatch, "run", _source(tmp_path, "return_3"), "-q")
    assert (status, err) == (3, "")
