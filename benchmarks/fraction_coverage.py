"""How often the phase-fraction interval of `segment` holds the true fraction (issue #29 item 4),
and where the composition check (item 5) warns.

The quickstart's model (``generalisation.train_model``: simulated default-preset data at 5-120
min, EDS-guided labels, acquisition augmentation on, the quickstart's steps; reused from
``--workdir`` when trained) segments oxidation series 0, 2, 5, 10, 20, 30, 120 min simulated
with seeds from ``SEED0`` = 91_000 up (no training, tuning or other benchmark uses them): per
series one seed, so one microstructure and one physics oxidised to every time, as a real
series. Presets: ``default`` (the training physics; 0 and 2 min lie outside the training
times) and ``randomised`` (``data_prep/synthetic/randomised.py``: every knob drawn, a
microscope and sample the model was not tuned on; its data bars are switched off so the
fractions measure the segmentation only). Segmented by the real segment job (configs/segment.py
defaults, the model's shift reference, tta as given). Per image and phase: is the true
fraction (the simulator's phases) inside <phase>_percent ± <phase>_percent_unc? Reported:
coverage over image-phase pairs and over images (all four phases inside), per preset, for
the images the shift/composition checks left unflagged and for the flagged ones, the mean
half-width, and which images were warned; and per image the spread of the fractions over
the 4 TTA flips and over 6 MC-dropout passes (what an interval built on them would add).
Writes benchmarks/fraction_coverage.json.

    python benchmarks/fraction_coverage.py [--series 2] [--tta flips none] [--workdir DIR]
        [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generalisation import (  # noqa: E402
    ACQUISITION_PARTS,
    prepare_training_data,
    train_model,
)
from socseg_jax.configs.quickstart import get_config as quickstart_config  # noqa: E402
from socseg_jax.configs.segment import get_config as segment_config  # noqa: E402

from data_prep.synthetic import simulate_sample  # noqa: E402
from data_prep.synthetic.randomised import DEFAULT_OXIDATION_TIMES, PRESETS  # noqa: E402
from socseg_jax.core.phases import CLASS_NAMES, label_fractions  # noqa: E402
from socseg_jax.inference.archive import ImageJob  # noqa: E402
from socseg_jax.inference.image_input import load_image, resolve_normalisation  # noqa: E402
from socseg_jax.inference.loading import build_predictor, load_models  # noqa: E402
from socseg_jax.inference.outputs import FRACTION_FIELDS, UNCERTAINTY_FIELDS  # noqa: E402
from socseg_jax.inference.shift import read_reference  # noqa: E402
from socseg_jax.jobs import segment  # noqa: E402
from socseg_jax.runtime.cpu_record import cpu_info  # noqa: E402
from socseg_jax.training.shift_reference import write_shift_reference  # noqa: E402

log = logging.getLogger("fraction_coverage")

SEED0 = 91_000
MC_PASSES = 6
SERIES_OVERRIDES = {"default": {}, "randomised": {"data_bar": "none", "data_bar_rows": 0}}


def model_with_reference(work: Path, steps: int) -> Path:
    """The quickstart's model in <work>/train/aug (as generalisation.py's, so a workdir can
    serve both; other step counts in aug_<steps>steps), its shift reference (re)written when
    it lacks the composition entry (a run trained before it existed)."""
    prepare_training_data(work)
    name = "aug" if steps == quickstart_config().num_train_steps else f"aug_{steps}steps"
    train_model(work, name, ACQUISITION_PARTS, steps)
    train_dir = work / "train" / name
    if "class_bias" not in (read_reference(train_dir) or {}):  # an older format
        config = quickstart_config()
        write_shift_reference(train_dir, str(work / "data"), config.shift_reference_images,
                              config.predict)
    return train_dir


def write_series(work: Path, preset: str, num_series: int, times: tuple[float, ...],
                 shape: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """SEM TIFFs of the preset's series under <work>/coverage/<preset>/; returns
    image path -> {series, seed, time_min, true_pct}."""
    folder = work / "coverage" / preset
    folder.mkdir(parents=True, exist_ok=True)
    items = {}
    for s in range(num_series):
        seed = SEED0 + s
        for t in times:
            params = PRESETS[preset].params(seed, shape, oxidation_min=t,
                                            **SERIES_OVERRIDES[preset])
            sample = simulate_sample(params, seed)
            path = folder / f"series{s}_ox{t:g}.tif"
            tifffile.imwrite(path, sample.sem)
            items[str(path)] = {"series": s, "seed": seed, "time_min": t,
                                "true_pct": [round(v, 3) for v in label_fractions(sample.phases)]}
    return items


def segment_preset(work: Path, train_dir: Path, preset: str, tta: str) -> dict[str, dict]:
    """Summary rows (by input path) of the segment job over the preset's series."""
    config = segment_config()
    config.input = str(work / "coverage" / preset)
    config.output_dir = str(work / "segment" / f"{preset}_{tta}")
    config.checkpoint = str(train_dir)
    config.predict.tta = tta
    config.overwrite = True
    segment.run(config, None)
    with open(Path(config.output_dir) / "summary.csv", newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def pass_spread(train_dir: Path, paths: list[str]) -> dict[str, Any]:
    """Standard deviation (pp) of each phase fraction over the 4 flip passes of TTA and over
    ``MC_PASSES`` Monte-Carlo dropout passes, per image: what a TTA- or MC-based interval
    would add to the half-width."""
    config = segment_config()
    normalisation = resolve_normalisation("auto", str(train_dir))
    models = load_models(str(train_dir))
    plain = build_predictor(models, config.predict)
    config.predict.mc_samples = 1
    dropout = build_predictor(models, config.predict)

    def fractions(predictor: Any, image: np.ndarray) -> list[float]:
        return label_fractions(predictor.predict_maps(image, ("labels",))["labels"])

    images: dict[str, Any] = {}
    for path in paths:
        job = ImageJob(Path(path), Path(Path(path).name))
        image, _ = load_image(job, config, normalisation=normalisation)
        flips = [fractions(plain, np.ascontiguousarray(image[::sy, ::sx]))
                 for sy in (1, -1) for sx in (1, -1)]
        mc = []
        for seed in range(MC_PASSES):
            dropout.seed = seed
            mc.append(fractions(dropout, image))
        images[job.relative.name] = {
            "tta_std_pp": np.round(np.std(flips, axis=0, ddof=1), 3).tolist(),
            "mc_std_pp": np.round(np.std(mc, axis=0, ddof=1), 3).tolist()}
    largest = {f"max_{kind}": max(max(v[kind]) for v in images.values())
               for kind in ("tta_std_pp", "mc_std_pp")}
    return {**largest, "images": images}


def score(items: dict[str, dict[str, Any]], rows: dict[str, dict]) -> dict[str, Any]:
    """Per image: fractions, half-widths, inside or not, warnings; coverage summaries."""
    images = []
    for path, item in items.items():
        row = rows[path]
        if row["status"] != "ok":
            raise RuntimeError(f"segment failed on {path}: {row['reason']}")
        pred = [float(row[f]) for f in FRACTION_FIELDS]
        unc = [float(row[f]) for f in UNCERTAINTY_FIELDS]
        inside = [abs(p - t) <= u for p, t, u in zip(pred, item["true_pct"], unc, strict=True)]
        images.append({**item, "path": Path(path).name, "pred_pct": pred, "unc_pct": unc,
                       "inside": inside, "warning": row["warning"],
                       "shift_score": float(row["shift_score"])})
    out: dict[str, Any] = {"all": _coverage(images)}
    out["unflagged"] = _coverage([i for i in images if not i["warning"]])
    out["flagged"] = _coverage([i for i in images if i["warning"]])
    out["composition_warned_by_time"] = {
        f"{t:g}": sum("composition" in i["warning"] for i in images if i["time_min"] == t)
        for t in sorted({i["time_min"] for i in images})}
    out["images"] = images
    return out


def _coverage(images: list[dict[str, Any]]) -> dict[str, Any]:
    if not images:
        return {"images": 0}
    inside = np.array([i["inside"] for i in images])
    unc = np.array([i["unc_pct"] for i in images])
    err = np.abs(np.array([i["pred_pct"] for i in images])
                 - np.array([i["true_pct"] for i in images]))
    return {
        "images": len(images),
        "pair_coverage": round(float(inside.mean()), 3),
        "image_coverage_all_phases": round(float(inside.all(axis=1).mean()), 3),
        "per_phase_coverage": dict(zip(CLASS_NAMES, np.round(inside.mean(0), 3).tolist(),
                                       strict=True)),
        "mean_half_width_pp": dict(zip(CLASS_NAMES, np.round(unc.mean(0), 2).tolist(),
                                       strict=True)),
        "mean_abs_error_pp": dict(zip(CLASS_NAMES, np.round(err.mean(0), 2).tolist(),
                                      strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=quickstart_config().num_train_steps)
    parser.add_argument("--series", type=int, default=2, help="oxidation series per preset")
    parser.add_argument("--presets", nargs="+", choices=tuple(SERIES_OVERRIDES),
                        default=list(SERIES_OVERRIDES))
    parser.add_argument("--tta", nargs="+", default=["flips", "none"],
                        help="segment's predict.tta (flips: as the quickstart's reference)")
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--quick", action="store_true",
                        help="150 steps, one series of 0, 5 and 120 min, tta flips")
    parser.add_argument("--workdir", default="", help="kept (and reused); default: a temp dir")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "fraction_coverage.json"))
    args = parser.parse_args()
    times = tuple(DEFAULT_OXIDATION_TIMES)
    if args.quick:
        args.steps, args.series, args.tta, times = 150, 1, ["flips"], (0.0, 5.0, 120.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="socseg_coverage_") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        train_dir = model_with_reference(work, args.steps)
        reference = read_reference(train_dir) or {}
        for preset in args.presets:
            items = write_series(work, preset, args.series, times, tuple(args.shape))
            for tta in args.tta:
                results[f"{preset}_tta_{tta}"] = score(
                    items, segment_preset(work, train_dir, preset, tta))
            results[f"{preset}_pass_spread"] = pass_spread(train_dir, list(items))
    result = {
        "command": " ".join(["python", "benchmarks/fraction_coverage.py", *sys.argv[1:]]),
        "steps": args.steps, "series_per_preset": args.series, "times_min": list(times),
        "shape": list(args.shape), "seeds": [SEED0, SEED0 + args.series - 1],
        "reference_composition": reference.get("composition"),
        "reference_images": reference.get("num_images"),
        "cpu": cpu_info(), "total_wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for name, r in results.items():
        if name.endswith("_pass_spread"):
            print(f"{name:24s} largest std over passes: TTA {r['max_tta_std_pp']:.2f} pp, "
                  f"MC dropout {r['max_mc_std_pp']:.2f} pp")
            continue
        for part in ("all", "unflagged", "flagged"):
            c = r[part]
            if c["images"]:
                print(f"{name:24s} {part:9s} n={c['images']:2d} pairs {c['pair_coverage']:.2f} "
                      f"images {c['image_coverage_all_phases']:.2f} "
                      f"half-width {c['mean_half_width_pp']} error {c['mean_abs_error_pp']}")
        print(f"{name:24s} composition warnings by time {r['composition_warned_by_time']}")
    print(f"wall {result['total_wall_seconds']:.0f} s on {result['cpu']['model_name']}")


if __name__ == "__main__":
    main()
