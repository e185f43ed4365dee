"""The Python API: compile a program, run it through the transformer, stream its output, specialise a model.

    import wasmformer
    result = wasmformer.run("examples/hello.c")
    result.stdout, result.exit_status, result.tokens_per_second

Every run's answer is decoded from the model's generated tokens (``runner.run_prompt``); nothing here
executes the program another way. Library calls print nothing: progress and output reach the caller
through callbacks (``on_stdout``, ``on_stderr``, ``progress``) or through ``stream``. Errors are the
documented subclasses of ``WasmformerError`` (docs/python-api.md). The command line (``cli.py``) is a thin
layer over this module.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence, Union

from wasmformer.engines.base import EngineError, PrecisionHorizonError
from wasmformer.errors import WasmformerError
from wasmformer.export.common import ExportError
from wasmformer.graph.expr import GraphError
from wasmformer.machine.purpose import PromptMismatchError
from wasmformer.model import Model, ModelFormatError
from wasmformer.vm.errors import ProgramError

if TYPE_CHECKING:
    from wasmformer.vm.program import VMProgram

__all__ = [
    "Chunk", "EngineError", "ExportError", "GraphError", "InterruptedRun", "ModelFormatError", "PrecisionHorizonError",
    "Program",
    "ProgramError", "PromptMismatchError", "Result", "Stream", "WasmformerError", "compile", "load_model", "run",
    "specialize", "stream",
]

# A run's exit status beyond the program's own 0..255 (the command line's too; docs/cli.md "Exit status").
EXIT_NOT_HALTED = 124  # stopped at max_new_tokens or the precision horizon before the program halted
EXIT_TRAPPED = 134  # trapped, aborted, failed an assert or reached an instruction the machine lacks

SOURCE_SUFFIXES = (".c", ".wat", ".wasm")
StreamName = Literal["stdout", "stderr"]
Ending = Literal["exit", "trap", "unsupported", "max_new_tokens", "horizon"]
Source = Union[str, os.PathLike, bytes, "Program"]
ModelLike = Union[Model, str, os.PathLike, None]
ByteSink = Callable[[bytes], None]
ProgressCallback = Callable[[int, float], None]  # (generated tokens, elapsed seconds)


class InterruptedRun(WasmformerError):
    """A run stopped by its caller (a ``Stream`` closed before the program finished)."""


# ---------------------------------------------------------------------------
# programs


@dataclass(frozen=True)
class Program:
    """A compiled program: the VM program the machine runs and how it was asked for.

    ``vm`` is the ``VMProgram`` (docs/vm-program.md); ``invoke`` names the exported function the program calls
    instead of ``main`` (its results are returned as ``Result.values``).
    """

    vm: VMProgram
    name: str
    invoke: str | None = None

    @property
    def instructions(self) -> int:
        return len(self.vm.instrs)

    @property
    def result_types(self) -> list[str]:
        """The wasm types of an invoked function's results (empty without ``invoke``)."""
        return list(self.vm.stats.get("output_result_types", [])) if self.invoke else []

    @property
    def reads_input(self) -> bool:
        from wasmformer.vm.program import Op

        return any(instr.op is Op.GETCHAR for instr in self.vm.instrs)

    def prompt(self, input: bytes | str = b"", model: ModelLike = None) -> list[str]:
        """The prompt token strings of this program and input for ``model`` (the universal model's by default;
        a specialised model's prompt holds only the input and is refused for another program)."""
        return _program_prompt(self, _input_bytes(input), _model(model) if model is not None else None)


def compile(source: Source, *, args: Sequence[str | bytes] = (), invoke: str | None = None,
            invoke_args: Sequence[int] = (), clang: str | None = None, name: str | None = None) -> Program:
    """Compile a C, WAT or wasm program for the machine.

    ``source`` is a path (``.c``, ``.wat``, ``.wasm``), or the program itself: C or WAT text as a ``str``
    (WAT when it starts with ``(``), wasm as ``bytes``. ``args`` is the program's ``argv[1:]`` (compiled into
    it). ``invoke="f", invoke_args=(1, 2)`` calls the exported ``f`` instead of ``main``. Raises
    ``ProgramError`` for a program the machine cannot run, naming what and where.
    """
    from wasmformer.frontend import load_program

    if isinstance(source, Program):
        return source
    if invoke_args and invoke is None:
        raise ProgramError("invoke_args are only for invoke=NAME")
    path, kind, text = _source_parts(source)
    program_name = name or (path.stem if path is not None else "program")
    argv = [os.fsencode(path.name) if path is not None else program_name.encode()]
    argv += [os.fsencode(argument) if isinstance(argument, str) else bytes(argument) for argument in args]
    if path is not None:
        vm = load_program(path, invoke=invoke, args=tuple(invoke_args), clang=clang, argv=argv)
    elif kind == "c":
        vm = _load_c_text(text, invoke, tuple(invoke_args), clang, argv)
    else:
        vm = load_program(text, kind=kind, invoke=invoke, args=tuple(invoke_args), argv=argv)
    vm.name = program_name
    return Program(vm, program_name, invoke)


def _source_parts(source) -> tuple[Path | None, str | None, str | bytes | None]:
    """(path, kind, text): a path to read, or the program's own text/bytes and its kind."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return None, "wasm" if data[:4] == b"\0asm" else "wat", data
    if isinstance(source, os.PathLike):
        return Path(source), None, None
    if not isinstance(source, str):
        raise ProgramError(f"a program is a path, C or WAT text, or wasm bytes, not {type(source).__name__}")
    if _is_path_text(source):
        path = Path(source)
        if not path.is_file():
            raise ProgramError(f"{path}: {'is a directory, not a file' if path.is_dir() else 'no such file'}")
        return path, None, None
    return None, "wat" if source.lstrip().startswith("(") else "c", source


def _is_path_text(text: str) -> bool:
    """A str names a file unless it reads as a program: C has braces, WAT opens with a parenthesis."""
    return "\n" not in text and "{" not in text and not text.lstrip().startswith("(")


def _load_c_text(text: str, invoke, invoke_args, clang, argv):
    """C source text: written to a temporary file for the compiler."""
    import tempfile

    from wasmformer.frontend import load_program

    with tempfile.TemporaryDirectory(prefix="wasmformer-") as directory:
        path = Path(directory) / "program.c"
        path.write_text(text, encoding="utf-8")
        return load_program(path, invoke=invoke, args=invoke_args, clang=clang, argv=argv)


# ---------------------------------------------------------------------------
# models


def load_model(dir: str | os.PathLike | None = None) -> Model:
    """A model directory in the wasmformer/1 format, or the universal model (built once, then cached on disk:
    the first call on a machine compiles it, a few tens of seconds). Raises ``ModelFormatError``."""
    if dir is None:
        from wasmformer.runner import load_universal_model

        return load_universal_model()
    from wasmformer.model import load_model as read_model_directory

    directory = Path(dir)
    if not directory.exists():
        raise ModelFormatError(f"{directory}: no such model directory")
    return read_model_directory(directory)


def _model(model: ModelLike) -> Model:
    return model if isinstance(model, Model) else load_model(model)


def specialize(source: Source, *, args: Sequence[str | bytes] = (), output_dir: str | os.PathLike | None = None,
               input: bytes | str = b"", clang: str | None = None) -> Model:
    """A model with one program baked into its weights (docs/specialize.md); its prompts hold only the input.

    With ``output_dir`` the model is also written there, with ``<name>.prompt`` for ``input``. Raises
    ``ProgramError`` for a program too large to bake in.
    """
    from wasmformer.machine.specialize import specialise, write_specialised
    from wasmformer.runner import stdout_to_stderr

    program = compile(source, args=args, clang=clang)
    with stdout_to_stderr():  # the MILP solver's banner is not the caller's output
        if output_dir is None:
            return specialise(program.vm).model
        result, _ = write_specialised(program.vm, _input_bytes(input), Path(output_dir))
    return result.model


# ---------------------------------------------------------------------------
# runs


@dataclass
class Result:
    """One run through the transformer, read from the generated tokens alone.

    ``exit_status`` is the command line's: the program's own status (0..255: main's return value,
    ``exit(n)``) when it halted, 134 when it trapped (``trap`` names the trap; ``message`` explains it), 124
    when ``max_new_tokens`` or the precision horizon came first. ``ending`` says which: "exit", "trap",
    "unsupported" (an instruction the machine lacks), "max_new_tokens" or "horizon". ``tokens`` counts generated tokens,
    ``prompt_tokens`` the prompt; ``tokens_per_second`` counts both over ``seconds``, the decoding loop's
    time. ``trace`` holds the generated token strings when the run was asked for it.
    """

    stdout: bytes
    stderr: bytes
    exit_status: int
    ending: Ending
    halted: bool
    trap: str | None
    message: str | None
    tokens: int
    prompt_tokens: int
    seconds: float
    tokens_per_second: float
    engine: str
    engine_note: str | None = None
    values: list[int | float] | None = None  # an invoked function's results
    trace: list[str] | None = None

    @property
    def ok(self) -> bool:
        """The program halted with exit status 0."""
        return self.halted and self.exit_status == 0


@dataclass(frozen=True)
class Chunk:
    """A piece of a running program's output: which stream and the bytes."""

    stream: StreamName
    data: bytes


@dataclass
class PreparedRun:
    """A run ready to decode (``prepare``): the model, the program (None for a prompt file), the checked
    prompt, and the generated tokens it may take (``max_new_tokens``, at most ``horizon_max_new_tokens``,
    what the model's precision horizon leaves after the prompt)."""

    model: Model
    program: Program | None
    prompt: list[str]
    prompt_ids: list[int]
    max_new_tokens: int
    horizon_max_new_tokens: int


def run(source: Source, input: bytes | str = b"", args: Sequence[str | bytes] = (), *, engine: str | None = None,
        max_new_tokens: int | None = None, model: ModelLike = None, trace: bool = False,
        invoke: str | None = None, invoke_args: Sequence[int] = (), clang: str | None = None,
        on_stdout: ByteSink | None = None, on_stderr: ByteSink | None = None,
        progress: ProgressCallback | None = None) -> Result:
    """Run a program through the transformer and return its ``Result``.

    ``source``: as for ``compile``, a ``Program``, or the path of a prompt file (any other suffix, from
    ``wasmformer compile``). ``input`` is the program's stdin; ``args`` its ``argv[1:]``. ``engine``:
    "native", "hull" or "dense" (default: the fastest available). ``max_new_tokens`` caps the generated
    tokens (default and upper bound: the model's precision horizon). ``model``: a ``Model``, a model
    directory, or the universal model by default (pass a loaded one to save reloading it per run).
    ``on_stdout``/``on_stderr`` receive output bytes as they are generated; ``progress(tokens, seconds)``
    is called as tokens arrive.
    """
    prepared = prepare(source, input, args, model=model, max_new_tokens=max_new_tokens, invoke=invoke,
                       invoke_args=invoke_args, clang=clang)
    return execute(prepared, engine, trace=trace, on_stdout=on_stdout, on_stderr=on_stderr, progress=progress)


def stream(source: Source, input: bytes | str = b"", args: Sequence[str | bytes] = (), *,
           engine: str | None = None, max_new_tokens: int | None = None, model: ModelLike = None,
           trace: bool = False, invoke: str | None = None, invoke_args: Sequence[int] = (),
           clang: str | None = None) -> Stream:
    """Run as ``run`` does, yielding the output as it is generated: ``for chunk in stream(...)`` gives
    ``Chunk(stream, data)`` in order; ``.result`` holds the ``Result`` once the iteration ends. Compile and
    model errors are raised here, before any decoding; errors of the run itself when iterating."""
    prepared = prepare(source, input, args, model=model, max_new_tokens=max_new_tokens, invoke=invoke,
                       invoke_args=invoke_args, clang=clang)
    return Stream(prepared, engine, trace)


class Stream:
    """The output chunks of a run decoded on a worker thread (the decoding loops call back; this turns the
    callbacks into an iterator). Closing it early (``close()``, leaving a ``with`` block, or breaking out
    of the loop and dropping it) stops the decoding at its next batch of tokens."""

    _DONE = object()

    def __init__(self, prepared: PreparedRun, engine: str | None, trace: bool):
        self.result: Result | None = None
        self._chunks: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, args=(prepared, engine, trace), daemon=True,
                                        name="wasmformer-stream")
        self._started = False

    def _decode(self, prepared: PreparedRun, engine: str | None, trace: bool) -> None:
        def sink(name: StreamName) -> ByteSink:
            def put(data: bytes) -> None:
                self._check_stop()
                self._chunks.put(Chunk(name, data))
            return put

        try:
            result = execute(prepared, engine, trace=trace, on_stdout=sink("stdout"), on_stderr=sink("stderr"),
                             progress=lambda tokens, seconds: self._check_stop())
            self._chunks.put((self._DONE, result))
        except BaseException as error:  # noqa: BLE001 - handed to the iterating thread
            self._chunks.put((self._DONE, error))

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise InterruptedRun("the stream was closed before the program finished")

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("a Stream can be iterated once")
        self._started = True
        self._thread.start()
        try:
            while True:
                item = self._next_item()
                if isinstance(item, Chunk):
                    yield item
                    continue
                outcome = item[1]
                if isinstance(outcome, BaseException):
                    raise outcome
                self.result = outcome
                return
        finally:
            self.close()

    def _next_item(self):
        while True:  # a timeout, so Ctrl-C reaches the iterating thread
            try:
                return self._chunks.get(timeout=0.1)
            except queue.Empty:
                continue

    def close(self) -> None:
        """Stop the run (if it is still going) and wait for its thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def prepare(source: Source, input: bytes | str = b"", args: Sequence[str | bytes] = (), *,
            model: ModelLike = None, max_new_tokens: int | None = None, invoke: str | None = None,
            invoke_args: Sequence[int] = (), clang: str | None = None, model_name: str | None = None) -> PreparedRun:
    """Everything a run needs before decoding (``run`` = ``prepare`` + ``execute``): the program compiled, the
    model loaded, the prompt built and checked against the model (``model_name`` names it in messages)."""
    from wasmformer import runner

    if max_new_tokens is not None and max_new_tokens < 1:
        raise EngineError(f"max_new_tokens must be positive, not {max_new_tokens}")
    prompt_file = _prompt_file_path(source)
    if prompt_file is not None:
        if input or args or invoke or invoke_args or clang:
            raise ProgramError(f"{prompt_file} is a prompt file: it already holds the program and its input "
                               "(input, args, invoke and clang are only for a program's source)")
        loaded = _model(model)
        prompt, program = _prompt_file_tokens(prompt_file, loaded, model_name or _model_name(model)), None
    else:
        program = compile(source, args=args, invoke=invoke, invoke_args=invoke_args, clang=clang)
        loaded = _model(model)
        prompt = _program_prompt(program, _input_bytes(input), loaded, model_name or _model_name(model))
    prompt_ids = runner.prompt_ids_or_error(loaded, prompt, str(prompt_file or "the prompt"))
    horizon = runner.default_max_new_tokens(loaded, len(prompt_ids))
    chosen = horizon if max_new_tokens is None else min(max_new_tokens, horizon)
    return PreparedRun(loaded, program, prompt, prompt_ids, chosen, horizon)


def _prompt_file_path(source) -> Path | None:
    if isinstance(source, (Program, bytes, bytearray, memoryview)):
        return None
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _is_path_text(source)):
        path = Path(source)
        return path if path.suffix.lower() not in SOURCE_SUFFIXES and path.is_file() else None
    return None


def _prompt_file_tokens(path: Path, model: Model, model_name: str) -> list[str]:
    from wasmformer import runner
    from wasmformer.machine import purpose

    prompt_file = runner.read_prompt_file(path)
    purpose.check_prompt(purpose.built_for(model), prompt_file.tokens, prompt_file.made_for, str(path),
                         model_name)
    return prompt_file.tokens


def _program_prompt(program: Program, input_bytes: bytes, model: Model | None, model_name: str = "the model"):
    from wasmformer.machine import purpose
    from wasmformer.machine.prompt import encode_prompt

    made_for = purpose.built_for(model) if model is not None else None
    if made_for is not None and made_for.get("kind") == purpose.SPECIALISED:
        from wasmformer.machine.specialize import prompt_for_model

        return prompt_for_model(program.vm, input_bytes, model, model_name)
    return encode_prompt(program.vm, input_bytes)


def _model_name(model: ModelLike) -> str:
    """How messages name the model a prompt is checked against."""
    if model is None:
        return "the default model"
    return str(model) if not isinstance(model, Model) else "the given model"


def _input_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ProgramError(f"input is bytes or str, not {type(data).__name__}")


def execute(prepared: PreparedRun, engine=None, *, trace: bool = False, on_stdout: ByteSink | None = None,
            on_stderr: ByteSink | None = None, progress: ProgressCallback | None = None) -> Result:
    """Decode a prepared run. ``engine``: a name, an engine from ``runner.choose_engine`` (for a caller that
    reports the choice before the run), or None for the fastest."""
    from wasmformer import runner

    note = None
    if engine is None or isinstance(engine, str):
        engine, note = runner.choose_engine(prepared.model, engine)
    program = prepared.program
    result_size = _result_size(program)
    stdout_sink = _HeldBack(on_stdout, result_size) if on_stdout is not None and result_size else on_stdout
    run_result = runner.run_prompt(prepared.model, prepared.prompt_ids, engine=engine,
                                   max_new_tokens=prepared.max_new_tokens, on_output=stdout_sink,
                                   progress=progress, on_error=on_stderr)
    run_result.engine_note = note
    if isinstance(stdout_sink, _HeldBack) and not (run_result.halted and run_result.trap is None):
        stdout_sink.release()  # no results follow the output of a run that did not return: all of it is output
    return _result(prepared, run_result, trace, result_size)


def _result_size(program: Program | None) -> int:
    if program is None or not program.invoke:
        return 0
    from wasmformer.frontend import result_bytes

    return result_bytes(program.result_types)


class _HeldBack:
    """An output sink that keeps the last ``size`` bytes back: an invoked function's results follow its output
    and are returned as values, not streamed."""

    def __init__(self, sink: ByteSink, size: int):
        self.sink, self.size, self.held = sink, size, b""

    def __call__(self, chunk: bytes) -> None:
        self.held += chunk
        if len(self.held) > self.size:
            self.sink(self.held[:-self.size])
            self.held = self.held[-self.size:]

    def release(self) -> None:
        if self.held:
            self.sink(self.held)
            self.held = b""


def _result(prepared: PreparedRun, run_result, trace: bool, result_size: int) -> Result:
    output, values = run_result.output, None
    completed = run_result.halted and run_result.trap is None
    if completed and result_size and len(output) >= result_size:
        from wasmformer.frontend import invoke_results

        output, values = output[:-result_size], invoke_results(output[-result_size:],
                                                                      prepared.program.result_types)
    vocab = prepared.model.vocab
    exit_status, ending, message = _ending(prepared, run_result)
    return Result(stdout=output, stderr=run_result.errors, exit_status=exit_status, ending=ending,
                  halted=run_result.halted,
                  trap=run_result.trap.removeprefix("trap.") if run_result.trap else None, message=message,
                  tokens=run_result.generated_tokens, prompt_tokens=run_result.prompt_tokens,
                  seconds=run_result.seconds, tokens_per_second=run_result.tokens_per_second,
                  engine=run_result.engine, engine_note=run_result.engine_note, values=values,
                  trace=[vocab[token] for token in run_result.trace] if trace else None)


UNSUPPORTED_REMARK = "which the machine does not execute"


def _ending(prepared: PreparedRun, run_result) -> tuple[int, str, str | None]:
    """(exit status, how the run ended, what to tell the user when the program did not finish on its own)."""
    generated = run_result.generated_tokens
    if run_result.halted and run_result.trap:
        reached = _unsupported_reached(prepared, run_result)
        if reached is not None:
            return EXIT_TRAPPED, "unsupported", f"the program reached {reached}, {UNSUPPORTED_REMARK}"
        from wasmformer.vm.program import trap_message

        return EXIT_TRAPPED, "trap", f"the program trapped: {trap_message(run_result.trap)}"
    if run_result.halted:
        return run_result.exit_status or 0, "exit", None
    if prepared.max_new_tokens >= prepared.horizon_max_new_tokens:
        return EXIT_NOT_HALTED, "horizon", (
            f"stopped after {generated} tokens without halting: the model's precision horizon (max_exact_tokens = "
            f"{prepared.model.max_exact_tokens:,}) allows no more after the {len(prepared.prompt_ids):,}-token prompt")
    return EXIT_NOT_HALTED, "max_new_tokens", (f"stopped after {generated} tokens without halting "
                                               f"(max_new_tokens = {prepared.max_new_tokens:,})")


def _unsupported_reached(prepared: PreparedRun, run_result) -> str | None:
    if prepared.program is None:
        return None
    from wasmformer.machine.execute import unsupported_instruction

    vocab = prepared.model.vocab
    return unsupported_instruction(prepared.program.vm, prepared.prompt, [vocab[token] for token in run_result.trace])
