"""What one br_table dispatch and one call_indirect cost, against the size of the table.

    .venv/bin/python benchmarks/dispatch_costs.py [--sizes 2,4,16,64,256,1024]

For N = each size, two generated WAT modules: ``switch`` is a br_table with N
distinct targets (block k returns k), ``indirect`` calls slot i of a table of N
functions (function k returns k) through call_indirect. Each is invoked for
every index 0..N-1 (br_table: and N, its default); the cost of the dispatch is
the run's VM steps and generated trace tokens minus those of the same run
without it (br_table: the constant alone; call_indirect: a direct ``call`` of
the same function), so the entry stub, the result output and the callee cancel
out. Prints min / mean / max over the indices and the program's VM instructions
beyond the baseline's (reference VM and trace oracle only: no model is run, and
every number is exact, not timed). An index past the table traps after at most
the max of the steps shown.
"""

from __future__ import annotations

import argparse
import statistics

from wasmformer.frontend import load_program
from wasmformer.machine.trace import expected_trace
from wasmformer.oracles import refvm

DEFAULT_SIZES = "2,4,8,16,64,256,1024"


def switch_module(size: int) -> str:
    """br_table over N blocks; the block left by target k returns k (the default returns N)."""
    body = f"(br_table {' '.join(str(k) for k in range(size + 1))} (local.get 0))"
    for depth in range(size + 1):
        body = f"(block {body}) (return (i32.const {depth}))"
    return f'(module (func (export "run") (param i32) (result i32) {body}))'


def indirect_module(size: int) -> str:
    functions = " ".join(f"(func $f{k} (type $t) (i32.const {k}))" for k in range(size))
    slots = " ".join(f"$f{k}" for k in range(size))
    return (f'(module (type $t (func (result i32))) (table {size} funcref) (elem (i32.const 0) {slots}) '
            f'{functions} (func (export "run") (param i32) (result i32) (call_indirect (type $t) (local.get 0))))')


DIRECT = '(module (func (export "run") (param i32) (result i32) (i32.const 0)))'
DIRECT_CALL = ('(module (func $f0 (result i32) (i32.const 0)) '
               '(func (export "run") (param i32) (result i32) (call $f0)))')


def cost(wat: str, index: int) -> tuple[int, int]:
    """(VM steps, generated tokens) of run(index)."""
    program = load_program(wat, kind="wat", invoke="run", args=(index,))
    steps = refvm.run(program).steps
    return steps, len(expected_trace(program).tokens)


def code_size(wat: str) -> int:
    return len(load_program(wat, kind="wat", invoke="run", args=(0,)).instrs)


def measure(size: int) -> list[str]:
    lines = []
    for kind, wat, baseline, indices in (("br_table", switch_module(size), DIRECT, range(size + 1)),
                                         ("call_indirect", indirect_module(size), DIRECT_CALL, range(size))):
        base_steps, base_tokens = cost(baseline, 0)
        runs = [cost(wat, index) for index in indices]
        steps = [s - base_steps for s, _ in runs]
        tokens = [t - base_tokens for _, t in runs]
        lines.append(f"| {kind} | {size} | {min(steps)} / {statistics.mean(steps):.1f} / {max(steps)} | "
                     f"{min(tokens)} / {statistics.mean(tokens):.1f} / {max(tokens)} | "
                     f"{code_size(wat) - code_size(baseline)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated table sizes N")
    args = parser.parse_args()
    print("| dispatch | N | extra VM steps min / mean / max | extra tokens min / mean / max | program size "
          "(extra instructions, incl. the N targets) |")
    print("|---|---|---|---|---|")
    for size in (int(text) for text in args.sizes.split(",")):
        for line in measure(size):
            print(line)


if __name__ == "__main__":
    main()
