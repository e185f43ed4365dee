"""Case generators: malformed files, random valid programs, and the table that picks one per case.

Each generator is ``f(rng, corpus, index) -> Case`` and uses only ``rng`` for its
choices, so a (seed, index) pair always gives the same case. Hostile option
values live in fuzz/options.py.
"""

from __future__ import annotations

import random

from . import csmith, mutate, oracle
from .cases import Case, Expected
from .corpus import CACHE_VARIABLE, OK_OUTPUT, Corpus
from .options import hostile_option_case
from .random_wat import EDGE_VALUES, random_module

# A mutated program may loop forever, and a damaged model may never halt: bound them.
MUTATED_MAX_TOKENS = "100000"
MUTATED_MAX_STEPS = "100000"
MAX_RANDOM_INPUT = 8  # bytes of --input for a random program that reads input
PROMPT_TOKEN_EDITS = 3  # most token-level edits to one prompt
UNKNOWN_TOKEN = "not.a.token"
# Prints "x", then loops until the precision horizon: the target of an interrupt.
SPIN_PROGRAM = """(module
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (memory 1)
  (func (export "main") (call $putchar (i32.const 120)) (loop $forever (br $forever))))
"""


def _source_command(rng: random.Random, source: str) -> tuple[str, ...]:
    """A command that takes a (possibly malformed) source file."""
    return rng.choice([
        ("run", source, "--max-tokens", MUTATED_MAX_TOKENS),
        ("run", source, "--max-tokens", MUTATED_MAX_TOKENS, "--quiet"),
        ("compile", source, "-o", "out.prompt"),
        ("refvm", source, "--max-steps", MUTATED_MAX_STEPS),
    ])


def wasm_bytes_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    seed = rng.choice(corpus.wasm)
    data, what = mutate.mutate_bytes_repeatedly(rng, seed, donors=list(corpus.wasm))
    return Case(index, "wasm-bytes", what, _source_command(rng, "prog.wasm"), files={"prog.wasm": data})


def wat_text_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    seed = rng.choice(corpus.wat).encode()
    if rng.random() < 0.5:  # well-formed mutations get past the parser, into validation and lowering
        data, what = mutate.mutate_wat(rng, seed)
    else:
        data, what = mutate.mutate_bytes_repeatedly(rng, seed, donors=[text.encode() for text in corpus.wat])
    return Case(index, "wat-text", what, _source_command(rng, "prog.wat"), files={"prog.wat": data})


def c_source_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    seed = rng.choice(corpus.c_sources)
    data, what = mutate.mutate_bytes_repeatedly(rng, seed, donors=list(corpus.c_sources), most=2)
    return Case(index, "c-source", what, _source_command(rng, "prog.c"), files={"prog.c": data})


def prompt_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    seed = rng.choice(corpus.prompts)
    if rng.random() < 0.5:
        data, what = mutate.mutate_bytes_repeatedly(rng, seed)
    else:
        data, what = _edit_prompt_tokens(rng, seed, corpus.config.get("vocab", []))
    argv = ("run", "prog.prompt", "--max-tokens", MUTATED_MAX_TOKENS) + (("--quiet",) if rng.random() < 0.3 else ())
    return Case(index, "prompt", what, argv, files={"prog.prompt": data})


def _edit_prompt_tokens(rng: random.Random, prompt: bytes, vocab: list[str]) -> tuple[bytes, str]:
    """Token-level damage: delete, duplicate, swap or replace tokens (with known or unknown ones).

    The header lines (`# wasmformer-prompt KIND`) are kept, except for a "header" edit that drops them.
    """
    lines = prompt.decode().splitlines()
    header = [line for line in lines if line.startswith("#")]
    tokens = " ".join(line for line in lines if not line.startswith("#")).split()
    edits = []
    for _ in range(rng.randint(1, PROMPT_TOKEN_EDITS)):
        if not tokens:
            break
        at = rng.randrange(len(tokens))
        kind = rng.choice(["delete", "duplicate", "swap", "vocab", "unknown", "cut", "header"])
        if kind == "delete":
            del tokens[at:at + rng.randint(1, 8)]
        elif kind == "duplicate":
            tokens[at:at] = tokens[at:at + rng.randint(1, 8)]
        elif kind == "swap":
            other = rng.randrange(len(tokens))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        elif kind == "vocab" and vocab:
            tokens[at] = rng.choice(vocab)
        elif kind == "unknown":
            tokens[at] = UNKNOWN_TOKEN
        elif kind == "header":
            header = rng.choice([[], ["# wasmformer-prompt specialised"], ["# wasmformer-prompt"], header * 2])
        else:
            tokens = tokens[:at]
        edits.append(f"{kind} at {at}")
    return "\n".join(header + [" ".join(tokens)]).encode() + b"\n", "prompt tokens: " + ", ".join(edits)


def _model_command(rng: random.Random, model: str) -> tuple[str, ...]:
    """A command that loads the model directory ``model`` (the prompt is OK_PROGRAM's)."""
    return rng.choice([
        ("run", "ok.prompt", "--model", model, "--max-tokens", MUTATED_MAX_TOKENS),
        ("run", "ok.prompt", "--model", model, "--max-tokens", MUTATED_MAX_TOKENS, "--quiet"),
        ("run", "ok.prompt", "--model", model, "--engine", "hull", "--max-tokens", "2000"),
        ("inspect", model),
        ("compile", "ok.wat", "--for-model", model, "-o", "out.prompt"),
    ])


def config_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    focus = ("format", "d_model", "n_layers", "n_heads", "d_ffn", "d_head", "vocab", "halt_token", "positional",
             "output_bytes", "max_exact_tokens", "kind", "program", "sha256")
    data, what = mutate.mutate_json(rng, corpus.config, focus)
    return Case(index, "config", what, _model_command(rng, "m"),
                files={"m/config.json": data, "ok.prompt": corpus.prompts[0], "ok.wat": corpus.wat[0].encode()},
                copies={"m/model.safetensors": str(corpus.safetensors)})


def safetensors_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    data, what = mutate.mutate_safetensors(rng, corpus.safetensors.read_bytes())
    config = (corpus.model_dir / "config.json").read_bytes()
    return Case(index, "safetensors", what, _model_command(rng, "m"),
                files={"m/config.json": config, "m/model.safetensors": data, "ok.prompt": corpus.prompts[0],
                       "ok.wat": corpus.wat[0].encode()})


def options_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    return hostile_option_case(rng, corpus, index)


def cache_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    """A damaged model cache: a run must rebuild the model (or do without the cache) and still work."""
    files = {"ok.wat": corpus.wat[0].encode()}
    copies = {f"cache/{name}": str(corpus.cache_dir / name) for name in corpus.cache_files}
    damaged = rng.choice(corpus.cache_files)
    kind = rng.choice(["empty", "truncate", "mutate", "delete", "cache-is-a-file"])
    if kind == "cache-is-a-file":
        copies, files["cache"] = {}, b"not a directory\n"
    elif kind == "delete":
        del copies[f"cache/{damaged}"]
    elif kind == "empty":
        files[f"cache/{damaged}"] = b""
    else:
        data = (corpus.cache_dir / damaged).read_bytes()
        if damaged.endswith(".safetensors") and kind == "mutate":
            files[f"cache/{damaged}"], _ = mutate.mutate_safetensors(rng, data)
        else:
            files[f"cache/{damaged}"], _ = mutate.mutate_bytes(rng, data)
    expected = Expected(status=0, stdout=OK_OUTPUT, why="a damaged cache entry is rebuilt (compiler/cache.py)")
    return Case(index, "cache", f"cache: {kind} {damaged if kind != 'cache-is-a-file' else ''}".strip(),
                ("run", "ok.wat"), files=files, copies=copies, env={CACHE_VARIABLE: "cache"}, expected=expected)


def interrupt_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    """Ctrl-C during a run that would go on for a long time: exit 130, no traceback."""
    engine = rng.choice([(), ("--engine", "hull"), ("--quiet",)])
    return Case(index, "interrupt", f"SIGINT after the first output byte {' '.join(engine)}".strip(),
                ("run", "spin.wat", *engine), files={"spin.wat": SPIN_PROGRAM.encode()}, interrupt=True,
                expected=Expected(status=130, why="docs/cli.md: interrupted is exit 130"))


# -- random valid programs -----------------------------------------------------------------------------


def _program_files(rng: random.Random, text: str) -> tuple[str, dict[str, bytes]]:
    """The program as .wat or (a quarter of the time) as .wasm, with its text beside it for a reader."""
    if rng.random() < 0.25:
        import wasmtime

        return "prog.wasm", {"prog.wasm": bytes(wasmtime.wat2wasm(text)), "prog.wasm.wat": text.encode()}
    return "prog.wat", {"prog.wat": text.encode()}


def _input_arguments(rng: random.Random, uses_getchar: bool) -> tuple[bytes, tuple[str, ...], dict[str, bytes]]:
    """(input bytes, options giving them, files they need): --input, --input-file or nothing."""
    if not uses_getchar:
        return b"", (), {}
    text = "".join(rng.choice("abcXYZ019 -!") for _ in range(rng.randint(0, MAX_RANDOM_INPUT)))
    if rng.random() < 0.5:  # (--input=TEXT: a TEXT starting with '-' would read as an option)
        return text.encode(), (f"--input={text}",) if text.startswith("-") else ("--input", text), {}
    return text.encode(), ("--input-file", "input.txt"), {"input.txt": text.encode()}


def valid_main_case(rng: random.Random, corpus: Corpus, index: int, command: str = "run") -> Case:
    module = random_module(rng, uses_getchar=rng.random() < 0.3)
    text = module.text({"main": "main"})
    input_bytes, input_args, files = _input_arguments(rng, module.uses_getchar)
    expected = oracle.expected_main(text, input_bytes)
    source, program_files = _program_files(rng, text)
    quiet = ("--quiet",) if command == "run" and rng.random() < 0.3 else ()
    if command == "refvm":  # refvm reports a trap on its summary line, not as a trap token
        expected = Expected(status=expected.status, stdout=expected.stdout, why=expected.why)
    return Case(index, f"valid-{command}", f"random module, {len(module.functions)} functions",
                (command, source, *input_args, *quiet), files={**files, **program_files}, expected=expected)


def valid_refvm_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    return valid_main_case(rng, corpus, index, command="refvm")


def valid_invoke_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    module = random_module(rng, uses_getchar=rng.random() < 0.2)
    function_index = rng.randrange(len(module.functions))
    function = module.functions[function_index]
    args = tuple(rng.choice([rng.choice(EDGE_VALUES), rng.randint(-(2**31), 2**32 - 1)])
                 for _ in range(function.params))
    text = module.text({f.name: f.name for f in module.functions})
    input_bytes, input_args, files = _input_arguments(rng, module.uses_getchar)
    expected, printed = oracle.expected_invoke(module, function_index, args, input_bytes)
    source, program_files = _program_files(rng, text)
    shown = [hex(value) if rng.random() < 0.2 and value >= 0 else str(value) for value in args]
    return Case(index, "valid-invoke", f"--invoke {function.name} ({function.params} params, "
                f"{'i32' if function.has_result else 'no'} result, prints {printed} bytes)",
                ("run", source, *input_args, "--invoke", function.name, *shown),
                files={**files, **program_files}, expected=expected)


def csmith_case(rng: random.Random, corpus: Corpus, index: int) -> Case:
    """A random C program from Csmith (floats on; fuzz/csmith.py), compiled and run by `wasmformer run prog.c`."""
    program = csmith.random_program(rng)
    quiet = ("--quiet",) if rng.random() < 0.3 else ()
    return Case(index, "csmith", f"csmith --float --seed {program.seed} {' '.join(program.options)} "
                f"({program.steps} steps)", ("run", "prog.c", *quiet), files={"prog.c": program.source},
                copies=csmith.header_copies(), expected=program.expected)


# The mix of a default run: (category, generator, weight).
GENERATORS = (
    ("wasm-bytes", wasm_bytes_case, 3),
    ("wat-text", wat_text_case, 2),
    ("c-source", c_source_case, 1),
    ("prompt", prompt_case, 2),
    ("config", config_case, 2),
    ("safetensors", safetensors_case, 2),
    ("options", options_case, 4),
    ("cache", cache_case, 1),
    ("interrupt", interrupt_case, 1),
    ("valid-run", valid_main_case, 4),
    ("valid-invoke", valid_invoke_case, 3),
    ("valid-refvm", valid_refvm_case, 1),
    ("csmith", csmith_case, 2),
)
# Categories that need a tool outside the Python environment: category -> a function giving why it is missing.
NEEDS_TOOL = {"csmith": csmith.missing}
CATEGORIES = tuple(category for category, _, _ in GENERATORS)


def make_case(seed: int, index: int, corpus: Corpus, only: tuple[str, ...] = ()) -> Case:
    """Case number ``index`` of the session with this seed (and category filter): the same every time."""
    rng = random.Random(f"{seed}-{index}")
    chosen = [(generator, weight) for category, generator, weight in GENERATORS if not only or category in only]
    generators, weights = zip(*chosen)
    return rng.choices(generators, weights)[0](rng, corpus, index)
