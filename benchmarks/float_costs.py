"""What f64 arithmetic costs the machine, in VM steps and generated tokens per instruction.

    .venv/bin/python benchmarks/float_costs.py

Each row is a WAT loop applying one instruction to operands of full precision (1.2345678901234 and
3.3333333333333; the loop changes the first operand every round, as real code would), run for 10 and for 20
rounds; the cost is the difference over 10, less the same difference for the loop without the instruction.
Steps come from the reference VM, tokens from the trace oracle (what the model generates: the same tokens).
Exact counts: no model is run and nothing is timed.
"""

from __future__ import annotations

from wasmformer.frontend import load_program
from wasmformer.machine.trace import expected_trace
from wasmformer.oracles import refvm

BINARY = ["f64.add", "f64.sub", "f64.mul", "f64.div", "f64.lt"]
UNARY = ["f64.sqrt", "f64.floor", "f64.nearest", "i32.trunc_f64_s", "f32.demote_f64"]
OPERATIONS = {**{name: f"({name} (local.get $x) (local.get $y))" for name in BINARY},
              **{name: f"({name} (local.get $x))" for name in UNARY},
              "f64.convert_i32_s": "(f64.convert_i32_s (local.get $i))"}
ROUNDS = (10, 20)


def loop(operation: str | None, rounds: int) -> str:
    body = f"(drop {operation})" if operation else ""
    return f"""(module (func (export "main") (local $i i32) (local $x f64) (local $y f64)
      (local.set $x (f64.const 1.2345678901234)) (local.set $y (f64.const 3.3333333333333))
      (loop $again {body}
        (local.set $x (f64.reinterpret_i64 (i64.add (i64.reinterpret_f64 (local.get $x)) (i64.const 0x10001))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $i) (i32.const {rounds}))))))"""


def per_round(operation: str | None) -> tuple[float, float]:
    """(steps, tokens) per round of the loop."""
    costs = []
    for rounds in ROUNDS:
        program = load_program(loop(operation, rounds), kind="wat")
        costs.append((refvm.run(program).steps, len(expected_trace(program).tokens)))
    (steps_a, tokens_a), (steps_b, tokens_b) = costs
    span = ROUNDS[1] - ROUNDS[0]
    return (steps_b - steps_a) / span, (tokens_b - tokens_a) / span


def main() -> None:
    base_steps, base_tokens = per_round(None)
    print("| instruction | VM steps | generated tokens |")
    print("|---|---|---|")
    for name, operation in OPERATIONS.items():
        steps, tokens = per_round(operation)
        print(f"| `{name}` | {steps - base_steps:,.0f} | {tokens - base_tokens:,.0f} |")


if __name__ == "__main__":
    main()
