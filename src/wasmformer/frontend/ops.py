"""Which VM ops a target machine runs natively, and which the front end can rewrite.

The *basic* ops are the ones every machine executes: constants, add/sub,
comparisons, variables, memory, stack and control. The *rewritable* ops
(multiplication, division, bitwise, shifts, bit counts, sign extension) may be
native too; when a machine lacks one, ``lower`` replaces it with a call of a
helper subroutine written with basic ops only (helpers.wat).
"""

from __future__ import annotations

from wasmformer.frontend.program import Op

BASIC_OPS: frozenset[Op] = frozenset({
    Op.CONST, Op.ADD, Op.SUB, Op.EQZ, Op.EQ, Op.NE,
    Op.LT_S, Op.LT_U, Op.GT_S, Op.GT_U, Op.LE_S, Op.LE_U, Op.GE_S, Op.GE_U,
    Op.LOAD8_S, Op.LOAD8_U, Op.LOAD16_S, Op.LOAD16_U, Op.LOAD, Op.STORE8, Op.STORE16, Op.STORE,
    Op.MEMORY_SIZE, Op.MEMORY_GROW,
    Op.LOCAL_GET, Op.LOCAL_SET, Op.LOCAL_TEE, Op.GLOBAL_GET, Op.GLOBAL_SET,
    Op.DROP, Op.SELECT, Op.JUMP, Op.JUMP_IF_ZERO, Op.JUMP_IF_NONZERO, Op.CALL, Op.RETURN,
    Op.PUTCHAR, Op.GETCHAR, Op.HALT, Op.TRAP,
})

REWRITABLE_OPS: frozenset[Op] = frozenset({
    Op.MUL, Op.DIV_S, Op.DIV_U, Op.REM_S, Op.REM_U, Op.AND, Op.OR, Op.XOR,
    Op.SHL, Op.SHR_S, Op.SHR_U, Op.ROTL, Op.ROTR, Op.CLZ, Op.CTZ, Op.POPCNT,
    Op.EXTEND8_S, Op.EXTEND16_S,
})

# Rewritable ops the universal machine executes itself (bytewise, through the bits
# of each byte); the others (mul, div/rem, bit counts) become helper calls.
MACHINE_BITWISE_OPS: frozenset[Op] = frozenset({
    Op.AND, Op.OR, Op.XOR, Op.SHL, Op.SHR_S, Op.SHR_U, Op.ROTL, Op.ROTR, Op.EXTEND8_S, Op.EXTEND16_S,
})
DEFAULT_NATIVE_OPS: frozenset[Op] = BASIC_OPS | MACHINE_BITWISE_OPS

assert BASIC_OPS | REWRITABLE_OPS == frozenset(Op) and not BASIC_OPS & REWRITABLE_OPS
