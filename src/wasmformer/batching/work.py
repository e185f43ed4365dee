"""One batch entry through the transformer, as every kind of worker (local process, Ray actor) runs it.

A failing program never stops a batch: wasmformer's refusals (and any other exception) become the
outcome's ``error``; the run itself is ``api.run``, so the answer comes from the model's tokens.
"""

from __future__ import annotations

import re
from pathlib import Path

from wasmformer import api
from wasmformer.batching.manifest import Entry, Outcome
from wasmformer.errors import WasmformerError
from wasmformer.model import Model

UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class Worker:
    """A model loaded once and the settings every run of one worker shares."""

    def __init__(self, model_dir: str | None, engine: str | None, trace_dir: str | None):
        self.model: Model = api.load_model(model_dir)
        self.engine = engine
        self.trace_dir = Path(trace_dir) if trace_dir is not None else None

    def run(self, entry: Entry) -> Outcome:
        try:
            result = api.run(entry.program, entry.input, entry.args, model=self.model, engine=self.engine,
                             max_new_tokens=entry.max_new_tokens, trace=self.trace_dir is not None)
        except (WasmformerError, OSError) as error:
            return failed(entry, " ".join(str(error).split()))
        except Exception as error:  # noqa: BLE001 - a bug must not stop the batch; the record names it
            return failed(entry, f"internal error ({type(error).__name__}): {' '.join(str(error).split())}")
        return Outcome(entry.id, entry.program, result.exit_status, result.ending, result.stdout, result.stderr,
                       result.tokens, result.prompt_tokens, result.seconds, result.engine,
                       trace_file=self._write_trace(entry, result.trace))

    def _write_trace(self, entry: Entry, trace: list[str] | None) -> str | None:
        if self.trace_dir is None or trace is None:
            return None
        from wasmformer.runner import write_trace_file

        self.trace_dir.mkdir(parents=True, exist_ok=True)
        path = self.trace_dir / f"{UNSAFE_FILE_CHARACTERS.sub('_', entry.id)}.trace"
        write_trace_file(path, trace)
        return str(path)


def failed(entry: Entry, error: str) -> Outcome:
    return Outcome(entry.id, entry.program, None, None, error=error)
