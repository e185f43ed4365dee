"""The four example machines compile, and the dense engine's trace equals the evaluator's."""

from __future__ import annotations

import random

import pytest

from wasmformer.compiler import compile_graph
from wasmformer.engines.base import generate
from wasmformer.engines.dense import DenseEngine
from wasmformer.graph import examples
from wasmformer.graph.evaluate import run

LONG_TRACE = 2000  # generated tokens compared in the long test (issue 2 asks for >= 2,000)
SHORT_TRACE = 250  # ... and in the quick one


def memory_operations(count: int, seed: int) -> list[tuple]:
    """Mostly loads (three answer tokens each), over few addresses so most loads hit a store."""
    rng = random.Random(seed)
    return [("store", rng.randrange(16), rng.randrange(256)) if rng.random() < 0.3 else ("load", rng.randrange(20))
            for _ in range(count)]


def prompts(length: int):
    """(builder, prompt inputs) giving at least ``length`` generated tokens per machine."""
    rng = random.Random(7)
    return {
        "counter": (examples.counter_machine, 0),  # 3,996 tokens from 0
        "running_sum": (examples.running_sum_machine, [rng.randrange(10) for _ in range(length // 3)]),
        "memory": (examples.memory_machine, memory_operations(length // 2, seed=length)),
        "stack": (examples.stack_machine, examples.random_stack_program(length, seed=3)),
    }


@pytest.fixture(scope="module")
def compiled():
    """Each machine compiled once: name -> (graph, make_prompt, model)."""
    machines = {}
    for name, (build, _) in prompts(0).items():
        graph, make_prompt = build()
        model, report = compile_graph(graph, log=lambda _: None)
        assert report.schedule.final.key() <= report.schedule.greedy.key()
        machines[name] = (graph, make_prompt, model)
    return machines


def assert_same_trace(compiled, name: str, length: int) -> None:
    graph, make_prompt, model = compiled[name]
    prompt = make_prompt(prompts(length)[name][1])
    expected = run(graph, prompt, length).trace
    result = generate(DenseEngine(model), [model.vocab.index(token) for token in prompt], max_new_tokens=length)
    assert [model.vocab[i] for i in result.trace] == expected
    assert len(expected) == length or expected[-1] == graph.halt_token


@pytest.mark.parametrize("name", ["counter", "running_sum", "memory", "stack"])
def test_example_machine_short_trace(compiled, name):
    assert_same_trace(compiled, name, SHORT_TRACE)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["counter", "running_sum", "memory", "stack"])
def test_example_machine_long_trace(compiled, name):
    graph, make_prompt, model = compiled[name]
    prompt = make_prompt(prompts(LONG_TRACE)[name][1])
    expected = run(graph, prompt, LONG_TRACE).trace
    assert len(expected) == LONG_TRACE  # the prompt is long enough to keep the machine busy
    assert_same_trace(compiled, name, LONG_TRACE)
