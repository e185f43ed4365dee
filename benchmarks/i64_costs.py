"""What each i64 instruction costs the machine, in VM steps and trace tokens, against its i32 form.

    .venv/bin/python benchmarks/i64_costs.py

For each instruction, a WAT function applies it to its parameters; its cost
is the steps (and their tokens) that the trace oracle attributes to that one
wasm instruction, by the program's origins, plus every step inside helper
subroutines. Operands are a fixed pair of large values (a helper's cost
depends on them; division by a divisor below 2^16 takes a shortcut, shown on
its own row). Exact counts: no model is run and nothing is timed.
"""

from __future__ import annotations

from wasmformer.frontend import Call
from wasmformer.frontend.decode import decode_module
from wasmformer.frontend.lower import lower
from wasmformer.machine.trace import TraceMachine

A64, B64 = 0xFEDCBA9876543210, 0x123456789  # a dividend of 64 bits, a divisor of 33
A32, B32 = 0x12345678, 0x7654321
BINARY = ["add", "sub", "mul", "div_u", "div_s", "rem_u", "and", "or", "xor", "shl", "shr_s", "rotl",
          "eq", "lt_s", "ge_u"]
UNARY = ["clz", "popcnt", "eqz", "extend16_s"]
LOADS = [("load", None), ("store", None)]


def module(kind: str, op: str, arity: int) -> str:
    result = "i32" if op in ("eq", "lt_s", "ge_u", "eqz") else kind
    operands = " ".join(f"(local.get {i})" for i in range(arity))
    return f'(module (memory 1) (func (export "op") (param {kind} {kind}) (result {result}) ({kind}.{op} {operands})))'


def memory_module(kind: str, op: str) -> str:
    body = "(i64.store (i32.const 8) (local.get 1))" if op == "store" else "(drop (i64.load (i32.const 8)))"
    if kind == "i32":
        body = body.replace("i64.", "i32.")
    return f'(module (memory 1) (func (export "op") (param i32 {kind}) {body}))'


def cost(wat: str, args: tuple, position: int) -> tuple[int, int]:
    """(steps, tokens) of the instruction at ``position`` in function "op" and of every helper step."""
    import wasmtime

    program = lower(decode_module(bytes(wasmtime.wat2wasm(wat))), calls=[Call("op", args, output=False)])
    helper_start, helper_end = program.stats["helper_pcs"]
    machine, steps, tokens = TraceMachine(program, b""), 0, 0
    while not machine.halted:
        pc = machine.pc
        written = machine.step()
        if program.origins.get(pc) == ("op", position) or helper_start <= pc < helper_end:
            steps, tokens = steps + 1, tokens + len(written)
    return steps, tokens


def main() -> None:
    print(f"{'instruction':<14} {'i64 steps':>9} {'i64 tokens':>10} {'i32 tokens':>10} {'ratio':>6}")
    rows = [(op, 2, (A64, B64), (A32, B32)) for op in BINARY] + [(op, 1, (A64, B64), (A32, B32)) for op in UNARY]
    rows.append(("div_u", 2, (A64, 10), (A32, 10)))  # by a small divisor: three native i32 divisions
    for op, arity, wide_args, narrow_args in rows:
        steps, tokens = cost(module("i64", op, arity), wide_args, arity)
        _, narrow_tokens = cost(module("i32", op, arity), narrow_args, arity)
        label = op + (" by 10" if wide_args[1] == 10 else "")
        print(f"{label:<14} {steps:>9} {tokens:>10} {narrow_tokens:>10} {tokens / narrow_tokens:>6.1f}")
    for op, _ in LOADS:
        position = 1 if op == "load" else 2
        steps, tokens = cost(memory_module("i64", op), (0, A64), position)
        _, narrow_tokens = cost(memory_module("i32", op), (0, A32), position)
        print(f"{op:<14} {steps:>9} {tokens:>10} {narrow_tokens:>10} {tokens / narrow_tokens:>6.1f}")


if __name__ == "__main__":
    main()
