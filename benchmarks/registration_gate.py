"""Distribution of the EDS registration quality for correct and for wrong registrations.

Why (issue #12): the gate ``prepare.min_registration_quality`` must refuse maps that do not
belong where they are put, on any microscope, and never refuse good ones. We simulate runs of
samples (seeds, drift up to 8 px, EDS grids 2-8x coarser, rotation up to 2 deg, a data bar of
5-12 % of the height in either convention) and register each sample's maps as prepare does
(``auto``: both conventions, the better kept) and four wrong ways: the wrong bar convention
forced, the maps of another sample, the maps rolled by half the width, the maps transposed.
Per run we also compute each quality's deficit from the run's median in robust spreads
(1.4826 MAD of the correct qualities) and its ratio to the median: what the run-level outlier
check (``prepare.registration_outliers``) reads.

    python benchmarks/registration_gate.py [--runs 6] [--per-run 8] [--size 360]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOWNSAMPLES = (2, 3, 4, 5, 6, 8)
KINDS = ("correct", "wrong_convention", "other_sample", "rolled_half", "transposed")


def _register(sem, eds, frames):
    from data_prep.registration.maps import register_eds

    return register_eds(sem, eds, min_quality=-1.0, frames=frames)[1]


def _error_px(result, sim, shape) -> float:
    """Largest error (SEM px, image corners and centre) of the registration vs the truth."""
    th = np.radians(sim.rotation_deg)
    a = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    c = (np.array(sim.sem.shape) - 1) / 2  # the simulated frame: the maps cover all of it
    true = np.concatenate([a, (c - a @ c + a @ np.array(sim.drift_yx))[:, None]], 1)
    h, w = shape
    pts = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1], [h / 2, w / 2]], float)
    diff = np.asarray(result.matrix) - true
    return float(np.abs(pts @ diff[:, :2].T + diff[:, 2]).max())


def _sample(run: int, i: int, size: int, rng: np.random.Generator):
    """One simulated sample of run ``run``: (normalised SEM above the bar, the simulation,
    candidate frames, true convention)."""
    from data_prep.readers.data_bar import crop_data_bar
    from data_prep.synthetic import SimulationParams, add_data_bar, simulate_sample
    from socseg_jax.core.intensity import normalize_sem

    ds = DOWNSAMPLES[run % len(DOWNSAMPLES)]
    p = SimulationParams(
        shape=(size, size), eds_downsample=ds, max_drift_px=8.0, max_rotation_deg=2.0,
        oxidation_min=float(rng.choice([0, 2, 5, 10, 20, 30, 120])), eds_blur_px=1.0 + 0.5 * ds,
    )
    s = simulate_sample(p, 1000 * run + i)
    bar = int(rng.uniform(0.05, 0.12) * size)
    convention = "overlay" if i % 2 else "appended"
    frame = s.sem[: size - bar] if convention == "overlay" else s.sem
    sem, rows = crop_data_bar(add_data_bar(frame, bar, i), "auto")
    h, w = sem.shape
    frames = {"overlay": (h + rows, w), "appended": (h, w)}
    return normalize_sem(sem), s, frames, convention


def _run(run: int, per_run: int, size: int) -> dict[str, list]:
    """Qualities of every kind for the samples of one run, plus the correct ones' errors and
    conventions picked (true, found)."""
    rng = np.random.default_rng(run)
    samples = [_sample(run, i, size, rng) for i in range(per_run)]
    out: dict[str, list] = {k: [] for k in KINDS} | {"error_px": [], "picked": []}
    for i, (sem, sim, frames, convention) in enumerate(samples):
        eds = sim.eds
        wrong = "appended" if convention == "overlay" else "overlay"
        res = _register(sem, eds, frames)
        out["correct"].append(res.quality)
        out["error_px"].append((convention, _error_px(res, sim, sem.shape)))
        out["picked"].append((convention, res.frame))
        out["wrong_convention"].append(_register(sem, eds, {wrong: frames[wrong]}).quality)
        other = samples[(i + 1) % per_run][1].eds
        out["other_sample"].append(_register(sem, other, frames).quality)
        rolled = {k: np.roll(m, m.shape[1] // 2, axis=1) for k, m in eds.items()}
        out["rolled_half"].append(_register(sem, rolled, frames).quality)
        transposed = {k: m.T for k, m in eds.items()}
        out["transposed"].append(_register(sem, transposed, frames).quality)
    return out


def _refused_fraction(runs: list[dict[str, list]], margin: float | None = None) -> dict:
    """Per kind: the fraction of samples the gate plus the run-level check (configs/sections.py
    defaults, or another ``margin``) refuse, one wrong sample put in a run of correct ones at
    a time."""
    from configs.sections import prepare_config  # this checkout's defaults
    from data_prep.registration.gate import quality_outliers

    cfg = prepare_config()
    gate = cfg.min_registration_quality
    args = (cfg.registration_outlier_spreads,
            cfg.registration_outlier_margin if margin is None else margin)
    out = {}
    for kind in KINDS:
        refused = total = 0
        for r in runs:
            for i, q in enumerate(r[kind]):
                qs = {str(j): v for j, v in enumerate(r["correct"])} | {str(i): q}
                refused += q < gate or str(i) in quality_outliers(qs, *args)
                total += 1
        out[kind] = round(refused / total, 4)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values)
    q = np.percentile(v, [1, 5, 50, 95, 99])
    return {"n": int(v.size), "min": round(float(v.min()), 4), "p1": round(float(q[0]), 4),
            "p5": round(float(q[1]), 4), "median": round(float(q[2]), 4),
            "p95": round(float(q[3]), 4), "p99": round(float(q[4]), 4),
            "max": round(float(v.max()), 4)}


def _outlier_stats(runs: list[dict[str, list[float]]]) -> dict[str, dict[str, dict]]:
    """Per kind: deficit from the run's median in robust spreads, and ratio to the median."""
    z: dict[str, list[float]] = {k: [] for k in KINDS}
    ratio: dict[str, list[float]] = {k: [] for k in KINDS}
    for r in runs:
        good = np.asarray(r["correct"])
        med = float(np.median(good))
        spread = 1.4826 * float(np.median(np.abs(good - med)))
        for k in KINDS:
            for q in r[k]:
                z[k].append((med - q) / max(spread, 1e-6))
                ratio[k].append(q / med)
    return {"deficit_in_spreads": {k: _stats(v) for k, v in z.items()},
            "ratio_to_median": {k: _stats(v) for k, v in ratio.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--per-run", type=int, default=8)
    parser.add_argument("--size", type=int, default=360)  # a multiple of every grid
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "registration_gate.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from socseg_jax.runtime.cpu_record import cpu_summary

    t = time.perf_counter()
    runs = [_run(r, args.per_run, args.size) for r in range(args.runs)]
    pooled = {k: [q for r in runs for q in r[k]] for k in KINDS}
    errors = {c: [e for r in runs for cc, e in r["error_px"] if cc == c]
              for c in ("overlay", "appended")}
    picked = [p for r in runs for p in r["picked"]]
    result = {
        "size": args.size, "runs": args.runs, "per_run": args.per_run,
        "eds_downsample_per_run": [DOWNSAMPLES[r % len(DOWNSAMPLES)] for r in range(args.runs)],
        "quality": {k: _stats(v) for k, v in pooled.items()},
        "per_run_correct": [_stats(r["correct"]) for r in runs],
        "correct_error_px": {c: _stats(v) for c, v in errors.items()},
        "convention_right": round(float(np.mean([t == f for t, f in picked])), 4),
        "correct_error_px_by_grid": {
            str(DOWNSAMPLES[r % len(DOWNSAMPLES)]): _stats([e for _, e in run["error_px"]])
            for r, run in enumerate(runs)
        },
        "refused_fraction": _refused_fraction(runs),
        "refused_fraction_by_margin": {
            str(m): _refused_fraction(runs, m) for m in (0.03, 0.05, 0.07, 0.1)
        },
        "qualities": [{k: [round(q, 4) for q in r[k]] for k in KINDS} for r in runs],
        "run_level": _outlier_stats(runs),
        "seconds": round(time.perf_counter() - t, 1),
        "cpu": cpu_summary(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    keys = ("quality", "correct_error_px", "correct_error_px_by_grid", "convention_right",
            "refused_fraction", "refused_fraction_by_margin")
    print(json.dumps({k: result[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
