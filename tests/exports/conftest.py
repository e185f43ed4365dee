"""Fixtures of the export tests: a small model (the counter machine) and the universal model, on disk, with
prompts and the reference traces of the fastest engine (native when built, else hull), which the engines'
own tests hold equal to the dense definition."""

from __future__ import annotations

import dataclasses

import pytest

from wasmformer import runner
from wasmformer.engines.base import encode
from wasmformer.graph import examples
from wasmformer.model import save_model

COUNTER_START = 950  # the counter machine counts 951..999 then halts: 197 generated tokens


@dataclasses.dataclass
class ModelCase:
    model: object
    directory: object
    prompt: list[int]

    def reference(self, max_new_tokens: int | None = None) -> list[int]:
        """The whole trace (to the halt token) or its first ``max_new_tokens`` tokens, from the fastest engine."""
        return runner.run_prompt(self.model, self.prompt, max_new_tokens=max_new_tokens).trace


@pytest.fixture(scope="session")
def counter_case(tmp_path_factory) -> ModelCase:
    root = tmp_path_factory.mktemp("counter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WASMFORMER_CACHE", str(root / "cache"))
        from wasmformer.compiler import build_model

        graph, make_prompt = examples.counter_machine()
        model = build_model(graph, log=lambda message: None)
    return ModelCase(model, save_model(model, root / "model"), encode(model, make_prompt(COUNTER_START)))


@pytest.fixture(scope="session")
def universal_dir(tmp_path_factory):
    """(the universal model, its directory)."""
    model = runner.load_universal_model()
    return model, save_model(model, tmp_path_factory.mktemp("universal") / "model")


def example_case(universal_dir, name: str) -> ModelCase:
    model, directory = universal_dir
    return ModelCase(model, directory, encode(model, runner.bundled_examples([name])[0].workload().prompt))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: the tests share two cores with other workers, and spinning threads would crawl."""
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'wasmformer[torch]')")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
