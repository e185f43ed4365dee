"""The command line: wasmformer compile | refvm | demo | inspect.

Only the program's output goes to stdout; progress, statistics and errors go to
stderr. User mistakes end with a one-line message and a non-zero exit status,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1  # a user-facing error: bad input, unsupported program, precision horizon
EXIT_NOT_HALTED = 2  # the run stopped at the token limit before the program halted


class CliError(Exception):
    """An error to show the user as one line on stderr."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # --invoke NAME may be followed by its i32 arguments after the source (argparse
    # would otherwise treat them as unknown), so collect the leftovers here.
    args, leftover = parser.parse_known_args(argv)
    if leftover:
        if not getattr(args, "invoke", None):
            parser.error(f"unrecognized arguments: {' '.join(leftover)}")
        try:
            args.args = list(args.args) + [_i32_argument(text) for text in leftover]
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("wasmformer: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - turned into a message below
        known = _user_errors()
        if isinstance(error, known):
            print(f"wasmformer: error: {error}", file=sys.stderr)
            return EXIT_ERROR
        raise


def _user_errors() -> tuple[type[Exception], ...]:
    from wasmformer.engines.base import EngineError
    from wasmformer.frontend.errors import FrontendError
    from wasmformer.graph.expr import GraphError
    from wasmformer.model import ModelFormatError

    return (CliError, FrontendError, GraphError, EngineError, ModelFormatError, OSError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wasmformer", description="A computer inside a transformer.")
    commands = parser.add_subparsers(metavar="COMMAND")

    compile_ = commands.add_parser("compile", help="write the prompt file for a C, WAT or WASM program and its input")
    _add_source_arguments(compile_)
    compile_.add_argument("-o", "--output", required=True, type=Path, help="prompt file to write")
    compile_.set_defaults(handler=_cmd_compile)

    refvm = commands.add_parser(
        "refvm", help="run a program on the reference VM (a test oracle, not the transformer)"
    )
    _add_source_arguments(refvm)
    refvm.add_argument("--max-steps", type=int, default=None, help="stop after this many VM instructions")
    refvm.set_defaults(handler=_cmd_refvm)

    demo = commands.add_parser("demo", help="run the bundled examples through the transformer")
    demo.add_argument("--engine", default=None, help="engine to use (default: the fastest available)")
    demo.set_defaults(handler=_cmd_demo)

    inspect = commands.add_parser("inspect", help="describe a model directory (sizes, layers, heads)")
    inspect.add_argument("model", type=Path)
    inspect.set_defaults(handler=_cmd_inspect)
    return parser


def _add_source_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("source", type=Path, help="a .c, .wat or .wasm file")
    inputs = command.add_mutually_exclusive_group()
    inputs.add_argument("--input", default=None, help="input text given to the program (getchar)")
    inputs.add_argument("--input-file", type=Path, default=None, help="read the program's input from a file")
    command.add_argument("--cc", default=None, help="use this clang (with the wasm32 target) instead of ziglang's")
    command.add_argument("--invoke", default=None, metavar="NAME", help="call this exported function instead of main")
    command.add_argument("args", nargs="*", type=_i32_argument, help="i32 arguments for --invoke")


def _i32_argument(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**31) <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} does not fit in 32 bits")
    return value


def _read_input(args) -> bytes:
    if args.input_file is not None:
        return args.input_file.read_bytes()
    return (args.input or "").encode()


def _load_program(args):
    from wasmformer.frontend import load_program

    if not args.source.is_file():
        raise CliError(f"{args.source}: no such file")
    if args.args and not args.invoke:
        raise CliError("positional arguments are only for --invoke NAME")
    return load_program(args.source, invoke=args.invoke, args=tuple(args.args), clang=args.cc)


def _cmd_compile(args) -> int:
    from wasmformer.machine.prompt import encode_prompt

    program = _load_program(args)
    tokens = encode_prompt(program, _read_input(args))
    args.output.write_text(" ".join(tokens) + "\n")
    print(f"{args.output}: {len(tokens)} prompt tokens, {len(program.instrs)} instructions", file=sys.stderr)
    return EXIT_OK


def _cmd_refvm(args) -> int:
    from wasmformer.oracles import refvm

    program = _load_program(args)
    result = refvm.run(program, _read_input(args), max_steps=args.max_steps)
    _write_output(args, program, result.output)
    print(f"reference VM: {result.steps} steps, {'halted' if result.halted else 'stopped'}"
          + (f", trap: {result.trap.name}" if result.trap is not None else ""), file=sys.stderr)
    return EXIT_OK if result.halted and result.trap is None else EXIT_ERROR


def _write_output(args, program, output: bytes) -> None:
    """The program's output on stdout: raw bytes, or with --invoke the results one per line."""
    if getattr(args, "invoke", None) and len(output) == 4 * program.stats.get("output_results", -1):
        from wasmformer.frontend import format_invoke_result

        sys.stdout.write(format_invoke_result(output, program.stats["output_results"]))
    else:
        sys.stdout.buffer.write(output)
    sys.stdout.flush()


def _cmd_demo(args) -> int:
    from wasmformer.demo import run_demo

    return run_demo(engine_name=args.engine)


def _cmd_inspect(args) -> int:
    from wasmformer.model import load_model

    model = load_model(args.model)
    print(f"{args.model}: d_model={model.d_model} layers={len(model.layers)} heads={model.n_heads} "
          f"d_ffn={model.d_ffn} vocab={len(model.vocab)} parameters={model.parameter_count():,} "
          f"nonzero={model.nonzero_weights():,} max_exact_tokens={model.max_exact_tokens:,}")
    for head in model.extra.get("heads", []):
        print(f"  layer {head.get('layer')} head {head.get('head')}: {head.get('tie')} {head.get('name')}")
    return EXIT_OK
