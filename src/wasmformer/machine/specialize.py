"""Specialised models: one program baked into the weights (the first Futamura projection).

The interpreter graph is built with the program's tables in place of the
prompt's code, globals and data (``BakedProgram``); the compiled model then
runs only that program and its prompt holds only the input. Its trace is the
universal model's trace, token for token.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from wasmformer.compiler import compile_graph
from wasmformer.frontend.errors import FrontendError
from wasmformer.frontend.program import VMProgram
from wasmformer.machine.baked import BakedProgram, specialised_prompt
from wasmformer.machine.interpreter import build_interpreter
from wasmformer.model import Model, load_model, save_model

PROGRAM_KEY = "specialised_program"  # config.json: {"name": ..., "sha256": ...} of the baked program


@dataclass
class Specialised:
    model: Model
    seconds: float
    table_units: int


def program_digest(program: VMProgram) -> str:
    """A hash of everything the specialised weights depend on."""
    content = {
        "instrs": [[instr.op.value, instr.arg] for instr in program.instrs],
        "entry": program.entry, "entry_locals": program.entry_locals, "globals": program.globals,
        "memory": program.memory[:program.memory_limit].hex(), "memory_limit": program.memory_limit,
        "max_frame_locals": program.stats.get("max_frame_locals", 0),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def specialise(program: VMProgram, log: Callable[[str], None] | None = None) -> Specialised:
    """Compile the machine with ``program`` baked in."""
    start = time.perf_counter()
    units = BakedProgram(program).table_units()  # refuses a program too large, with the limit
    model, _ = compile_graph(build_interpreter(program=program), log=log or (lambda message: None))
    model.extra[PROGRAM_KEY] = {"name": program.name, "sha256": program_digest(program)}
    return Specialised(model, time.perf_counter() - start, units)


def write_specialised(program: VMProgram, input_bytes: bytes, directory: Path,
                      log: Callable[[str], None] | None = None) -> tuple[Specialised, Path]:
    """DIR in the model format plus DIR/<name>.prompt for ``input_bytes``."""
    result = specialise(program, log)
    save_model(result.model, directory)
    prompt_path = Path(directory) / f"{program.name}.prompt"
    prompt_path.write_text(" ".join(specialised_prompt(program, input_bytes)) + "\n")
    return result, prompt_path


def prompt_for_model(program: VMProgram, input_bytes: bytes, model_dir: Path) -> list[str]:
    """The prompt of a specialised model for another input; refuses a model baked from another program."""
    baked = load_model(model_dir).extra.get(PROGRAM_KEY)
    if baked is None:
        raise FrontendError(f"{model_dir} is not a specialised model (no {PROGRAM_KEY!r} in its config.json)")
    if baked.get("sha256") != program_digest(program):
        raise FrontendError(f"{model_dir} was specialised for program '{baked.get('name')}', "
                            f"not for this build of '{program.name}'")
    return specialised_prompt(program, input_bytes)
