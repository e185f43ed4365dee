"""call_indirect through immutable tables, checked against wasmtime: every way a slot can be wrong traps.

Out of range ("undefined element"), null ("uninitialized element") and a slot
of another signature ("indirect call type mismatch") all trap INDIRECT_CALL;
types are compared structurally; element segments may be function indices or
``ref.func`` / ``ref.null`` expressions; a table may declare a maximum; a
module may have several tables. What makes a table mutable is refused.
"""

import pytest

from tests.frontend.frontend_oracle import Call, assert_same, lowered
from wasmformer.frontend import FrontendError, TrapReason, load_program
from wasmformer.vm.program import Op, trap_message

pytestmark = pytest.mark.oracle

TABLES = """(module
  (type $a (func (param i32) (result i32)))
  (type $b (func (param i32) (result i32)))
  (type $v (func (result i32)))
  (table $main 6 10 funcref)
  (table $other 3 funcref)
  (elem (table $main) (i32.const 1) funcref (ref.func $double) (ref.null func) (ref.func $seven) (ref.func $inc))
  (elem (table $other) (i32.const 0) func $seven $double)
  (func $double (type $a) (i32.add (local.get 0) (local.get 0)))
  (func $inc (type $b) (i32.add (local.get 0) (i32.const 1)))
  (func $seven (type $v) (i32.const 7))
  (func (export "call_a") (param i32 i32) (result i32) (call_indirect $main (type $a) (local.get 0) (local.get 1)))
  (func (export "call_b") (param i32 i32) (result i32) (call_indirect $main (type $b) (local.get 0) (local.get 1)))
  (func (export "call_v") (param i32) (result i32) (call_indirect $main (type $v) (local.get 0)))
  (func (export "other_v") (param i32) (result i32) (call_indirect $other (type $v) (local.get 0))))"""

# main: 0 null, 1 $double, 2 null, 3 $seven, 4 $inc, 5 null; 6..9 lie below the maximum but outside the table.
SLOTS = [-1, 0, 1, 2, 3, 4, 5, 6, 9, 10, 0x7FFFFFFF, -0x80000000]
EXPECTED_A = {1: 10, 4: 6}  # slot -> result of call_a(5, slot); every other slot traps


@pytest.mark.parametrize("export", ["call_a", "call_b"])
def test_types_are_compared_structurally(export):
    for slot in SLOTS:
        outcome = assert_same(TABLES, export, (5, slot))
        if slot in EXPECTED_A:
            assert outcome.trap is None and int.from_bytes(outcome.output, "little") == EXPECTED_A[slot]
        else:
            assert outcome.trap is TrapReason.INDIRECT_CALL


def test_every_table_is_its_own():
    for slot in SLOTS:
        assert_same(TABLES, "call_v", (slot,))
        assert_same(TABLES, "other_v", (slot,))
    assert assert_same(TABLES, "other_v", (0,)).output == (7).to_bytes(4, "little")
    assert assert_same(TABLES, "other_v", (1,)).trap is TrapReason.INDIRECT_CALL  # $double: another type


def test_one_dispatcher_per_signature_and_table():
    program = lowered(TABLES, calls=[Call("call_a", (1, 1)), Call("call_b", (1, 1)), Call("other_v", (0,))])
    traps = [instr for instr in program.instrs if instr.op is Op.TRAP and instr.arg == TrapReason.INDIRECT_CALL]
    # $a and $b are one signature: one dispatcher for it on table 0, one for () -> (i32) on table 1
    assert len(traps) == 2, program.instrs


TYPED_REFERENCES = """(module
  (type $t (func (result i32)))
  (table $typed 2 (ref null $t))
  (func $f (type $t) (i32.const 3))
  (elem (table $typed) (i32.const 0) (ref null $t) (ref.func $f))
  (func (export "plain") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func (export "typed") (param (ref null $t)) (result i32) (i32.const 1)))"""


def test_typed_references_elsewhere_do_not_stop_i32_functions():
    assert assert_same(TYPED_REFERENCES, "plain", (14,)).output == (42).to_bytes(4, "little")
    with pytest.raises(FrontendError, match="typed references"):
        load_program(TYPED_REFERENCES, kind="wat", invoke="typed", args=(0,))


@pytest.mark.parametrize("wat,phrase", [
    (('(module (import "env" "table" (table 2 funcref)) (type $v (func))'
      ' (func (export "main") (call_indirect (type $v) (i32.const 0))))'), "imported tables are not supported"),
    (('(module (table 2 funcref) (func $f) (elem declare func $f)'
      ' (func (export "main") (table.set (i32.const 0) (ref.func $f))))'), "no reference types"),
    ('(module (table 2 funcref) (func (export "main") (drop (table.grow (ref.null func) (i32.const 1)))))',
     "no reference types"),
    (('(module (table 2 funcref) (func $f) (elem $e func $f)'
      ' (func (export "main") (table.init $e (i32.const 0) (i32.const 0) (i32.const 1))))'), "no reference types"),
    ('(module (table 2 funcref) (func $f) (elem $e func $f) (func (export "main") (elem.drop $e)))',
     "no reference types"),
])
def test_what_would_change_a_table_is_refused(wat, phrase):
    with pytest.raises(FrontendError) as caught:
        load_program(wat, kind="wat")
    assert phrase in str(caught.value)


def test_the_indirect_call_trap_names_wasms_three_messages():
    message = trap_message("trap.indirect_call")
    for words in ("undefined element", "uninitialized element", "indirect call type mismatch"):
        assert words in message
    assert trap_message("trap.divide_by_zero") == "trap.divide_by_zero: integer divide by zero"
