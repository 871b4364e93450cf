"""Performance experiment: the project's train step and forward pass under XLA CPU flags.

Each flag set runs in a fresh process (XLA reads XLA_FLAGS once, at backend start); every
process times the same workloads with socseg_jax.benchmark's runners (median of repetitions
after warm-up). Results go to benchmarks/xla_flags_sweep.json and RESULTS.md's log.

python benchmarks/xla_flags_sweep.py [--batch-size 8] [--repetitions 5] [--dtype bfloat16]
                                     [--flags "A" "B" ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_FLAG_SETS = (
    "",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_onednn_custom_call=true",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_enable_fast_math=true",
)


def _child(batch_size: int, steps: int, repetitions: int, dtype: str) -> None:
    """In a fresh process: train and inference rates of the default U-Net computing in
    ``dtype``, as JSON."""
    sys.path.insert(0, str(ROOT))
    from socseg_jax.configs.benchmark import get_config

    from socseg_jax.jobs import benchmark as bench
    from socseg_jax.models.unet import UNetConfig

    config = UNetConfig(compute_dtype=dtype)
    recipe = get_config().recipe
    runners = [bench.train_runner(config, 256, batch_size, steps, recipe),
               bench.inference_runner(config, 256, batch_size, 1)]
    seconds = bench.measure(runners, repetitions, warmup=1)
    print(json.dumps({r.name: bench.rates(r, seconds[r.name]) for r in runners}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--dtype", default="float32", help="compute dtype (bfloat16: oneDNN's "
                        "AMX / AVX512-BF16 paths)")
    parser.add_argument("--flags", nargs="*", default=list(DEFAULT_FLAG_SETS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "xla_flags_sweep.json")
    args = parser.parse_args()
    if args.child:
        _child(args.batch_size, args.steps, args.repetitions, args.dtype)
        return
    results = {}
    for flags in args.flags:
        env = os.environ | {"XLA_FLAGS": flags}
        command = [sys.executable, __file__, "--child", "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--repetitions", str(args.repetitions),
                   "--dtype", args.dtype]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        load = os.getloadavg()
        if proc.returncode:
            results[flags or "(default)"] = {"error": proc.stderr.strip().splitlines()[-1:]}
        else:
            results[flags or "(default)"] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[flags or "(default)"]["load_average_after"] = list(load)
        summary = {k: round(v["median"], 3) for k, v in results[flags or "(default)"].items()
                   if isinstance(v, dict)}
        print(f"{flags or '(default)':<50} {summary or results[flags or '(default)']}",
              flush=True)
    from socseg_jax.runtime.cpu_record import cpu_info

    args.out.write_text(json.dumps(results | {"cpu": cpu_info()}, indent=2))


if __name__ == "__main__":
    main()
