"""Batch runs on this machine's cores: one worker process per core, each loading the model once.

Each worker takes one entry at a time over a pipe, so a worker that dies (killed, out of memory, a crash
in native code) costs exactly its current entry: that entry is recorded as an error and a new worker
takes the dead one's place. Workers are started with ``spawn`` (no state inherited from the caller).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Iterable, Iterator

from wasmformer.batching.manifest import Entry, Outcome
from wasmformer.batching.work import Worker, failed

STOP = None  # sent to a worker: no more entries


def _worker_main(connection: Connection, model_dir: str | None, engine: str | None, trace_dir: str | None) -> None:
    worker = Worker(model_dir, engine, trace_dir)
    while True:
        entry = connection.recv()
        if entry is STOP:
            return
        connection.send(worker.run(entry))


@dataclass
class _Process:
    process: multiprocessing.Process
    connection: Connection
    entry: Entry | None = None


class LocalPool:
    """``workers`` processes running entries; ``run(entries)`` yields outcomes as they finish."""

    def __init__(self, workers: int, model_dir: str | None, engine: str | None, trace_dir: str | None):
        self.context = multiprocessing.get_context("spawn")
        self.settings = (model_dir, engine, trace_dir)
        self.workers = [self._start() for _ in range(workers)]

    def _start(self) -> _Process:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, *self.settings), daemon=True,
                                       name="wasmformer-batch-worker")
        process.start()
        child.close()
        return _Process(process, parent)

    def run(self, entries: Iterable[Entry]) -> Iterator[Outcome]:
        queue = deque(entries)
        for worker in self.workers:
            self._give(worker, queue)
        while any(worker.entry is not None for worker in self.workers):
            busy = {worker.connection: worker for worker in self.workers if worker.entry is not None}
            sentinels = {worker.process.sentinel: worker for worker in busy.values()}
            for ready in wait(list(busy) + list(sentinels)):
                worker = busy.get(ready) or sentinels.get(ready)
                if worker.entry is None:  # already handled through its other handle
                    continue
                outcome = self._receive(worker)
                yield outcome
                self._give(worker if worker.process.is_alive() else self._replace(worker), queue)

    def _receive(self, worker: _Process) -> Outcome:
        entry, worker.entry = worker.entry, None
        try:
            if worker.connection.poll():
                return worker.connection.recv()
        except (EOFError, OSError):
            pass
        worker.process.join(timeout=1)
        return failed(entry, f"the worker running it died (exit code {worker.process.exitcode}); "
                             "a new worker took its place")

    def _replace(self, dead: _Process) -> _Process:
        dead.connection.close()
        fresh = self._start()
        self.workers[self.workers.index(dead)] = fresh
        return fresh

    def _give(self, worker: _Process, queue: deque) -> None:
        if queue:
            worker.entry = queue.popleft()
            worker.connection.send(worker.entry)

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.connection.send(STOP)
            except (BrokenPipeError, OSError):
                pass
        for worker in self.workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
            worker.connection.close()

    def terminate(self) -> None:
        """Stop at once (Ctrl-C): the runs in progress are lost; finished ones are already recorded."""
        for worker in self.workers:
            worker.process.terminate()
        for worker in self.workers:
            worker.process.join()
            worker.connection.close()
