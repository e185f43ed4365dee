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
from wasmformer.machine import purpose
from wasmformer.machine.baked import BakedProgram, specialised_prompt
from wasmformer.machine.interpreter import build_interpreter
from wasmformer.model import BUILT_FOR_KEY, Model, save_model
from wasmformer.runner import write_prompt_file
from wasmformer.vm.errors import ProgramError
from wasmformer.vm.program import VMProgram


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
    model.extra[BUILT_FOR_KEY] = purpose.specialised(program.name, program_digest(program))
    return Specialised(model, time.perf_counter() - start, units)


def write_specialised(program: VMProgram, input_bytes: bytes, directory: Path,
                      log: Callable[[str], None] | None = None) -> tuple[Specialised, Path]:
    """DIR in the model format plus DIR/<name>.prompt for ``input_bytes``."""
    result = specialise(program, log)
    save_model(result.model, directory)
    prompt_path = Path(directory) / f"{program.name}.prompt"
    write_prompt_file(prompt_path, specialised_prompt(program, input_bytes), purpose.built_for(result.model))
    return result, prompt_path


def prompt_for_model(program: VMProgram, input_bytes: bytes, model: Model, model_name: str) -> list[str]:
    """The prompt of a specialised model for another input; refuses a model baked from another program.

    ``model_name`` (its directory) names the model in messages.
    """
    made_for = purpose.built_for(model)
    if made_for is None or made_for.get("kind") != purpose.SPECIALISED:
        raise ProgramError(f"{model_name} is not a specialised model (its config.json has no "
                           f"{BUILT_FOR_KEY} of kind '{purpose.SPECIALISED}')")
    if made_for.get("sha256") != program_digest(program):
        raise ProgramError(f"{model_name} was specialised for program '{made_for.get('program')}', "
                           f"not for this build of '{program.name}'")
    return specialised_prompt(program, input_bytes)
