"""--token's forward pass: it reproduces the model's tokens, and its heads win where the machine says they must."""

from __future__ import annotations

import pytest

from wasmformer.explain.heads import ExplainError, explain_tokens
from wasmformer.machine import tokens as T
from wasmformer.vm.program import Op


def lookup(explanation, name):
    return next(item for item in explanation.lookups if item.name == name)


def first_value_token(step) -> int:
    """The position of a value step's first result byte (its pass is the one before)."""
    return step.start


def test_the_instrumented_pass_produces_every_token_of_the_run(universal, tiny_run, tiny_ids):
    positions = list(range(len(tiny_run.prompt) - 1, len(tiny_run.tokens) - 1))
    explanations = explain_tokens(universal, tiny_ids, positions)
    assert [e.produced for e in explanations] == tiny_run.trace
    assert all(e.expected == e.produced for e in explanations)


def test_a_local_get_reads_the_record_its_local_set_wrote(universal, tiny_run, tiny_ids):
    steps = tiny_run.steps
    get = next(s for s in steps if s.function == "square" and s.op is Op.LOCAL_GET)
    setter = max((s for s in steps if s.number < get.number and s.op is Op.LOCAL_SET), key=lambda s: s.number)
    assert setter.function == "square"  # the prologue storing the argument in the callee's frame
    (explanation,) = explain_tokens(universal, tiny_ids, [first_value_token(get) - 1])
    variable = lookup(explanation, "variable.bank0")
    assert variable.tie == "latest" and variable.winners == [setter.start + 3]  # its 4th byte: the record
    assert variable.query == variable.key
    assert explanation.produced == get.tokens[0]


def test_a_load_reads_the_byte_the_store_wrote(universal, tiny_run, tiny_ids):
    steps = tiny_run.steps
    load = next(s for s in steps if s.op is Op.LOAD)
    store = next(s for s in steps if s.op is Op.STORE)
    assert load.address == store.address == 16
    (explanation,) = explain_tokens(universal, tiny_ids, [load.start - 1])
    assert lookup(explanation, "memory.bank0").winners == [store.start]  # m.09: the byte at address 16


def test_the_fetch_reads_the_instructions_slot(universal, tiny_run, tiny_ids):
    step = tiny_run.steps[4]
    (explanation,) = explain_tokens(universal, tiny_ids, [step.start - 1])
    code_base = tiny_run.tokens.index(T.opcode_token(Op.CALL1))  # pc 0 is the entry stub's call
    assert lookup(explanation, "fetch").winners == [code_base + T.SLOT * step.pc + T.SLOT - 1]
    assert lookup(explanation, "fetch.square").winners == [code_base + T.SLOT * step.pc]


def test_heads_are_named_from_the_metadata(universal, tiny_ids):
    (explanation,) = explain_tokens(universal, tiny_ids, [len(tiny_ids) - 2])
    heads = universal.extra["heads"]
    assert {(item.layer, item.head) for item in explanation.lookups} <= {(h["layer"], h["head"]) for h in heads}
    back1 = lookup(explanation, "back1")
    assert back1.winners == [len(tiny_ids) - 3] and back1.query_text == "t - 1"
    mean = lookup(explanation, "commits.mean")
    assert mean.tie == "average" and len(mean.winners) > 1 and mean.query is None
    assert all(name for item in explanation.lookups for name, _, _ in item.outputs)


def test_positions_outside_the_run_are_refused(universal, tiny_ids):
    with pytest.raises(ExplainError, match="outside the run"):
        explain_tokens(universal, tiny_ids, [len(tiny_ids)])


def test_the_sweep_and_the_batched_pass_agree(universal, tiny_run, tiny_ids):
    positions = [len(tiny_run.prompt) - 1, tiny_run.steps[7].start - 1, len(tiny_ids) - 2]
    batched = explain_tokens(universal, tiny_ids, positions, method="batched")
    swept = explain_tokens(universal, tiny_ids, positions, method="sweep")
    for one, other in zip(batched, swept):
        assert one.produced == other.produced == one.expected
        # a snapped count's query is a mean times (t + 1): its last bits depend on the summation order
        def rounded(value):
            return None if value is None else round(value, 6)

        assert [(h.layer, h.head, h.winners, rounded(h.query), rounded(h.key)) for h in one.lookups] == \
            [(h.layer, h.head, h.winners, rounded(h.query), rounded(h.key)) for h in other.lookups]
        assert [[rounded(v) for _, _, v in h.outputs] for h in one.lookups] == \
            [[rounded(v) for _, _, v in h.outputs] for h in other.lookups]
