"""Performance probe: one 3x3 convolution layer of the U-Net in XLA (under XLA CPU flags) and in
PyTorch's oneDNN (channels_last, ``inference_mode``), float32 and bfloat16, in GFLOP/s; and
whether XLA called oneDNN at all (``ONEDNN_VERBOSE=1`` lines in its output).

Why: the peers' lead on CPU is oneDNN's convolution (AVX-512, and AMX for bf16 on Intel
Sapphire Rapids and newer). This tells, per machine, how much of the gap is one layer's
arithmetic speed and whether any XLA flag reaches oneDNN.

    python benchmarks/conv_probe.py [--batch 8] [--size 128] [--channels 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

FLAG_SETS = ("", "--xla_cpu_use_onednn=true", "--xla_cpu_experimental_onednn_custom_call=true")
REPEATS = 10


def _gflops(run, batch: int, size: int, channels: int) -> float:
    """GFLOP/s of ``run()`` (one 3x3 convolution of that shape), after one warm-up call."""
    run()
    start = time.perf_counter()
    for _ in range(REPEATS):
        run()
    seconds = (time.perf_counter() - start) / REPEATS
    return round(2.0 * batch * size * size * channels * channels * 9 / seconds / 1e9, 1)


def _jax_child(batch: int, size: int, channels: int) -> None:
    """In a fresh process (XLA_FLAGS set by the parent): JAX GFLOP/s per dtype, as JSON."""
    import jax
    import jax.numpy as jnp

    out = {}
    for dtype in ("float32", "bfloat16"):
        x = jnp.ones((batch, size, size, channels), dtype)
        w = jnp.ones((3, 3, channels, channels), dtype)
        conv = jax.jit(lambda a, b: jax.lax.conv_general_dilated(
            a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
        out[dtype] = _gflops(lambda c=conv, a=x, b=w: c(a, b).block_until_ready(),
                             batch, size, channels)
    print(json.dumps(out))


def _torch(batch: int, size: int, channels: int) -> dict[str, float] | str:
    """PyTorch GFLOP/s per dtype, as its best CPU users run it; a reason when not installed."""
    try:
        import torch
    except ImportError:
        return "torch not installed"
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(dtype)
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.ones(batch, channels, size, size, dtype=dtype)
        x = x.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            out[name] = _gflops(lambda c=conv, a=x: c(a), batch, size, channels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.batch, args.size, args.channels)
    if args.child:
        _jax_child(*shape)
        return
    from socseg_jax.runtime.cpu_record import cpu_info

    result: dict = {"cpu": cpu_info(), "shape_nhwc": [args.batch, args.size, args.size,
                                                      args.channels], "xla": {}}
    for flags in FLAG_SETS:
        env = os.environ | {"XLA_FLAGS": flags, "ONEDNN_VERBOSE": "1"}
        proc = subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch),
                               "--size", str(args.size), "--channels", str(args.channels)],
                              env=env, capture_output=True, text=True, check=False)
        lines = (proc.stdout + proc.stderr).splitlines()
        row = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
               else {"error": lines[-1:]})
        row["onednn_calls"] = sum("onednn_verbose" in line and ",exec," in line
                                  for line in lines)
        result["xla"][flags or "(default)"] = row
        print(f"XLA {flags or '(default)':<50} {row}", flush=True)
    result["torch_channels_last"] = _torch(*shape)
    print(f"PyTorch channels_last, inference_mode: {result['torch_channels_last']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
