"""Micro-benchmark of the native engine: tok/s on a hand-built model, and peak memory.

    python benchmarks/native_micro.py [--tokens 10000 100000 1000000] [--wide 15]

The model (tests/engines/handbuilt.py) has positional, mean and 'latest' hull
heads with clear flags; ``--wide N`` adds N more lookup heads per layer (the
default gives 3 layers of 19 heads, about the published prototype's per-layer
head count). Each size runs in a fresh engine; tok/s counts prompt and
generated tokens, as RunResult.tokens_per_second does. The attention state is
shown in two parts: the hulls (bounded by the distinct keys) and the
per-position history of the positional heads (token ids and recorded slots).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engines"))

from handbuilt import build_model  # noqa: E402

from wasmformer.engines.native import NativeEngine, available, generate_fast, unavailable_reason  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--wide", type=int, default=15, help="extra lookup heads per layer")
    parser.add_argument("--addresses", type=int, default=16)
    args = parser.parse_args(argv)
    if not available():
        print(unavailable_reason(), file=sys.stderr)
        return 1
    horizon = 2 * max(args.tokens)
    model = build_model(max_exact_tokens=horizon, wide=args.wide, addresses=args.addresses)
    kinds = [kind for layer in NativeEngine(model).head_kinds(chains=True) for kind in layer]
    counts = {kind: kinds.count(kind) for kind in sorted(set(kinds))}
    print(f"model: {len(model.layers)} layers x {model.n_heads} heads, d_model {model.d_model}, "
          f"vocab {len(model.vocab)}, {model.nonzero_weights()} nonzero weights; heads: {counts}")
    prompt = [3, 10, 17, 4]
    for tokens in args.tokens:
        engine = NativeEngine(model)
        cpu_start = time.process_time()
        result = generate_fast(engine, prompt, max_new_tokens=tokens)
        cpu_seconds = time.process_time() - cpu_start  # robust to other processes sharing the machine
        stats = engine.stats()
        total = result.prompt_tokens + len(result.trace)
        hull_bytes = stats["state_bytes"] - stats["history_bytes"]
        print(f"{tokens:>10,} tokens: {result.seconds:7.3f} s  {result.tokens_per_second / 1e3:8.1f}K tok/s "
              f"(CPU time: {total / cpu_seconds / 1e3:.1f}K tok/s)  "
              f"hull points {stats['hull_points']:,} ({hull_bytes / 2**10:.0f} KiB)  "
              f"position history {stats['history_bytes'] / 2**20:.1f} MiB  peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
