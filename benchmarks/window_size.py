"""Large sliding windows against the study's: quality, agreement and compute per pixel.

The U-Net is fully convolutional, so a window far larger than the training patch computes
each pixel about once, where the study's 256/stride-64 computes it 16 times and 50 % overlap
4 times. This script segments held-out simulated images (seeds no training used) with one
trained checkpoint at several window settings and reports, per setting: mean IoU against the
true phases, pixel agreement and mean IoU against the study's 256/stride-64 labels, windows x
patch area per image pixel (the compute amplification over one forward pass per pixel) and
seconds. Writes benchmarks/window_size.json.

python benchmarks/window_size.py --checkpoint RUN [--images 4] [--shape 1024 1536]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from data_prep import synthetic
from socseg_jax.core.intensity import normalize_sem
from socseg_jax.core.scores import confusion_matrix, segmentation_scores
from socseg_jax.inference.model_apply import make_model_apply_fn
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.runtime.cpu_record import cpu_summary
from socseg_jax.training import checkpoints

SETTINGS = {  # name: (patch, stride)
    "study_256_s64": (256, 64),
    "256_s128": (256, 128),
    "512_s384": (512, 384),
    "1024_s896": (1024, 896),
    "2048_s1920": (2048, 1920),
}
SEED_BASE = 50_000  # held-out simulator seeds (tests and tuning use others)
OXIDATION_MIN = (5, 10, 20, 30, 60, 120)  # the quickstart's oxidation series


def compute_per_pixel(shape: tuple[int, int], patch: int, stride: int, bucket: int) -> float:
    """Window pixels computed per image pixel for this setting (1.0 = one pass per pixel)."""
    predictor = SlidingWindowPredictor(lambda b: b, patch_size=patch, stride=stride,
                                       size_bucket=bucket)
    p = predictor.window_size(*shape)
    s = min(stride, p)
    ys = len(range(0, max(shape[0] - p, 0) + s, s)) if shape[0] > p else 1
    xs = len(range(0, max(shape[1] - p, 0) + s, s)) if shape[1] > p else 1
    return ys * xs * p * p / (shape[0] * shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=2, default=(1024, 1536))
    parser.add_argument("--out", default=str(Path(__file__).with_name("window_size.json")))
    args = parser.parse_args()
    model, _, step = checkpoints.load_model(args.checkpoint)
    apply_fn = make_model_apply_fn(model)
    samples = [
        synthetic.simulate_sample(
            synthetic.SimulationParams(shape=tuple(args.shape),
                                       oxidation_min=OXIDATION_MIN[i % len(OXIDATION_MIN)]),
            SEED_BASE + i,
        )
        for i in range(args.images)
    ]
    results, study = {}, None
    for name, (patch, stride) in SETTINGS.items():
        predictor = SlidingWindowPredictor(apply_fn, patch_size=patch, stride=stride)
        predictor.predict(normalize_sem(samples[0].sem))  # compile outside the timing
        truth_cm, agree_cm, seconds = 0, 0, 0.0
        labels = []
        for sample in samples:
            started = time.perf_counter()
            pred = predictor.predict(normalize_sem(sample.sem))
            seconds += time.perf_counter() - started
            labels.append(pred)
            truth_cm = truth_cm + confusion_matrix(sample.phases, pred)
        study = study or labels
        for ref, pred in zip(study, labels, strict=True):
            agree_cm = agree_cm + confusion_matrix(ref, pred)
        versus_study = segmentation_scores(agree_cm)
        results[name] = {
            "patch": patch, "stride": stride,
            "mean_iou_vs_truth": round(segmentation_scores(truth_cm)["mean_iou"], 4),
            "agreement_with_study": round(versus_study["pixel_accuracy"], 5),
            "mean_iou_vs_study": round(versus_study["mean_iou"], 4),
            "compute_per_pixel": round(compute_per_pixel(tuple(args.shape), patch, stride,
                                                         predictor.size_bucket), 3),
            "seconds": round(seconds, 2),
            "mpx_per_s": round(args.images * np.prod(args.shape) / 1e6 / seconds, 4),
        }
        print(name, results[name], flush=True)
    report = {"checkpoint": args.checkpoint, "step": step, "images": args.images,
              "shape": list(args.shape), "seeds": [SEED_BASE, SEED_BASE + args.images - 1],
              "cpu": cpu_summary(), "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
