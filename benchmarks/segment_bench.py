"""Sliding-window segmentation benchmark (not a test): throughput and peak memory.

1. Megapixels/s of the study's U-Net (random weights; speed does not depend on them) on a
   2856x4096 image (the study's Zeiss SEM size) at the study's stride 64 and at 50 % overlap
   (stride 128) on 256-px windows, after a warm-up that compiles the model.
2. Peak resident memory (RSS) of a fresh process running the whole segment job (read, normalise,
   band-wise prediction, label TIFF, overlay) on a 16384x16384 8-bit TIFF; the bar is <= 6 GB.

python benchmarks/segment_bench.py [--quick] [--out benchmarks/segment_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from socseg_jax.configs.segment import get_config as segment_config

from socseg_jax.inference.archive import discover_images
from socseg_jax.inference.archive_loop import segment_images

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _predictor(stride: int, batch_size: int, features: tuple[int, ...] | None = None):
    from flax import nnx

    from socseg_jax.inference.model_apply import make_model_apply_fn
    from socseg_jax.inference.predictor import SlidingWindowPredictor
    from socseg_jax.models.unet import UNet, UNetConfig

    config = (
        UNetConfig()
        if features is None
        else UNetConfig(
            features=features,
            encoder_dropout=(0.0,) * len(features),
            decoder_dropout=(0.0,) * (len(features) - 1),
        )
    )
    model = UNet(config, rngs=nnx.Rngs(0))
    return SlidingWindowPredictor(
        make_model_apply_fn(model), patch_size=256, stride=stride, batch_size=batch_size
    )


def throughput(shape: tuple[int, int], stride: int, batch_size: int) -> dict[str, float]:
    """Seconds and megapixels/s for one image after a warm-up on a strip of the same width."""
    from data_prep.patches import tile_starts

    predictor = _predictor(stride, batch_size)
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    predictor.predict(image[:256])  # compiles the model for this batch shape
    start = time.perf_counter()
    predictor.predict(image)
    seconds = time.perf_counter() - start
    tiles = len(tile_starts(shape[0], 256, stride)) * len(tile_starts(shape[1], 256, stride))
    return {
        "stride": stride,
        "tiles": tiles,
        "seconds": round(seconds, 2),
        "megapixels_per_s": round(shape[0] * shape[1] / 1e6 / seconds, 4),
        "tiles_per_s": round(tiles / seconds, 2),
    }


def _rss_child(size: int, stride: int, batch_size: int) -> None:
    """Runs in a fresh process: segment one size x size TIFF, print peak RSS as JSON."""
    import tifffile


    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.tif"
        rng = np.random.default_rng(0)
        with tifffile.TiffWriter(path) as tif:  # written in strips, never whole in memory
            strips = (rng.integers(0, 255, (256, size), dtype=np.uint8) for _ in range(size // 256))
            tif.write(strips, shape=(size, size), dtype=np.uint8)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        predictor = _predictor(stride, batch_size)
        start = time.perf_counter()
        options = segment_config()
        options.update(num_workers=1, prefetch=1)
        rows = segment_images(predictor, discover_images(str(path)), Path(tmp) / "out", options)
        seconds = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "image": f"{size}x{size}",
                "stride": stride,
                "status": rows[0]["status"],
                "reason": rows[0]["reason"],
                "seconds": round(seconds, 1),
                "peak_rss_gb": round(peak_kib * 1024 / 1e9, 3),
                "rss_before_job_gb": round(before * 1024 / 1e9, 3),
            }
        )
    )


def peak_rss(size: int, stride: int, batch_size: int) -> dict[str, float]:
    """Peak RSS of a fresh process segmenting a size x size image (see :func:`_rss_child`)."""
    command = [
        sys.executable,
        __file__,
        "--rss-child",
        str(size),
        "--rss-stride",
        str(stride),
        "--batch-size",
        str(batch_size),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"RSS run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rss-size", type=int, default=16384)
    parser.add_argument(
        "--rss-stride",
        type=int,
        default=256,
        help="stride of the RSS run (memory does not depend on it; time does)",
    )
    parser.add_argument("--quick", action="store_true", help="small image, for a smoke test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "segment_bench.json")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, args.rss_stride, args.batch_size)
        return
    from socseg_jax.runtime import host_devices

    host_devices.configure({"batch_size": args.batch_size})  # as launch.py: a device per core
    import jax

    from socseg_jax.runtime.cpu_record import cpu_info

    shape = (512, 768) if args.quick else (2856, 4096)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu_info(),
            "load_average_at_start": os.getloadavg(),
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
            "note": "shared machine: other jobs ran at the same time; figures are indicative",
        },
        "image": f"{shape[0]}x{shape[1]}",
        "patch": 256,
        "batch_size": args.batch_size,
        "study_stride_64": throughput(shape, 64, args.batch_size),
        "overlap_50_percent_stride_128": throughput(shape, 128, args.batch_size),
        "peak_rss": peak_rss(
            2048 if args.quick else args.rss_size, args.rss_stride, args.batch_size
        ),
    }
    results["peak_rss"]["within_6gb"] = results["peak_rss"]["peak_rss_gb"] <= 6.0
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
