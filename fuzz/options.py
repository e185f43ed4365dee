"""Hostile option values: bad numbers, bytes that are not UTF-8, directories and missing files, bad names.

Each family below picks one variant with the case's rng and says what
docs/cli.md promises for it: a user mistake is exit status 1 with one error
line; a value that is merely unusual (a huge --max-tokens, a hex --invoke
argument) must still work. The target program is corpus.OK_PROGRAM (prints
"ok\\n", exports add) unless a family says otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .cases import Case, Expected
from .corpus import ECHO_PROGRAM, EXAMPLES, OK_OUTPUT, Corpus

NO_EXPECTATION = Expected()  # only the general checks
MISTAKE = Expected(status=125, why="docs/cli.md: a user mistake is exit 125")
WORKS = Expected(status=0, stdout=OK_OUTPUT, why="a valid command")
NOT_NUMBERS = ("0", "-5", "-1", "abc", "", "1e9", "nan", "1.5", "0x10", "--")
HUGE_NUMBERS = (str(2**63), str(2**64), "9" * 30, "1_000_000_000_000")
SMALL_LIMITS = ("3", "5", "10")  # --max-tokens that stop OK_PROGRAM before it halts
BAD_I32_ARGUMENTS = ("x", "", "1.5", str(2**40), str(-(2**31) - 1), str(2**32), "0x1_0000_0000")
FULL_DEVICE = "/dev/full"  # every write fails with ENOSPC
MISSING_PARENT = "no/such/dir/file"
LONG_INPUT_BYTES = 20_000


@dataclass(frozen=True)
class OptionSpec:
    description: str
    argv: tuple[str | bytes, ...]
    expected: Expected = NO_EXPECTATION
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()


def _max_tokens(rng: random.Random, corpus: Corpus) -> OptionSpec:
    value = rng.choice(NOT_NUMBERS + HUGE_NUMBERS + SMALL_LIMITS)
    if value in NOT_NUMBERS:
        expected = MISTAKE
    elif value in HUGE_NUMBERS:
        expected = Expected(status=0, stdout=OK_OUTPUT, why="the program halts long before a huge limit")
    else:
        expected = Expected(status=124, why="docs/cli.md: stopped at --max-tokens is exit 124")
    return OptionSpec(f"--max-tokens {value!r}", ("run", "ok.wat", "--max-tokens", value), expected)


def _count_options(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """The other whole-number options: refvm --max-steps, demo --budget, bench --hull-tokens."""
    value = rng.choice(NOT_NUMBERS + HUGE_NUMBERS)
    bad = value in NOT_NUMBERS  # (refvm --max-steps 0 would stop at once: exit 1 too)
    command = rng.choice([("refvm", "ok.wat", "--max-steps"), ("demo", "--examples", "nosuch", "--budget"),
                          ("bench", "--prompt", "ok.prompt", "--engines", "native", "--hull-tokens")])
    if command[0] == "refvm":
        expected = MISTAKE if bad else WORKS
    elif command[0] == "bench":
        expected = MISTAKE if bad else Expected(status=0, why="a valid bench of one prompt")
    else:
        expected = MISTAKE  # a bad value, or an unknown example
    return OptionSpec(f"{command[0]} {command[-1]} {value!r}", (*command, value), expected)


def _input_bytes(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """--input that is not UTF-8 (passed as raw bytes), or very long: the echo program gives it back."""
    if rng.random() < 0.2:
        text = "y" * LONG_INPUT_BYTES
        return OptionSpec("a 20,000-byte --input", ("run", "ok.wat", "--input", text, "--quiet"))
    data = bytes(rng.randint(1, 255) for _ in range(rng.randint(1, 6)))  # no NUL: argv cannot hold it
    if rng.random() < 0.5:
        argv = ("run", "echo.wat", "--input", data)
        return OptionSpec(f"--input {data!r}", argv, Expected(status=0, stdout=data, why="the echo program"),
                          files={"echo.wat": ECHO_PROGRAM.encode()})
    argv = ("run", "echo.wat", "--input-file", "input.bin")
    return OptionSpec(f"--input-file holding {data!r}", argv, Expected(status=0, stdout=data, why="the echo program"),
                      files={"echo.wat": ECHO_PROGRAM.encode(), "input.bin": data})


def _source_paths(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """Sources that are directories, missing, empty or of the wrong kind."""
    command = rng.choice(["run", "compile", "refvm", "specialize"])
    outputs = {"compile": ("-o", "out.prompt"), "specialize": ("-o", "spec")}.get(command, ())
    variant = rng.choice(["directory", "missing", "empty-wasm", "empty-wat", "wasm-in-wat", "text-in-wasm",
                          "binary-c"])
    if variant == "directory":
        return OptionSpec(f"{command}: a directory as source", (command, "src.wat", *outputs),
                          Expected(status=125, stderr_lacks=("no such file",), why="a directory is not a missing file"),
                          dirs=("src.wat",))
    names = {"missing": "nosuch.wat", "empty-wasm": "e.wasm", "empty-wat": "e.wat", "wasm-in-wat": "w.wat",
             "text-in-wasm": "t.wasm", "binary-c": "b.c"}
    contents = {"empty-wasm": b"", "empty-wat": b"", "wasm-in-wat": corpus.wasm[0], "text-in-wasm": b"hello\n",
                "binary-c": corpus.wasm[0]}
    files = {names[variant]: contents[variant]} if variant in contents else {}
    return OptionSpec(f"{command}: {variant} source", (command, names[variant], *outputs), MISTAKE, files=files)


def _prompt_sources(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """A prompt file given source options, or text that is not a prompt."""
    variant = rng.choice([("--input", "x"), ("--invoke", "add", "1", "2"), ("--cc", "clang"), ("1", "2"),
                          "not-a-prompt"])
    if variant == "not-a-prompt":
        return OptionSpec("run a text file of unknown tokens", ("run", "notes.txt"), MISTAKE,
                          files={"notes.txt": b"hello world\n"})
    return OptionSpec(f"run a prompt file with {' '.join(variant)}", ("run", "ok.prompt", *variant), MISTAKE)


def _models(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """--model that is missing, a file, empty, half a model, or the specialised model with a foreign prompt."""
    variant = rng.choice(["missing", "file", "empty", "config-only", "specialised-foreign", "specialised-own",
                          "for-model-foreign"])
    spec = str(corpus.specialised_dir)
    argv = {
        "missing": ("run", "ok.prompt", "--model", "nosuch"),
        "file": ("run", "ok.prompt", "--model", "ok.wat"),
        "empty": ("run", "ok.prompt", "--model", "emptydir"),
        "config-only": ("run", "ok.prompt", "--model", "half"),
        "specialised-foreign": ("run", "hello.prompt", "--model", spec),
        "specialised-own": ("run", f"{spec}/ok.prompt", "--model", spec),
        "for-model-foreign": ("compile", str(EXAMPLES / "hello.c"), "--for-model", spec, "-o", "out.prompt"),
    }[variant]
    expected = WORKS if variant == "specialised-own" else MISTAKE
    return OptionSpec(f"--model: {variant}", argv, expected, dirs=("emptydir",),
                      files={"half/config.json": (corpus.model_dir / "config.json").read_bytes(),
                             "hello.prompt": corpus.prompts[1]})


def _engines(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """Engine names: unknown, empty, wrong case; and the Python engines on a short run.

    (demo only gets bad names: its examples' prompts take minutes on the dense engine.)
    """
    name = rng.choice(["bogus", "", "NATIVE", "hull", "dense"])
    command = rng.choice([("run", "ok.wat", "--engine"), ("bench", "--prompt", "ok.prompt", "--engines")])
    if name in ("hull", "dense"):
        expected = WORKS if command[0] == "run" else Expected(status=0, why="a valid bench of one prompt")
    else:
        expected = MISTAKE
        command = rng.choice([command, ("demo", "--examples", "hello", "--budget", "10", "--engine")])
    return OptionSpec(f"{command[0]} engine {name!r}", (*command, name), expected)


def _output_paths(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """-o, --trace-out and --out pointing at a directory, a missing parent, /dev/full or an existing file."""
    target = rng.choice(["adir", MISSING_PARENT, FULL_DEVICE, "afile"])
    command = rng.choice([("compile", "ok.wat", "-o"), ("run", "ok.wat", "--trace-out"), ("build", "-o"),
                          ("specialize", "ok.wat", "-o"), ("bench", "--prompt", "ok.prompt", "--engines",
                                                           "native", "--out")])
    writes_a_file = command[0] in ("compile", "run")
    if target == "afile" and writes_a_file:
        expected = Expected(status=0, why="overwriting a file is allowed")
    elif target == "adir" and command[0] == "bench":
        expected = Expected(status=0, why="bench --out writes into an existing directory")
    elif target == MISSING_PARENT and not writes_a_file:
        expected = NO_EXPECTATION  # a directory may be created with its parents
    elif target == "adir" and command[0] == "specialize":
        expected = NO_EXPECTATION  # docs/cli.md does not say whether specialize writes into a non-empty DIR
    else:
        expected = MISTAKE
    return OptionSpec(f"{command[0]} {command[-1]} {target}", (*command, target), expected, dirs=("adir/sub",),
                      files={"afile": b"not a directory\n"})


def _invoke(rng: random.Random, corpus: Corpus) -> OptionSpec:
    variant = rng.choice(["missing", "empty-name", "too-few", "too-many", "bad-arg", "args-without-invoke",
                          "main-with-arg", "hex", "wrap"])
    command = rng.choice(["run", "refvm", "compile"])
    output = ("-o", "out.prompt") if command == "compile" else ()
    argv = {
        "missing": ("--invoke", "nosuch"), "empty-name": ("--invoke", ""), "too-few": ("--invoke", "add", "1"),
        "too-many": ("--invoke", "add", "1", "2", "3"),
        "bad-arg": ("--invoke", "add", "1", rng.choice(BAD_I32_ARGUMENTS)),
        "args-without-invoke": ("1", "2"), "main-with-arg": ("--invoke", "main", "7"),
        "hex": ("--invoke", "add", "0x10", "-1"), "wrap": ("--invoke", "add", str(2**32 - 1), "1"),
    }[variant]
    results = {"hex": b"15\n", "wrap": b"0\n"}
    if variant in results:
        expected = Expected(status=0, stdout=b"" if command == "compile" else results[variant], why="add(a, b)")
    else:
        expected = MISTAKE
    return OptionSpec(f"{command} --invoke: {variant}", (command, "ok.wat", *argv, *output), expected)


def _compiler_and_inputs(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """--cc that is missing or fails, --input-file that is missing or a directory, both input options."""
    variant = rng.choice([("--cc", "/nonexistent/clang"), ("--cc", "/bin/false"), ("--input-file", "nosuch"),
                          ("--input-file", "adir"), ("--input", "x", "--input-file", "in.txt")])
    source = "p.c" if variant[0] == "--cc" else "ok.wat"
    return OptionSpec(f"run {' '.join(variant)}", ("run", source, *variant), MISTAKE, dirs=("adir",),
                      files={"p.c": (EXAMPLES / "hello.c").read_bytes(), "in.txt": b"x"})


def _command_lines(rng: random.Random, corpus: Corpus) -> OptionSpec:
    """Malformed command lines: no command, unknown ones, unknown options, a missing source; and --help."""
    argv = rng.choice([(), ("frobnicate",), ("run",), ("run", "ok.wat", "--frobnicate"), ("inspect",),
                       ("build",), ("run", "ok.wat", "--max-tokens"), ("--help",), ("run", "--help"),
                       ("inspect", "ok.wat"), ("inspect", "nosuch"), ("inspect", "emptydir"),
                       ("batch",), ("batch", "nosuch.jsonl", "-o", "r.jsonl"), ("batch", "ok.wat", "-o", "r.jsonl"),
                       ("batch", "emptydir", "-o", "r.jsonl"), ("batch", "emptydir", "-o", "emptydir"),
                       ("batch", "emptydir", "-o", "r.jsonl", "--workers", "0")])
    expected = Expected(status=0, why="--help") if "--help" in argv else MISTAKE
    return OptionSpec(f"command line {' '.join(argv) or '(empty)'}", argv, expected, dirs=("emptydir",))


FAMILIES = (_max_tokens, _count_options, _input_bytes, _source_paths, _prompt_sources, _models, _engines,
            _output_paths, _invoke, _compiler_and_inputs, _command_lines)


def hostile_option_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    spec = rng.choice(FAMILIES)(rng, corpus)
    files = {"ok.wat": corpus.wat[0].encode(), "ok.prompt": corpus.prompts[0], **spec.files}
    return Case(index, "options", spec.description, spec.argv, files=files, dirs=spec.dirs, expected=spec.expected)
