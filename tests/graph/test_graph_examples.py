"""The four example machines on the exact evaluator, against plain Python, over >= 2,000 tokens each."""

from __future__ import annotations

import random

import pytest

from wasmformer.graph import examples
from wasmformer.graph.evaluate import run
from wasmformer.graph.validate import validate

LIMIT = 20_000


def tokens_used(prompt: list[str], trace: list[str]) -> int:
    return len(prompt) + len(trace)


# -- plain Python versions of the same machines -------------------------------------------------
def expected_counter(start: int, width: int) -> list[str]:
    trace = []
    for n in range(start + 1, 10**width):
        trace += list(str(n).zfill(width)) + [","]
    return trace + ["halt"]


def expected_running_sums(digits: list[int]) -> list[str]:
    trace, total = [], 0
    for digit in digits:
        total += digit
        trace += list(str(total)) + [","]
    return trace + ["halt"]


def expected_loads(operations: list[tuple]) -> list[str]:
    memory, trace = {}, []
    for operation in operations:
        if operation[0] == "store":
            memory[operation[1]] = operation[2]
        else:
            trace += list(format(memory.get(operation[1], 0), "02x")) + [";"]
    return trace + ["halt"]


def expected_stack_trace(program: list[str]) -> list[str]:
    stack, trace = [], []
    for op in program:
        if op.startswith("push"):
            stack.append(int(op[4:]))
        elif op in ("add", "sub"):
            top, second = stack.pop(), stack.pop()
            stack.append((second + top if op == "add" else second - top) % 256)
        elif op == "dup":
            stack.append(stack[-1])
        elif op == "pop":
            stack.pop()
        if op == "print":
            trace += list(str(stack[-1]).zfill(3)) + ["nl"]
        else:
            trace.append(f"v{stack[-1] if stack else 0}")  # an empty stack reads 0
    return trace + ["halt"]


def random_memory_operations(count: int, seed: int, addresses: int = 48) -> list[tuple]:
    rng = random.Random(seed)
    return [("store", rng.randrange(addresses), rng.randrange(256)) if rng.random() < 0.5
            else ("load", rng.randrange(addresses)) for _ in range(count)]


# -- the machines ----------------------------------------------------------------------------------
def test_counter_counts_to_999():
    graph, make_prompt = examples.counter_machine()
    validate(graph)
    prompt = make_prompt(0)
    result = run(graph, prompt, LIMIT)
    assert result.trace == expected_counter(0, 3)
    assert result.halted and tokens_used(prompt, result.trace) >= 2000
    assert result.output.startswith(b"001 002 003 ") and result.output.endswith(b"998 999 ")


@pytest.mark.parametrize("start, width", [(998, 3), (0, 1), (95, 2)])
def test_counter_edges(start, width):
    graph, make_prompt = examples.counter_machine(width=width)
    assert run(graph, make_prompt(start), LIMIT).trace == expected_counter(start, width)


def test_running_sums_of_a_long_prompt():
    graph, make_prompt = examples.running_sum_machine()
    validate(graph)
    rng = random.Random(11)
    digits = [rng.randrange(10) for _ in range(500)]
    prompt = make_prompt(digits)
    result = run(graph, prompt, LIMIT)
    assert result.trace == expected_running_sums(digits)
    assert tokens_used(prompt, result.trace) >= 2000


@pytest.mark.parametrize("digits", [[], [0], [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9], [0, 0, 5]])
def test_running_sum_edges(digits):
    graph, make_prompt = examples.running_sum_machine(max_exact_tokens=256)
    assert run(graph, make_prompt(digits), LIMIT).trace == expected_running_sums(digits)


def test_memory_answers_every_load_with_the_latest_store():
    graph, make_prompt = examples.memory_machine()
    validate(graph)
    operations = random_memory_operations(700, seed=3)
    prompt = make_prompt(operations)
    result = run(graph, prompt, LIMIT)
    assert result.trace == expected_loads(operations)
    assert tokens_used(prompt, result.trace) >= 2000
    assert "00" in "".join(result.trace)  # some loads hit never-written addresses (the default)


def test_memory_edges():
    graph, make_prompt = examples.memory_machine(max_exact_tokens=256)
    cases = [
        [],
        [("load", 7)],
        [("store", 255, 171), ("store", 0, 1), ("load", 255), ("store", 255, 2), ("load", 255), ("load", 254)],
    ]
    for operations in cases:
        assert run(graph, make_prompt(operations), LIMIT).trace == expected_loads(operations)


def test_stack_machine_runs_a_long_program():
    graph, make_prompt = examples.stack_machine()
    report = validate(graph)
    assert len(report.snap_heads) == 3
    program = examples.random_stack_program(1100, seed=7)
    assert {op for op in program} >= {"add", "sub", "dup", "pop", "print", "push0", "push9"}
    prompt = make_prompt(program)
    result = run(graph, prompt, LIMIT)
    assert result.trace == expected_stack_trace(program)
    assert tokens_used(prompt, result.trace) >= 2000


def test_stack_machine_wraps_bytes_and_prints():
    graph, make_prompt = examples.stack_machine(max_exact_tokens=256)
    program = ["push3", "push5", "sub", "print", "push9", "dup", "add", "add", "print", "pop"]
    result = run(graph, make_prompt(program), LIMIT)
    assert result.trace == expected_stack_trace(program)
    assert result.output == b"254\n016\n"


def test_make_prompt_rejects_bad_input():
    with pytest.raises(ValueError):
        examples.counter_machine()[1](1000)
    with pytest.raises(ValueError):
        examples.running_sum_machine()[1]([10])
    with pytest.raises(ValueError):
        examples.memory_machine()[1]([("store", 256, 0)])
    with pytest.raises(ValueError):
        examples.stack_machine()[1](["mul"])
