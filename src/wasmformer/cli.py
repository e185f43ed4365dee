"""The command line: wasmformer compile | run | build | refvm | demo | bench | batch | inspect | export.

A thin layer over the Python API (``api.py``): it parses options, reads the program's input and reports to
the terminal. Only the program's output goes to stdout (for ``bench``, its table); progress,
statistics and errors go to stderr. User mistakes end with a one-line message
``wasmformer: error: ...`` and exit status 125, never a traceback. docs/cli.md
describes every command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# A program's own exit status (0..255: main's return value, exit(n)) is `run`'s; wasmformer's own outcomes
# use statuses that shells and tools give the same meaning (docs/cli.md, "Exit status").
EXIT_OK = 0
EXIT_NOT_HALTED = 124  # the run stopped at max_new_tokens or the horizon before the program halted (as timeout(1))
EXIT_ERROR = 125  # wasmformer's own error: bad input, unsupported program, precision horizon (as env(1), docker run)
EXIT_TRAPPED = 134  # the program trapped or aborted (abort(), a failed assert): as a native program killed by SIGABRT
PROGRAM_ARGUMENTS = "--"  # `run SRC -- ARG...`: the program's argv[1:]
SOURCE_COMMANDS = ("compile", "specialize", "run", "refvm")


class CliError(Exception):
    """An error to show the user as one line on stderr."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage mistake is one line and exit status 125 like every user error.

    (argparse's own status 2 would read as the program's own exit status 2.)
    """

    def error(self, message: str):
        raise CliError(f"{message} (see `{self.prog} --help`)")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse_arguments(argv)
    except CliError as error:
        print(f"wasmformer: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if not hasattr(args, "handler"):
        print("wasmformer: error: no command given (see `wasmformer --help`)", file=sys.stderr)
        return EXIT_ERROR
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("wasmformer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`| head`): stop quietly
        return EXIT_ERROR
    except Exception as error:  # noqa: BLE001 - turned into a message below
        known = _user_errors()
        if isinstance(error, known):
            print(f"wasmformer: error: {_error_message(error)}", file=sys.stderr)
            return EXIT_ERROR
        raise


def _error_message(error: Exception) -> str:
    """The error as one printable line; an OSError as 'PATH: what went wrong' (not '[Errno 21] ...')."""
    if isinstance(error, OSError) and error.strerror:
        what = error.strerror[0].lower() + error.strerror[1:]
        paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
        return _printable(f"{' -> '.join(paths)}: {what}" if paths else what)
    return _printable(" ".join(str(error).split("\n")))


def _printable(text: str) -> str:
    """Control characters shown as escapes: messages quote names and source lines from the user's
    files, and a raw carriage return or NUL there would garble the terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    program_arguments: list[str] = []
    at = _program_arguments_start(argv)
    if at is not None:
        argv, program_arguments = argv[:at], argv[at + 1:]
    # --invoke NAME may be followed by its i32 arguments after the source (argparse
    # would otherwise treat them as unknown), so collect the leftovers here.
    args, leftover = parser.parse_known_args(argv)
    if leftover:
        if not getattr(args, "invoke", None):
            raise CliError(f"unrecognized arguments: {' '.join(leftover)}")
        try:
            args.args = list(args.args) + [_i32_argument(text) for text in leftover]
        except argparse.ArgumentTypeError as error:
            raise CliError(str(error)) from None
    if program_arguments and getattr(args, "source", None) is None:
        raise CliError(f"arguments after {PROGRAM_ARGUMENTS} are the program's: only for a source given to "
                       f"{', '.join(SOURCE_COMMANDS)}")
    args.program_arguments = program_arguments
    return args


# Options followed by a value: a "--" right after one is that value (`--input --`), not the program's arguments.
_OPTIONS_WITH_VALUES = {"--input", "--input-file", "--model", "--engine", "--max-new-tokens", "--max-tokens",
                        "--trace-out", "--invoke", "--cc", "-o", "--output", "--for-model", "--max-steps",
                        "--examples", "--engines", "--prompt", "--hull-tokens", "--dense-tokens", "--out",
                        "--budget", "--workers", "--trace-dir", "--ray", "--trace", "--program", "--steps", "--token",
                        "--step", "--html", "--plot"}


def _program_arguments_start(argv: list[str]) -> int | None:
    """Where the program's arguments begin: the first "--" that is not an option's value."""
    for index, word in enumerate(argv):
        if word == PROGRAM_ARGUMENTS and (index == 0 or argv[index - 1] not in _OPTIONS_WITH_VALUES):
            return index
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _user_errors() -> tuple[type[Exception], ...]:
    from wasmformer.errors import WasmformerError

    return (CliError, WasmformerError, OSError)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wasmformer", description="A computer inside a transformer.")
    commands = parser.add_subparsers(metavar="COMMAND")

    compile_ = commands.add_parser("compile", help="write the prompt file for a C, WAT or WASM program and its input")
    _add_source_arguments(compile_)
    compile_.add_argument("-o", "--output", required=True, type=Path, help="prompt file to write")
    compile_.add_argument("--for-model", type=Path, default=None, metavar="DIR",
                          help="write the prompt of this specialised model (input only) instead")
    compile_.set_defaults(handler=_cmd_compile)

    specialize = commands.add_parser("specialize", help="bake one program into a model of its own")
    _add_source_arguments(specialize)
    specialize.add_argument("-o", "--output", required=True, type=Path, help="model directory to write")
    specialize.add_argument("--force", action="store_true", help="overwrite the model files of an existing directory")
    specialize.set_defaults(handler=_cmd_specialize)

    run = commands.add_parser("run", help="run a program (or a prompt file) through the transformer")
    _add_source_arguments(run, source_help="a .c, .wat or .wasm program, or a prompt file (any other suffix)")
    run.add_argument("--model", type=Path, default=None, metavar="MODEL_DIR",
                     help="model directory to run (default: the universal model)")
    _add_engine_argument(run)
    # --max-tokens: the name the model-format contract gives this option (docs/model-format.md), still accepted
    run.add_argument("--max-new-tokens", "--max-tokens", type=_positive_int, default=None, metavar="N",
                     help="stop after N generated tokens (default: as many as the precision horizon allows)")
    run.add_argument("--trace-out", type=Path, default=None, metavar="FILE",
                     help="write the generated tokens (the trace, not the prompt) to FILE")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, engine notes or summary on stderr")
    run.set_defaults(handler=_cmd_run)

    build = commands.add_parser("build", help="write the universal model to a directory")
    build.add_argument("-o", "--output", required=True, type=Path, metavar="MODEL_DIR", help="directory to write")
    build.add_argument("--force", action="store_true", help="overwrite the model files of an existing directory")
    build.set_defaults(handler=_cmd_build)

    refvm = commands.add_parser(
        "refvm", help="run a program on the reference VM (a test oracle, not the transformer)"
    )
    _add_source_arguments(refvm)
    refvm.add_argument("--max-steps", type=_positive_int, default=None, metavar="N",
                       help="stop after N VM instructions")
    refvm.set_defaults(handler=_cmd_refvm)

    demo = commands.add_parser("demo", help="run the bundled examples through the transformer")
    _add_engine_argument(demo)
    # --budget: the option's earlier name, still accepted
    demo.add_argument("--max-new-tokens", "--budget", type=_positive_int, default=None, metavar="N",
                      help="generated tokens allowed per example (default: 2,000,000)")
    demo.add_argument("--examples", default=None, metavar="NAME,...", help="run only these examples")
    demo.set_defaults(handler=_cmd_demo)

    bench = commands.add_parser("bench", help="tokens per second of the bundled examples on each engine")
    bench.add_argument("--engines", default=None, metavar="NAME,...",
                       help="engines to measure (default: every available one of native, hull, dense)")
    bench.add_argument("--examples", default=None, metavar="NAME,...", help="only these examples")
    bench.add_argument("--prompt", type=Path, action="append", default=[], metavar="FILE",
                       help="benchmark this prompt file instead of the examples (repeatable)")
    bench.add_argument("--model", type=Path, default=None, metavar="MODEL_DIR",
                       help="model directory (default: the universal model)")
    bench.add_argument("--hull-tokens", type=_positive_int, default=None, metavar="N",
                       help="generated tokens per run on the hull engine (default: 30,000)")
    bench.add_argument("--dense-tokens", type=_positive_int, default=None, metavar="N",
                       help="generated tokens per run on the dense engine (default: 3,000)")
    bench.add_argument("--out", type=Path, default=None, metavar="DIR", help="also write results.json and results.md")
    bench.set_defaults(handler=_cmd_bench)

    inspect = commands.add_parser("inspect", help="describe a model directory (sizes, layers, heads)")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--heads", action="store_true",
                         help="every head's role (lookup kind, query, key, clear flag) and every FFN group's node")
    inspect.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                         help="write a PNG of the weight matrices' nonzero entries, one row per layer")
    inspect.set_defaults(handler=_cmd_inspect)

    explain = commands.add_parser("explain", help="the steps of a run decoded from its tokens, and the heads "
                                  "behind a token (docs/inspect.md)")
    _add_source_arguments(explain, source_help="a .c, .wat or .wasm program, or a prompt file (any other suffix)")
    explain.add_argument("--model", type=Path, default=None, metavar="MODEL_DIR",
                         help="model directory (default: the universal model)")
    _add_engine_argument(explain)
    explain.add_argument("--max-new-tokens", type=_positive_int, default=None, metavar="N",
                         help="stop the run after N generated tokens (default: the precision horizon)")
    explain.add_argument("--trace", type=Path, default=None, metavar="FILE",
                         help="explain this saved trace (`run --trace-out`) of the prompt instead of running it")
    explain.add_argument("--program", type=Path, default=None, metavar="SOURCE",
                         help="the program of a prompt file: names its functions (a specialised prompt needs it)")
    explain.add_argument("--steps", default=None, metavar="A:B", help="list steps A to B (from 1; A: and :B too)")
    which = explain.add_mutually_exclusive_group()
    which.add_argument("--token", type=_positive_int, default=None, metavar="N",
                       help="every head's winning position in the forward pass that produced token N (a position "
                       "in prompt + trace)")
    which.add_argument("--step", type=_positive_int, default=None, metavar="S",
                       help="the same for every token of step S")
    explain.add_argument("--json", action="store_true", help="print JSON instead of tables")
    explain.add_argument("--html", type=Path, default=None, metavar="FILE",
                         help="write one self-contained HTML page: steps, source, heads per token")
    explain.add_argument("--debug", action="store_true",
                         help="a C program: the source line of each step (clang's DWARF line table)")
    explain.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr")
    explain.set_defaults(handler=_cmd_explain)
    batch = commands.add_parser("batch", help="run many programs on every core (or a Ray cluster), resumably")
    batch.add_argument("manifest", type=Path, metavar="MANIFEST",
                       help="a JSONL file of {program, input, args, max_new_tokens, id} or a directory of programs")
    batch.add_argument("-o", "--output", required=True, type=Path, metavar="RESULTS.jsonl",
                       help="results file: one JSON line per run; a rerun skips the runs it already holds")
    batch.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="worker processes (default: one per core; on Ray: one per CPU of the cluster)")
    batch.add_argument("--model", type=Path, default=None, metavar="MODEL_DIR",
                       help="model directory (default: the universal model)")
    _add_engine_argument(batch)
    batch.add_argument("--trace-dir", type=Path, default=None, metavar="DIR", help="write each run's trace to DIR/ID.trace")
    batch.add_argument("--ray", default=None, metavar="ADDRESS",
                       help="run on this Ray cluster ('local': start Ray on this machine); needs wasmformer[ray]")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    batch.set_defaults(handler=_cmd_batch)

    from wasmformer.export import EXPORT_FORMATS

    export = commands.add_parser("export", help="write a model for another runtime (ONNX, Hugging Face)")
    export.add_argument("model", type=Path, metavar="MODEL_DIR", help="the wasmformer/1 model directory to export")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                        help="onnx: one .onnx file; hf: a Hugging Face model directory")
    export.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                        help="the .onnx file (onnx) or the directory (hf) to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing file or non-empty directory")
    export.set_defaults(handler=_cmd_export)
    return parser


def _add_source_arguments(command: argparse.ArgumentParser, source_help: str = "a .c, .wat or .wasm file") -> None:
    command.add_argument("source", type=Path, help=source_help)
    inputs = command.add_mutually_exclusive_group()
    inputs.add_argument("--input", default=None, help="input text given to the program (its stdin; default: "
                        "wasmformer's own stdin when it is not a terminal and the program reads input)")
    inputs.add_argument("--input-file", type=Path, default=None, help="read the program's input from a file")
    command.add_argument("--cc", default=None, help="use this clang (with the wasm32 target) instead of ziglang's")
    command.add_argument("--invoke", default=None, metavar="NAME", help="call this exported function instead of main")
    command.add_argument("args", nargs="*", default=[], type=_i32_argument, help="i32 arguments for --invoke")


def _add_engine_argument(command: argparse.ArgumentParser) -> None:
    from wasmformer.engines import ENGINE_NAMES

    command.add_argument("--engine", choices=ENGINE_NAMES, default=None,
                         help="engine to run on (default: the fastest available)")


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def _i32_argument(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**31) <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} does not fit in 32 bits")
    return value


def _read_input(args, program=None) -> bytes:
    """--input, --input-file, or else wasmformer's own stdin when it is not a terminal and the program reads
    input (``program``: an api.Program; the prompt holds the input, so it is read before the run)."""
    if args.input_file is not None:
        _require_file(args.input_file)
        return args.input_file.read_bytes()
    if args.input is None and program is not None and program.reads_input and _stdin_is_piped():
        from wasmformer.machine.prompt import MAX_INPUT_BYTES

        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise CliError(f"the input on stdin is longer than {MAX_INPUT_BYTES:,} bytes, the most a prompt holds")
        return data
    # the argument's bytes as given: Python decoded argv with surrogateescape, fsencode undoes it
    return os.fsencode(args.input or "")


def _stdin_is_piped() -> bool:
    try:
        return sys.stdin is not None and not sys.stdin.isatty() and sys.stdin.buffer is not None
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin
        return False


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise CliError(f"{path}: no such file")


def _load_program(args):
    """The source compiled (``api.Program``), with the program's arguments after ``--``."""
    from wasmformer import api

    _require_file(args.source)
    if args.args and not args.invoke:
        raise CliError("positional arguments are only for --invoke NAME (the program's own arguments go after --)")
    return api.compile(args.source, args=[os.fsencode(text) for text in args.program_arguments],
                       invoke=args.invoke, invoke_args=tuple(args.args), clang=args.cc)


def _cmd_compile(args) -> int:
    from wasmformer import runner
    from wasmformer.machine import purpose
    from wasmformer.machine.prompt import encode_prompt

    program = _load_program(args)
    if args.for_model is not None:
        from wasmformer.machine.specialize import prompt_for_model

        model = _load_model_dir(args.for_model)
        tokens = prompt_for_model(program.vm, _read_input(args, program), model, str(args.for_model))
        made_for = purpose.built_for(model)
    else:
        tokens, made_for = encode_prompt(program.vm, _read_input(args, program)), purpose.universal()
    runner.write_prompt_file(args.output, tokens, made_for)
    print(f"{args.output}: {len(tokens)} prompt tokens, {program.instructions} instructions", file=sys.stderr)
    return EXIT_OK


def _cmd_specialize(args) -> int:
    from wasmformer.machine.specialize import write_specialised

    from wasmformer.runner import stdout_to_stderr

    _check_output_directory(args.output, args.force)
    program = _load_program(args)
    with stdout_to_stderr():  # the MILP solver's banner is not output
        result, prompt_path = write_specialised(program.vm, _read_input(args, program), args.output)
    model = result.model
    print(f"{args.output}: specialised '{program.name}' in {result.seconds:.1f} s: D={model.d_model} "
          f"L={len(model.layers)} H={model.n_heads} F={model.d_ffn}, {result.table_units} table units, "
          f"{model.nonzero_weights():,} nonzero weights; "
          f"prompt {prompt_path}", file=sys.stderr)
    return EXIT_OK


def _cmd_refvm(args) -> int:
    from wasmformer import api
    from wasmformer.oracles import refvm
    from wasmformer.vm.program import TrapReason

    program = _load_program(args)
    result = refvm.run(program.vm, _read_input(args, program), max_steps=args.max_steps)
    _write_output(args, program, result.output, completed=result.halted and result.trap is None)
    sys.stderr.buffer.write(result.errors)
    sys.stderr.flush()
    print(f"reference VM: {result.steps} steps, {'halted' if result.halted else 'stopped'}"
          + (f", trap: {result.trap.name}" if result.trap is not None else "")
          + (f", exit status {result.exit_status}" if result.exit_status else ""), file=sys.stderr)
    if result.trap is TrapReason.UNSUPPORTED:
        print(f"wasmformer: error: the program reached {program.vm.unsupported_at(result.trap_pc)}, "
              f"{api.UNSUPPORTED_REMARK}", file=sys.stderr)
    if not result.halted:
        return EXIT_NOT_HALTED
    if result.trap is not None:
        return EXIT_TRAPPED
    return result.exit_status or EXIT_OK


def _write_output(args, program, output: bytes, completed: bool) -> None:
    """The program's output on stdout: raw bytes; with --invoke the results after it, one per line.

    The entry stub writes the results (4 bytes each) after the call returns, so
    they are the last bytes of a completed run; what comes before is the
    function's own output. A run that did not complete has no results: its
    output is written as it is.
    """
    from wasmformer.frontend import format_invoke_result, result_bytes

    results = program.result_types
    result_size = result_bytes(results)
    if not completed or not results or len(output) < result_size:
        sys.stdout.buffer.write(output)
    else:
        sys.stdout.buffer.write(output[:len(output) - result_size])
        sys.stdout.flush()
        sys.stdout.write(format_invoke_result(output[len(output) - result_size:], results))
    sys.stdout.flush()


# -- run ------------------------------------------------------------------------------------------

def _cmd_run(args) -> int:
    """`run`: the Python API's prepare + execute, with the terminal's progress line, streams and messages."""
    from wasmformer import api, runner

    _require_file(args.source)
    is_source = args.source.suffix.lower() in api.SOURCE_SUFFIXES
    if not is_source:
        _refuse_source_options(args)
    program = _load_program(args) if is_source else None  # before the model: a refused source fails fast
    model = _load_model_or_universal(args.model, quiet=args.quiet)
    prepared = api.prepare(program if program is not None else args.source,
                           _read_input(args, program) if program is not None else b"", model=model,
                           max_new_tokens=args.max_new_tokens, model_name=_model_name(args.model))
    if not args.quiet and args.max_new_tokens and args.max_new_tokens > prepared.horizon_max_new_tokens:
        _say(f"wasmformer: --max-new-tokens {args.max_new_tokens:,} reaches past the model's precision "
             f"horizon; running at most {prepared.horizon_max_new_tokens:,} tokens")
    engine, note = runner.choose_engine(model, args.engine)
    if note and not args.quiet:
        _say(note)
    progress = runner.progress_line(sys.stderr, quiet=args.quiet)
    try:
        result = api.execute(prepared, engine, trace=args.trace_out is not None, on_stdout=_StreamedStdout(progress),
                             on_stderr=_StreamedStderr(progress), progress=progress)
    finally:
        if progress is not None:
            progress.close()
    if result.values:  # an invoked function's results, after its output, as wasmtime --invoke prints them
        sys.stdout.write("".join(f"{value!r}\n" for value in result.values))
        sys.stdout.flush()
    if args.trace_out is not None:
        runner.write_trace_file(args.trace_out, result.trace)
    if not args.quiet:
        _say(_run_summary(result))
    _say_ending(result)
    return result.exit_status


def _model_name(model_dir: Path | None) -> str:
    """How messages name the model a prompt is checked against."""
    return str(model_dir) if model_dir is not None else "the default model"


def _refuse_source_options(args) -> None:
    given = [option for option, value in (("--input", args.input), ("--input-file", args.input_file),
                                          ("--invoke", args.invoke), ("--cc", args.cc)) if value is not None]
    if given or args.args or args.program_arguments:
        what = given[0] if given else "an argument list"
        raise CliError(f"{what} is only for a .c, .wat or .wasm source; {args.source} is a prompt file "
                       "(it already holds the program and its input)")


def _load_model_dir(model_dir: Path):
    from wasmformer.model import load_model

    if not model_dir.exists():
        raise CliError(f"{model_dir}: no such model directory")
    return load_model(model_dir)


def _load_model_or_universal(model_dir: Path | None, quiet: bool):
    from wasmformer import runner

    if model_dir is not None:
        return _load_model_dir(model_dir)
    return runner.load_universal_model(log=None if quiet else _say)


class _StreamedStdout:
    """on_output for a run: each chunk of output bytes to stdout at once, clear of the progress line."""

    def __init__(self, progress):
        self.progress = progress
        # Only when stdout is the progress line's terminal can a line without its
        # newline yet be overwritten by a redraw; then the line waits for the newline.
        self.shares_terminal = progress is not None and sys.stdout.isatty()

    def __call__(self, chunk: bytes) -> None:
        if self.progress is not None:
            self.progress.hide()
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        if self.shares_terminal:
            self.progress.paused = not chunk.endswith(b"\n")


class _StreamedStderr:
    """on_error for a run: the program's error stream (e.XX bytes) to stderr at once, clear of the progress line."""

    def __init__(self, progress):
        self.progress = progress

    def __call__(self, chunk: bytes) -> None:
        if self.progress is not None:
            self.progress.hide()
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()


def _say_ending(result) -> None:
    """Why a run ended, when the program did not finish on its own."""
    if result.ending in ("trap", "unsupported"):
        _say(f"wasmformer: error: {result.message} (after {result.tokens:,} tokens)")
    elif result.ending == "horizon":
        _say(f"wasmformer: {result.message}")
    elif result.ending == "max_new_tokens":
        _say(f"wasmformer: stopped after {result.tokens} tokens without halting (raise --max-new-tokens)")


def _run_summary(result) -> str:
    if result.trap:
        ending = f"trapped (trap.{result.trap})"
    elif result.halted:
        ending = "halted" + (f", exit status {result.exit_status}" if result.exit_status else "")
    else:
        ending = "did not halt"
    return (f"{result.engine} engine: {result.tokens:,} tokens generated after a "
            f"{result.prompt_tokens:,}-token prompt in {result.seconds:.2f} s, "
            f"{result.tokens_per_second:,.0f} tok/s; {ending}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- build ------------------------------------------------------------------------------------------


def _check_output_directory(directory: Path, force: bool) -> None:
    """A model directory is written only where nothing would be overwritten, unless --force."""
    if directory.exists() and not directory.is_dir():
        raise CliError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise CliError(f"{directory} already exists and is not empty (--force overwrites the model files in it)")


def _cmd_build(args) -> int:
    from wasmformer import runner
    from wasmformer.model import save_model

    directory = args.output
    _check_output_directory(directory, args.force)
    started = time.perf_counter()
    model = runner.load_universal_model(log=_say)
    save_model(model, directory)
    sizes = runner.model_description(model)
    _say(f"{directory}: D={sizes['d_model']} L={sizes['n_layers']} H={sizes['n_heads']} F={sizes['d_ffn']} "
         f"vocab={sizes['vocab']:,} nonzeros={sizes['nonzero_weights']:,} "
         f"max_exact_tokens={sizes['max_exact_tokens']:,} ({time.perf_counter() - started:.1f} s)")
    return EXIT_OK


# -- demo and bench ---------------------------------------------------------------------------------


def _cmd_demo(args) -> int:
    from wasmformer.demo import run_demo

    return run_demo(engine_name=args.engine, max_new_tokens=args.max_new_tokens,
                    example_names=_name_list(args.examples))


def _cmd_bench(args) -> int:
    from rich.console import Console

    from wasmformer import runner

    engine_names = runner.parse_engine_list(args.engines)
    if args.prompt and args.examples:
        raise CliError("--prompt and --examples are alternatives: benchmark prompt files or examples")
    workloads = ([runner.prompt_file_workload(path) for path in _existing_files(args.prompt)] if args.prompt
                 else [example.workload() for example in runner.bundled_examples(_name_list(args.examples))])
    model = _load_model_or_universal(args.model, quiet=False)
    if args.prompt:  # as `run` does: a prompt file made for another model is refused
        from wasmformer.machine import purpose

        model_name = _model_name(args.model)
        for workload in workloads:
            purpose.check_prompt(purpose.built_for(model), workload.prompt, workload.made_for, workload.source,
                                 model_name)
    max_new_tokens = {"hull": args.hull_tokens, "dense": args.dense_tokens}
    rows = runner.bench_workloads(
        model, workloads, engine_names, {name: count for name, count in max_new_tokens.items() if count is not None},
        progress_for=lambda label: runner.progress_line(sys.stderr, label=label),
    )
    # rich assumes 80 columns when stdout is not a terminal: too narrow for the table
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120).print(runner.bench_table(rows))
    if args.out is not None:
        for path in runner.write_bench_results(args.out, rows, model):
            _say(f"wrote {path}")
    return EXIT_OK


def _name_list(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _existing_files(paths: list[Path]) -> list[Path]:
    for path in paths:
        _require_file(path)
    return paths


def _cmd_inspect(args) -> int:
    model = _load_model_dir(args.model)
    print(f"{args.model}: d_model={model.d_model} layers={len(model.layers)} heads={model.n_heads} "
          f"d_ffn={model.d_ffn} vocab={len(model.vocab)} parameters={model.parameter_count():,} "
          f"nonzero={model.nonzero_weights():,} max_exact_tokens={model.max_exact_tokens:,}")
    if args.heads or args.plot is not None:
        from wasmformer.explain.roles import print_roles, write_sparsity_png

        if args.heads:
            print_roles(model, sys.stdout)
        if args.plot is not None:
            write_sparsity_png(model, args.plot)
            _say(f"wrote {args.plot}")
        return EXIT_OK
    for head in model.extra.get("heads", []):
        print(f"  layer {head.get('layer')} head {head.get('head')}: {head.get('tie')} {head.get('name')}")
    return EXIT_OK


def _cmd_explain(args) -> int:
    """`explain`: the run prepared as `run` prepares it (api.prepare), then wasmformer.explain.command."""
    from wasmformer import api
    from wasmformer.explain.command import ExplainError, Selection, explain, parse_step_range

    try:
        first, last = parse_step_range(args.steps) if args.steps else (None, None)
        _require_file(args.source)
        is_source = args.source.suffix.lower() in api.SOURCE_SUFFIXES
        if not is_source:
            _refuse_source_options(args)
        program = _load_program(args) if is_source else None
        model = _load_model_or_universal(args.model, quiet=args.quiet)
        prepared = api.prepare(program if is_source else args.source,
                               _read_input(args, program) if is_source else b"", model=model,
                               model_name=_model_name(args.model))
        if program is None and args.program is not None:
            program = _load_program(argparse.Namespace(**{**vars(args), "source": args.program}))
        selection = Selection(first, last, args.token, args.step)
        return explain(model, prepared.prompt, program.vm if program is not None else None, trace_file=args.trace,
                       selection=selection, engine_name=args.engine, max_new_tokens=args.max_new_tokens,
                       as_json=args.json, html=args.html, source=args.program or args.source, debug=args.debug,
                       clang=args.cc, say=None if args.quiet else _say)
    except ExplainError as error:
        raise CliError(str(error)) from None


# -- batch ------------------------------------------------------------------------------------------


def _cmd_batch(args) -> int:
    """`batch`: wasmformer.batch with a progress bar (runs done, tok/s, ETA) and a summary on stderr."""
    from wasmformer.batching import batch
    from wasmformer.batching.manifest import finished_ids, read_manifest

    if args.output.is_dir():
        raise CliError(f"{args.output} is a directory; -o names the results file (JSONL)")
    entries = read_manifest(args.manifest)
    skipped = len(finished_ids(args.output) & {entry.id for entry in entries})
    if skipped and not args.quiet:
        _say(f"{args.output}: {skipped:,} of {len(entries):,} runs already there; running the other "
             f"{len(entries) - skipped:,}")
    with _BatchProgress(quiet=args.quiet) as progress:
        outcomes = batch(entries, results=args.output, workers=args.workers, model=args.model, engine=args.engine,
                         ray=args.ray, trace_dir=args.trace_dir, progress=progress)
        counts = {"ok": 0, "failed": 0, "error": 0}
        for outcome in outcomes:
            counts["error" if outcome.error else "ok" if outcome.exit_status == 0 else "failed"] += 1
    if not args.quiet:
        _say(f"{args.output}: {counts['ok']:,} runs exited 0, {counts['failed']:,} with another status, "
             f"{counts['error']:,} could not run (see their \"error\")")
    return EXIT_OK


class _BatchProgress:
    """A rich progress bar on stderr when it is a terminal: runs done of total, tokens per second, ETA."""

    def __init__(self, quiet: bool):
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                console=Console(file=sys.stderr), transient=True)
            self.task = self.bar.add_task("runs", total=None, rate="")

    def __call__(self, finished: int, total: int, tokens: int, seconds: float) -> None:
        if self.bar is not None:
            rate = f"{tokens / seconds:,.0f} tok/s" if seconds > 0 else ""
            self.bar.update(self.task, completed=finished, total=total, rate=rate)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- export -----------------------------------------------------------------------------------------


def _cmd_export(args) -> int:
    from wasmformer.export import export_model

    if not args.model.exists():
        raise CliError(f"{args.model}: no such model directory")
    if args.format == "hf":
        _check_output_directory(args.output, args.force)
    elif args.output.is_dir():
        raise CliError(f"{args.output} is a directory; --format onnx writes one file")
    elif args.output.exists() and not args.force:
        raise CliError(f"{args.output} already exists (--force overwrites it)")
    started = time.perf_counter()
    export_model(args.model, args.format, args.output)
    _say(f"{args.output}: exported {args.model} as {args.format} ({time.perf_counter() - started:.1f} s)")
    return EXIT_OK
