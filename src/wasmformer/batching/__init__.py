"""Many programs at once: ``batch`` runs manifest entries on every core (or a Ray cluster), resumably.

    for outcome in wasmformer.batch("runs.jsonl", results="results.jsonl"):
        print(outcome.id, outcome.exit_status)

``manifest.py`` reads the entries and keeps the results file, ``work.py`` runs one entry (``api.run``),
``local.py`` and ``ray_pool.py`` spread the entries over worker processes or Ray actors. docs/batch.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from wasmformer.batching.manifest import Entry, ManifestError, Outcome, ResultsFile, finished_ids, read_manifest

__all__ = ["Entry", "ManifestError", "Outcome", "batch", "default_workers"]

# (runs finished, runs in this batch, tokens generated so far, seconds since the start)
BatchProgress = Callable[[int, int, int, float], None]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def batch(manifest: str | os.PathLike | Iterable[Entry], *, results: str | os.PathLike | None = None,
          workers: int | None = None, model: str | os.PathLike | None = None, engine: str | None = None,
          ray: str | None = None, trace_dir: str | os.PathLike | None = None,
          progress: BatchProgress | None = None) -> Iterator[Outcome]:
    """Run every entry and yield its ``Outcome`` as it finishes (in finishing order).

    ``manifest``: a JSONL file, a directory of programs, or ``Entry`` objects. With ``results`` each outcome
    is appended to that JSONL file as it arrives, and entries whose id it already holds are skipped (a rerun
    resumes). ``workers``: processes (default: one per core); ``model``: a model directory (default: the
    universal model); ``ray``: a Ray address, or "local", to run on Ray actors instead of local processes;
    ``trace_dir``: write each run's generated tokens to ``ID.trace`` there.
    """
    entries = read_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else list(manifest)
    done = finished_ids(results) if results is not None else set()
    todo = [entry for entry in entries if entry.id not in done]
    if workers is not None and workers < 1:
        raise ManifestError(f"workers must be positive, not {workers}")
    model_dir = _checked_model_dir(model)
    return _outcomes(todo, results, workers, model_dir, engine, ray, trace_dir, progress)


def _checked_model_dir(model) -> str | None:
    """The model is loaded here once before any worker starts: a bad directory fails at once, and the
    universal model is built (and cached) once rather than by every worker."""
    from wasmformer import api

    api.load_model(model)
    return str(Path(model)) if model is not None else None


def _outcomes(todo, results, workers, model_dir, engine, ray, trace_dir, progress) -> Iterator[Outcome]:
    if not todo:
        return
    trace_dir = str(trace_dir) if trace_dir is not None else None
    count = min(workers or default_workers(), len(todo)) if ray is None else workers
    pool = _pool(ray, count, model_dir, engine, trace_dir)
    started, finished, tokens = time.perf_counter(), 0, 0
    sink = ResultsFile(results) if results is not None else None
    try:
        for outcome in pool.run(todo):
            if sink is not None:
                sink.write(outcome)
            finished, tokens = finished + 1, tokens + outcome.tokens
            if progress is not None:
                progress(finished, len(todo), tokens, time.perf_counter() - started)
            yield outcome
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        if sink is not None:
            sink.close()


def _pool(ray, workers, model_dir, engine, trace_dir):
    if ray is not None:
        from wasmformer.batching.ray_pool import RayPool

        return RayPool(ray, workers, model_dir, engine, trace_dir)
    from wasmformer.batching.local import LocalPool

    return LocalPool(workers, model_dir, engine, trace_dir)
