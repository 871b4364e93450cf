"""Benchmark of EDS-guided label quality against the simulator's true phases (issue #3).

For each simulator setting it scores, pooled over held-out samples (drift 8 px, rotation 2°):
stage (a) alone, the two refinements (``mean_field``, ``forest``), labels taught by
``SCRIBBLE_STROKES`` simulated hand strokes per image (``scribbles``), and a *supervised ceiling*:
the features of ``forest`` with a larger forest (twice the trees, 4 levels deeper), trained
on the TRUE phases of other samples of the same setting, i.e. what a pixel classifier reaches
when its teacher is perfect. The settings vary what limits labels on real data: SEM noise
and EDS resolution.

    python benchmarks/label_quality.py [--size 512] [--test-samples 4] [--train-samples 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_prep.labels.eds_rules import eds_evidence, eds_labels  # noqa: E402
from data_prep.labels.forest import REFINE_DEPTH, REFINE_TREES, pixel_features, refine_forest  # noqa: E402
from data_prep.labels.mean_field import refine_mean_field  # noqa: E402
from data_prep.labels.scribbles import label_from_scribbles  # noqa: E402
from data_prep.registration import register_eds  # noqa: E402
from data_prep.synthetic import (  # noqa: E402
    SimulationParams,
    simulate_sample,
    simulate_scribbles,
)  # noqa: E402
from socseg_jax.core.intensity import normalize_sem  # noqa: E402
from socseg_jax.core.scores import confusion_matrix as confusion  # noqa: E402

SETTINGS = {
    "default": {},
    "SEM dose x3.3 (noise sigma 0.065 -> 0.035)": {"sem_dose": 400.0},
    "EDS 4x coarser than SEM": {"eds_downsample": 4},
    "EDS 8x coarser, 3 px interaction blur": {"eds_downsample": 8, "eds_blur_px": 3.0},
}
OXIDATION_MIN = (5, 20, 60, 120)
CEILING_TRAIN_PX = 60_000  # class-balanced training pixels of the supervised forest
SCRIBBLE_STROKES = 80  # strokes of up to 30 px per image, shared by the phases present


def _iou(cm: np.ndarray) -> list[float]:
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return [round(float(v), 4) for v in inter / np.maximum(union, 1)]


def _sample(overrides: dict, size: int, seed: int, minutes: float):
    """Simulate one sample and run registration and stage (a) on it."""
    params = dataclasses.replace(
        SimulationParams(
            shape=(size, size), oxidation_min=minutes, max_drift_px=8.0, max_rotation_deg=2.0
        ),
        **overrides,
    )
    sim = simulate_sample(params, seed)
    sem = normalize_sem(sim.sem)
    aligned, _ = register_eds(sem, sim.eds)
    evidence = eds_evidence(sem, aligned)
    stage_a, conf = eds_labels(sem, aligned, evidence=evidence)
    return sim.phases, sem, evidence, stage_a, conf


def _ceiling_forest(train: list, seed: int):
    """A larger version of the ``forest`` refinement's classifier (its features, twice the
    trees, 4 levels deeper), trained on the true phases instead of stage (a)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    per = CEILING_TRAIN_PX // (len(train) * 4)
    for truth, sem, evidence, stage_a, _ in train:
        flat_truth = truth.ravel()
        feats = pixel_features(sem, evidence, stage_a).reshape(flat_truth.size, -1)
        for cls in range(4):
            idx = np.flatnonzero(flat_truth == cls)
            if idx.size:
                pick = rng.choice(idx, min(per, idx.size), replace=False)
                xs.append(feats[pick])
                ys.append(flat_truth[pick])
    forest = RandomForestClassifier(
        n_estimators=REFINE_TREES * 2,
        max_depth=REFINE_DEPTH + 4,
        min_samples_leaf=3,
        max_features="sqrt",
        n_jobs=2,
        random_state=seed,
    )
    return forest.fit(np.concatenate(xs), np.concatenate(ys))


def run_setting(name: str, overrides: dict, size: int, n_test: int, n_train: int) -> dict:
    """Pooled per-class and mean IoU of every labeller for one simulator setting."""
    start = time.perf_counter()
    times = [OXIDATION_MIN[i % len(OXIDATION_MIN)] for i in range(max(n_test, n_train))]
    test = [_sample(overrides, size, 1000 + i, times[i]) for i in range(n_test)]
    train = [_sample(overrides, size, 2000 + i, times[i]) for i in range(n_train)]
    forest = _ceiling_forest(train, seed=0)
    kinds = ("stage_a", "mean_field", "forest", "scribbles", "ceiling")
    pooled = {k: np.zeros((4, 4), np.int64) for k in kinds}
    scribbled_px = 0
    for i, (truth, sem, evidence, stage_a, conf) in enumerate(test):
        mf, _ = refine_mean_field(sem, evidence, stage_a, conf)
        rf, _ = refine_forest(sem, evidence, stage_a, conf, seed=0)
        marks = simulate_scribbles(truth, SCRIBBLE_STROKES, seed=1000 + i)
        scribbled_px += int((marks > 0).sum())
        sc, _, _ = label_from_scribbles(sem, evidence, stage_a, conf, marks, seed=0)
        feats = pixel_features(sem, evidence, stage_a).reshape(truth.size, -1)
        ceiling = forest.predict(feats).reshape(truth.shape).astype(np.uint8)
        for key, pred in (
            ("stage_a", stage_a),
            ("mean_field", mf),
            ("forest", rf),
            ("scribbles", sc),
        ):
            pooled[key] += confusion(truth, pred)
        pooled["ceiling"] += confusion(truth, ceiling)
    result = {
        k: {"mean_iou": round(float(np.mean(_iou(cm))), 4), "per_class_iou": _iou(cm)}
        for k, cm in pooled.items()
    }
    result["overrides"] = overrides
    result["scribbled_px_per_image"] = scribbled_px // max(len(test), 1)
    result["seconds"] = round(time.perf_counter() - start, 1)
    row = "  ".join(f"{k} {result[k]['mean_iou']:.4f}" for k in pooled)
    print(f"{name:<45} {row}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--test-samples", type=int, default=4)
    parser.add_argument("--train-samples", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "label_quality.json")
    args = parser.parse_args()
    results = {
        "size": args.size,
        "test_samples": args.test_samples,
        "train_samples_of_ceiling": args.train_samples,
        "oxidation_min": list(OXIDATION_MIN),
        "settings": {
            name: run_setting(name, o, args.size, args.test_samples, args.train_samples)
            for name, o in SETTINGS.items()
        },
    }
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
