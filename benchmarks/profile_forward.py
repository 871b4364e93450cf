"""Per-layer profile of the U-Net forward pass: where inference time goes, and at what FLOP/s.

Each layer of the default (study) U-Net is jitted on its own, on inputs of the shapes it sees
in a 256x256 forward pass, and timed (median of repetitions after warm-up). Run at several
batch sizes: on CPU the full-resolution 16-channel convolutions are memory bound, and their
cost per window drops when fewer windows go through at once (the working set stays in cache),
which is why the sliding-window predictor feeds the model one window at a time on CPU.

    python benchmarks/profile_forward.py [--batch 8 1] [--repetitions 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers(model, patch: int):
    """(name, callable, input shape without batch, GFLOP per window) for every layer."""
    feats = model.config.features
    layers, size, width = [], patch, model.config.in_channels
    for level, block in enumerate(model.encoder):
        out = feats[level]
        for name, conv, cin in (("conv1", block.conv1, width), ("conv2", block.conv2, out)):
            flops = 2 * 9 * cin * out * size * size / 1e9
            layers.append((f"enc{level}.{name}", conv, (size, size, cin), flops))
        width = out
        if level < len(feats) - 1:
            size //= 2
    for level, (up, block) in enumerate(zip(model.upsample, model.decoder, strict=True)):
        out = feats[-2 - level]
        layers.append((f"up{level}", up, (size, size, width), 2 * 4 * width * out * size**2 / 1e9))
        size *= 2
        for name, conv, cin in (("conv1", block.conv1, 2 * out), ("conv2", block.conv2, out)):
            flops = 2 * 9 * cin * out * size * size / 1e9
            layers.append((f"dec{level}.{name}", conv, (size, size, cin), flops))
        width = out
    return layers


def profile(batch: int, repetitions: int, patch: int = 256) -> list[dict]:
    """Median time of every layer at ``batch`` windows, sorted by cost (largest first)."""
    import jax
    import numpy as np
    from flax import nnx

    from socseg_jax.models.unet import UNet, UNetConfig

    model = UNet(UNetConfig(), rngs=nnx.Rngs(0))
    model.eval()
    rows = []
    for name, layer, shape, gflop in _layers(model, patch):
        graphdef, state = nnx.split(layer)
        fn = jax.jit(lambda s, x, g=graphdef: nnx.merge(g, s)(x))
        x = jax.numpy.asarray(np.random.default_rng(0).random((batch, *shape), np.float32))
        fn(state, x).block_until_ready()
        times = []
        for _ in range(repetitions):
            t = time.perf_counter()
            fn(state, x).block_until_ready()
            times.append(time.perf_counter() - t)
        ms = statistics.median(times) * 1e3
        rows.append(
            {
                "layer": name,
                "input": [batch, *shape],
                "ms": round(ms, 2),
                "ms_per_window": round(ms / batch, 3),
                "gflop_per_s": round(gflop * batch / (ms / 1e3), 1),
            }
        )
    total = sum(r["ms"] for r in rows)
    for r in rows:
        r["share"] = round(r["ms"] / total, 3)
    return sorted(rows, key=lambda r: -r["ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 1])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "profile_forward.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    result = {}
    for batch in args.batch:
        rows = profile(batch, args.repetitions)
        total = sum(r["ms"] for r in rows)
        print(f"\nbatch {batch}: layers sum to {total:.1f} ms ({total / batch:.1f} ms per window)")
        header = ("layer", "input (NHWC)", "ms", "ms/window", "GFLOP/s", "share")
        print("{:<14}{:>22}{:>9}{:>11}{:>9}{:>7}".format(*header))
        for r in rows:
            shape = "x".join(map(str, r["input"]))
            print(
                f"{r['layer']:<14}{shape:>22}{r['ms']:>9.1f}{r['ms_per_window']:>11.2f}"
                f"{r['gflop_per_s']:>9.1f}{r['share']:>7.1%}"
            )
        result[str(batch)] = {"total_ms": round(total, 1), "layers": rows}
    from socseg_jax.runtime.cpu_record import cpu_info

    Path(args.out).write_text(json.dumps(result | {"cpu": cpu_info()}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
