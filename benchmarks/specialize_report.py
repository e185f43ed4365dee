"""Specialised models against the universal model, per example: size, build time, speed.

    .venv/bin/python benchmarks/specialize_report.py [--max-new-tokens N]

For each bundled example: specialise it (timed), then run the same input on
the specialised and on the universal model with the fastest engine, checking
that the two traces are identical, and print a markdown table (pasted into
docs/specialize.md).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from wasmformer.engines import default_engine_name
from wasmformer.frontend import load_program
from wasmformer.machine.baked import specialised_prompt
from wasmformer.machine.execute import run_program, run_tokens
from wasmformer.machine.specialize import specialise
from wasmformer.machine.universal import universal_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap each run (default: run to halt)")
    args = parser.parse_args()
    universal = universal_model()
    print(f"machine: {platform.processor() or platform.machine()}, engine: {default_engine_name()}")
    print("| example | instructions | table units | build s | D | L | H | F | nonzeros | tokens | "
          "specialised tok/s | universal tok/s | same trace |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for source in sorted(EXAMPLES.glob("*.c")):
        program = load_program(source)
        input_path = source.with_suffix(".input")
        input_bytes = input_path.read_bytes() if input_path.is_file() else b""
        start = time.perf_counter()
        result = specialise(program)
        build = time.perf_counter() - start
        model = result.model
        special = run_tokens(model, specialised_prompt(program, input_bytes), max_new_tokens=args.max_new_tokens)
        general = run_program(universal, program, input_bytes, max_new_tokens=args.max_new_tokens)
        same = special.trace == general.trace
        print(f"| {source.stem} | {len(program.instrs):,} | {result.table_units:,} | {build:.1f} | {model.d_model} | "
              f"{len(model.layers)} | {model.n_heads} | {model.d_ffn:,} | {model.nonzero_weights():,} | "
              f"{len(special.trace):,} | {special.tokens_per_second:,.0f} | {general.tokens_per_second:,.0f} | "
              f"{'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
