"""The op table is complete and consistent: every op has one row, and every row every fact its readers need."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from wasmformer.frontend.helpers import helper_library
from wasmformer.frontend.opcodes import opcode_table
from wasmformer.machine import tokens as T
from wasmformer.machine.instruction_set import MACHINE_OPS
from wasmformer.vm.ops import (BASIC_OPS, COMMIT_STACK_DELTA, OP_TABLE, REWRITABLE_OPS, SPECS, Body, Commit, Datapath,
                               Immediate, Record, Source, stack_effect)
from wasmformer.vm.program import Op

DOCS = Path(__file__).resolve().parents[2] / "docs"
PURE_DATAPATHS = {Datapath.ADD, Datapath.SUB, Datapath.COMPARE, Datapath.BITWISE, Datapath.SHIFT}
READING_DATAPATHS = {Datapath.COPY, Datapath.ADD, Datapath.SUB, Datapath.INPUT, Datapath.BRANCH}


def test_every_op_has_exactly_one_row_and_a_unique_opcode():
    assert [row.op for row in OP_TABLE] == list(Op)  # table order = vocabulary order
    opcodes = [row.opcode for row in OP_TABLE]
    assert len(set(opcodes)) == len(opcodes) and min(opcodes) > 0


@pytest.mark.parametrize("row", OP_TABLE, ids=lambda row: row.op.value)
def test_a_row_states_every_fact(row):
    assert isinstance(row.immediate, Immediate) and isinstance(row.body, Body) and isinstance(row.record, Record)
    if row.wide:  # i64 operands (two words each): an i64 or an i32 out, or stored
        assert row.pops in (2, 3, 4) and row.pushes in (0, 1, 2)
    else:  # an i64 load or extend_i32_s pushes two words
        assert 0 <= row.pops <= 3 and 0 <= row.pushes <= (2 if row.datapath is Datapath.NARROW else 1)
    if row.commit is None:  # ends the run
        assert (row.op in (Op.HALT, Op.TRAP) and row.body is Body.NONE) or (
            row.op is Op.EXIT and row.body is Body.EXIT_STATUS and row.pops == 1)
    else:
        assert COMMIT_STACK_DELTA[row.commit] == stack_effect(row.op), "the commit carries the stack effect"
    assert row.datapath is not None or row.helper is not None, "executed by neither the machine nor a helper"


@pytest.mark.parametrize("row", OP_TABLE, ids=lambda row: row.op.value)
def test_body_record_and_width_agree(row):
    if row.record is Record.STACK:
        assert row.body is Body.VALUE and row.value_bytes == 4 * row.pushes
    if row.body is Body.STORED or row.record is Record.MEMORY:
        assert row.body is Body.STORED and row.record is Record.MEMORY and row.immediate is Immediate.OFFSET
    if row.immediate is Immediate.OFFSET:
        assert row.width in (1, 2, 4, 8)
        if row.pushes:  # a load: signed when it extends a narrower value's sign
            extends = row.width < 4 * row.pushes
            assert row.datapath is Datapath.NARROW and row.signed == (extends and "_s" in row.op.value)
    if row.record in (Record.LOCAL, Record.GLOBAL):
        assert row.immediate.value == row.record.value and row.body is Body.VALUE
    if row.body is Body.TARGET:
        assert row.immediate is Immediate.TARGET or row.source is Source.RETURN_PC


@pytest.mark.parametrize("row", OP_TABLE, ids=lambda row: row.op.value)
def test_value_functions_and_sources(row):
    if row.datapath in PURE_DATAPATHS or row.helper is not None:
        operands = row.pops // row.operand_words  # a wide row's value function takes i64s
        assert row.value is not None and len(inspect.signature(row.value).parameters) == operands
    if row.datapath in READING_DATAPATHS:
        assert row.source is not Source.NONE, "a datapath that reads bytes needs a source"
    if row.datapath in (Datapath.COMPARE, Datapath.BITWISE, Datapath.SHIFT, Datapath.CONTROL):
        assert row.source is Source.NONE


def test_helpers_exist_for_every_rewritable_op():
    exports = helper_library().exports
    for op in REWRITABLE_OPS:
        assert SPECS[op].helper in exports and exports[SPECS[op].helper][0] == "func"
    assert BASIC_OPS <= MACHINE_OPS, "the helpers are written with basic ops, which every machine executes"


def test_wasm_names_are_real_instructions():
    table = opcode_table()
    names = {name for name, _ in table.single.values()} | {name for name, _ in table.misc.values()}
    for row in OP_TABLE:
        assert row.wasm is None or row.wasm in names


def test_the_vocabulary_has_an_op_token_per_row():
    vocabulary = set(T.vocabulary())
    assert all(T.opcode_token(row.op) in vocabulary for row in OP_TABLE)
    committed = {row.commit.value for row in OP_TABLE if row.commit is not None}
    assert set(T.COMMITS) == committed | {Commit.BRANCH.value}  # a taken conditional jump's c.pop becomes c.branch


def test_the_docs_describe_every_op():
    text = (DOCS / "vm-program.md").read_text()
    documented = set(re.findall(r"`([a-z0-9_]+)`", text))
    assert {op.value for op in Op} <= documented
