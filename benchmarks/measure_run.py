"""One measured run in a fresh process: tokens, seconds, tok/s and peak memory, as one JSON line.

    python benchmarks/measure_run.py --model DIR --prompt FILE [--engine NAME] [--max-new-tokens N]

benchmarks/run_all.py starts one of these per (engine, trace length), so each
peak RSS belongs to that run alone. The run goes through wasmformer.runner,
the path `wasmformer run` takes. Peak RSS is VmHWM from /proc/self/status
(ru_maxrss where there is no /proc); it includes the interpreter, numpy and
the model (rss_before_run_mib), the engine's state and the trace as a Python
list.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

from wasmformer import runner
from wasmformer.model import load_model


def status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (VmHWM, VmRSS) in MiB, or None without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # the kernel reports kB
    except OSError:
        return None
    return None


def peak_rss_mib() -> float:
    peak = status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(model_dir: Path, prompt_file: Path, engine_name: str | None, max_new_tokens: int | None) -> dict:
    model = load_model(model_dir)
    prompt_ids = runner.prompt_ids_or_error(model, runner.read_prompt_file(prompt_file).tokens, str(prompt_file))
    horizon_max_new_tokens = runner.default_max_new_tokens(model, len(prompt_ids))
    engine, _ = runner.choose_engine(model, engine_name)
    rss_before_run = status_mib("VmRSS") or peak_rss_mib()
    result = runner.run_prompt(model, prompt_ids, engine=engine,
                               max_new_tokens=min(max_new_tokens or horizon_max_new_tokens, horizon_max_new_tokens))
    record = {
        "engine": result.engine,
        "prompt_tokens": result.prompt_tokens,
        "generated_tokens": result.generated_tokens,
        "seconds": result.seconds,
        "tokens_per_second": result.tokens_per_second,
        "halted": result.halted,
        "trap": result.trap,
        "output_hex": result.output.hex(),
        "rss_before_run_mib": round(rss_before_run, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    if hasattr(engine, "stats"):  # the native engine reports its attention state
        record["attention_state_mib"] = round(engine.stats()["state_bytes"] / 2**20, 1)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument("--prompt", type=Path, required=True, help="prompt file")
    parser.add_argument("--engine", default=None, help="native, hull or dense (default: the fastest)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="stop after this many generated tokens")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.model, args.prompt, args.engine, args.max_new_tokens)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
