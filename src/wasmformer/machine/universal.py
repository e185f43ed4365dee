"""The universal model: the interpreter graph compiled once and cached on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from wasmformer.compiler import build_model
from wasmformer.machine.interpreter import build_interpreter
from wasmformer.model import Model


def universal_model(cache_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Model:
    """The model that runs any VM program in its prompt (built on first use, then loaded from the cache)."""
    return build_model(build_interpreter, cache_dir, log=log)
