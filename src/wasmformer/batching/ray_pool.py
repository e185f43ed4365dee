"""Batch runs on a Ray cluster (optional extra ``ray``): one actor per CPU, each loading the model once.

``address`` is a cluster's address, or ``"local"`` to start a Ray instance on this machine (what the tests
use). Actors restart when they die; the entry a dead actor was running is recorded as an error, as the
local pool does. Program paths must be readable on every node (a shared filesystem); this module adds no
distribution layer of its own: scheduling, restarts and transport are Ray's.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from wasmformer.batching.manifest import Entry, Outcome
from wasmformer.batching.work import Worker, failed
from wasmformer.export.common import require_module

LOCAL = "local"


class RayPool:
    def __init__(self, address: str, workers: int | None, model_dir: str | None, engine: str | None,
                 trace_dir: str | None):
        self.ray = require_module("ray", "ray")
        started_here = not self.ray.is_initialized()
        if started_here:
            options = {"num_cpus": workers} if address == LOCAL and workers else {}
            self.ray.init(address=None if address == LOCAL else address, include_dashboard=False,
                          log_to_driver=False, configure_logging=False, **options)
        self.started_here = started_here
        count = workers or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        actor = self.ray.remote(num_cpus=1, max_restarts=-1)(Worker)
        self.actors = [actor.remote(model_dir, engine, trace_dir) for _ in range(count)]

    def run(self, entries: Iterable[Entry]) -> Iterator[Outcome]:
        pending = list(entries)
        pending.reverse()
        running = {}  # object ref -> (actor, entry)
        idle = list(self.actors)
        while pending or running:
            while idle and pending:
                actor, entry = idle.pop(), pending.pop()
                running[actor.run.remote(entry)] = (actor, entry)
            [done], _ = self.ray.wait(list(running), num_returns=1)
            actor, entry = running.pop(done)
            idle.append(actor)
            try:
                yield self.ray.get(done)
            except self.ray.exceptions.RayError as error:
                yield failed(entry, f"the Ray worker running it failed: {' '.join(str(error).split())[:500]}")

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started_here:
            self.ray.shutdown()

    terminate = close
