"""Phase fractions along an oxidation series, 0 -> 120 min, at the composition extremes.

Issue #29. A model trained by the quickstart's recipe (its 14 simulated samples, 900 steps,
batch 8, 128-px patches, CE + Dice, acquisition augmentation) segments oxidation series of
the randomised simulator (``data_prep/synthetic/randomised.py``): per simulator seed one
physics and one microstructure, simulated at every time of ``TIMES`` (0 min: no NiO at all).
The grey order is held at the training data's (NiO < Ni < YSZ; a model cannot learn which
grey is which phase from a permuted order) and no data bar is drawn; every other knob is
drawn from the randomised ranges. Series seeds ``SERIES_SEED0`` = 90_000 and up are the
reported bed; ``--tuning`` uses 91_000 and up (what fixes were chosen on).

Training sets differ only by the oxidation times their 14 samples cycle through
(``--train-times``, default the quickstart's: 0, 2, 5, 10, 30, 120 min, two 0-min samples in
the train split); ``--train-times 5 10 20 30 60 120`` is the quickstart before issue #29 (no
0-min sample), ``0 2 5 10 20 30 60 120`` has exactly one (the held-out composition
experiment). Each image is segmented by the segment job (configs/segment.py defaults, the
quickstart's flips TTA). Reported per image and phase: the area-fraction error (predicted -
true, percentage points), the worst image, the mean |error|, the mean IoU pooled over the
bed; diagnostics per time: the mean normalised grey level of the true Ni pixels and the
share of true Ni predicted as YSZ / NiO. Writes JSON (``--output``) and prints a table.
``--teacher truth`` trains on the simulator's true phases instead of the EDS-derived labels
(prepare given them as labels files): what the recipe reaches with a perfect teacher.

    python benchmarks/oxidation_series.py [--train-times 5 10 20 30 60 120] [--seed N]
        [--series 3] [--tuning] [--quick] [--workdir DIR] [--predict-window PX STRIDE]
        [--teacher truth]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from socseg_jax.configs.quickstart import get_config as quickstart_config  # noqa: E402
from socseg_jax.configs.segment import get_config as segment_config  # noqa: E402

from data_prep import synthetic  # noqa: E402
from data_prep.prepare.run import prepare  # noqa: E402
from socseg_jax.core.intensity import normalize_sem  # noqa: E402
from socseg_jax.core.phases import CLASS_NAMES, NI, NIO, YSZ  # noqa: E402
from socseg_jax.core.scores import confusion_matrix, segmentation_scores  # noqa: E402
from socseg_jax.inference.outputs import UNCERTAINTY_FIELDS  # noqa: E402
from socseg_jax.inference.shift import read_reference  # noqa: E402
from socseg_jax.jobs import segment  # noqa: E402
from socseg_jax.runtime.cpu_record import cpu_info  # noqa: E402
from socseg_jax.training.shift_reference import write_shift_reference  # noqa: E402
from socseg_jax.training.train import train_and_evaluate  # noqa: E402

log = logging.getLogger("oxidation_series")

TIMES = (0, 2, 5, 10, 20, 30, 120)
SERIES_SEED0 = 90_000  # reported bed; no training, test or other benchmark uses 90_000+
TUNING_SEED0 = 91_000  # what fixes were chosen on (never reported as the bed)
IN_DOMAIN_SEED0 = 70_000  # benchmarks/generalisation.py's TEST_SEED0
# ``full``: the randomised ranges with the training data's grey order and no data bar.
# ``composition`` (default): besides, the grey levels of the default preset (pore 0.10, solids
# 0.40 / 0.55 / 0.70): the sample (particle size, porosity, Ni share, oxide law, rate,
# roughness, outward growth) and the acquisition (noise, blur, gradient, bit depth, gain,
# grain contrast, edges) stay randomised. Under ``full`` the quickstart's model, trained on
# one grey-level set, misreads pores as NiO at every time (physics, not composition).
# ``default`` (not a range): the default preset's fixed physics, composition alone varies.
_FULL = {**synthetic.DEFAULT_RANGES, "grey_order": ("choice", ((NIO, NI, YSZ),)),
         "data_bar": ("choice", ("none",))}
PHYSICS = {
    "full": _FULL,
    "composition": {**_FULL, "pore_level": ("uniform", 0.10, 0.10),
                    "pore_gap": ("uniform", 0.30, 0.30), "solid_step": ("uniform", 0.15, 0.15)},
}
MAX_ERROR_PP = 1.5  # acceptance: every phase of every image
MAX_MEAN_ERROR_PP = 1.0  # acceptance: mean |error| over images and phases


def times_name(times: tuple[float, ...]) -> str:
    return "ox" + "-".join(f"{t:g}" for t in times)


def prepare_training_data(work: Path, times: tuple[float, ...],
                          teacher: str = "eds") -> tuple[Path, dict]:
    """The quickstart's simulate + prepare with its samples cycling through ``times``, into
    <work>/<times>[_truth-teacher]/ (kept and reused); returns (data dir, prepare report).

    ``teacher``: ``eds``, the labels prepare derives from the EDS maps (the product), or
    ``truth``, the simulator's true phases given to prepare as each sample's labels file:
    the ceiling of a model that learns from perfect labels, all else equal."""
    config = quickstart_config()
    root = work / (times_name(times) + ("" if teacher == "eds" else f"_{teacher}-teacher"))
    raw, data = root / "raw", root / "data"
    report = data / "prepare_report.json"
    if report.is_file():
        return data, json.loads(report.read_text())
    synthetic.write_raw_dataset(raw, num_samples=config.synthetic.num_samples, seed=config.seed,
                                shape=tuple(config.synthetic.shape), oxidation_times=times)
    if teacher == "truth":
        for truth in raw.glob("*/truth.tif"):
            shutil.copyfile(truth, truth.with_name("labels.tif"))
    return data, prepare(raw, data, config.prepare, seed=config.seed)


def train(work: Path, times: tuple[float, ...], seed: int, steps: int,
          overrides: dict[str, Any], teacher: str = "eds") -> tuple[Path, dict[str, Any]]:
    """The quickstart's training (``overrides`` of its config keys) on ``times``' data
    labelled by ``teacher`` (``prepare_training_data``) into
    <work>/<times>[_<teacher>-teacher]/train_seed<seed>[_<overrides>] (reused when complete)."""
    data, prepared = prepare_training_data(work, times, teacher)
    # (no commas: segment reads a comma as a list of checkpoints)
    suffix = re.sub(r"[^\w.=-]", "", "".join(f"_{k}{v}" for k, v in sorted(overrides.items())))
    train_dir = data.parent / f"train_seed{seed}_steps{steps}{suffix}"
    done = train_dir / "train_result.json"
    if not done.is_file():
        config = quickstart_config()
        config.dataset_dir, config.seed, config.num_train_steps = str(data), seed, steps
        config.checkpoint_every_steps = min(config.checkpoint_every_steps, steps)
        config.eval_every_steps = min(config.eval_every_steps, steps)
        for key, value in overrides.items():
            config[key] = value
        train_and_evaluate(config, train_dir)
    elif "class_bias" not in (read_reference(train_dir) or {}):  # trained before #29's calibration
        config = quickstart_config()
        write_shift_reference(train_dir, str(data), config.shift_reference_images,
                              config.predict, seed)
    return train_dir, {**json.loads(done.read_text()), "train_samples": prepared["splits"]["train"]}


def series_specs(seed0: int, n_series: int, shape: tuple[int, int],
                 physics: str) -> list[dict]:
    """The oxidation series: per simulator seed one physics (``physics``: PHYSICS' ranges or
    the ``default`` preset's fixed point) at every time."""
    def params(seed: int, t: float) -> synthetic.SimulationParams:
        if physics == "default":
            return synthetic.SimulationParams(shape=shape, oxidation_min=t)
        return synthetic.random_params(synthetic.param_seed(seed), PHYSICS[physics], shape, t)

    return [{"stem": f"series{seed0 + k}_ox{t:g}", "seed": seed0 + k, "time_min": t,
             "params": params(seed0 + k, float(t))} for k in range(n_series) for t in TIMES]


def in_domain_specs(n: int, shape: tuple[int, int]) -> list[dict]:
    """benchmarks/generalisation.py's in-domain set: the default preset, seeds 70_000 + i,
    times cycling through the (old) quickstart's 5-120 min."""
    times = (5, 10, 20, 30, 60, 120)
    return [{"stem": f"img_{i:02d}_ox{times[i % 6]:g}", "seed": IN_DOMAIN_SEED0 + i,
             "time_min": times[i % 6],
             "params": synthetic.SimulationParams(shape=shape, oxidation_min=float(times[i % 6]))}
            for i in range(n)]


def write_images(folder: Path, specs: list[dict]) -> list[dict]:
    """Every image's SEM under <folder>/sem and truth under <folder>/truth (reused)."""
    items = []
    for spec in specs:
        sem_path = folder / "sem" / f"{spec['stem']}.tif"
        truth_path = folder / "truth" / f"{spec['stem']}.tif"
        if not truth_path.is_file():
            sample = synthetic.simulate_sample(spec["params"], spec["seed"])
            for p, a in ((sem_path, sample.sem), (truth_path, sample.phases)):
                p.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(p, a)
        items.append({k: spec[k] for k in ("stem", "seed", "time_min")}
                     | {"sem": sem_path, "truth": truth_path})
    return items


def segment_folder(folder: Path, train_dir: Path, out: Path,
                   window: tuple[int, int] | None) -> None:
    """The segment job over <folder>/sem with the trained model (the quickstart's TTA)."""
    config = segment_config()
    config.input, config.output_dir = str(folder / "sem"), str(out)
    config.checkpoint, config.overwrite = str(train_dir), True
    config.predict.tta = quickstart_config().predict.tta
    if window:
        config.predict.patch_size, config.predict.stride = window
    segment.run(config, None)
    with open(out / "summary.csv", newline="") as f:
        failed = [r for r in csv.DictReader(f) if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"segment failed: {failed}")


def score_images(items: list[dict], out: Path) -> dict[str, Any]:
    """Per image and phase fraction errors (pp), worst image, pooled IoU, Ni diagnostics, and
    how often summary.csv's interval (``<phase>_percent_unc``) holds the true fraction."""
    cm_all = np.zeros((4, 4), np.int64)
    rows = []
    with open(out / "summary.csv", newline="") as f:
        summary = {Path(r["path"]).stem: r for r in csv.DictReader(f)}
    for item in items:
        truth = tifffile.imread(item["truth"]).astype(np.int64)
        pred = tifffile.imread(out / f"{item['stem']}_labels.tif").astype(np.int64)
        cm = confusion_matrix(truth, pred)
        cm_all += cm
        n = cm.sum()
        true_f, pred_f = 100.0 * cm.sum(1) / n, 100.0 * cm.sum(0) / n
        grey = normalize_sem(tifffile.imread(item["sem"]))
        ni = truth == NI
        half_width = np.array([float(summary[item["stem"]][k]) for k in UNCERTAINTY_FIELDS])
        rows.append({
            "image": item["stem"], "seed": item["seed"], "time_min": item["time_min"],
            "true_percent": _r(true_f), "error_pp": _r(pred_f - true_f),
            "half_width_pp": _r(half_width),
            "inside": [bool(v) for v in np.abs(pred_f - true_f) <= half_width],
            "ni_as_ysz": round(float(cm[NI, YSZ] / max(cm[NI].sum(), 1)), 4),
            "ni_as_nio": round(float(cm[NI, NIO] / max(cm[NI].sum(), 1)), 4),
            "ni_grey_normalised": round(float(grey[ni].mean()), 4),
            "mean_iou": round(float(segmentation_scores(cm)["mean_iou"]), 4),
        })
    errors = np.abs([r["error_pp"] for r in rows])
    worst = rows[int(np.argmax(errors.max(1)))]
    s = segmentation_scores(cm_all)
    by_time = {f"{t:g}": _r(np.abs([r["error_pp"] for r in rows if r["time_min"] == t]).max(0))
               for t in sorted({r["time_min"] for r in rows})}
    return {
        "images": rows,
        "max_abs_error_pp_by_time": by_time,  # per phase, over the series seeds
        "worst_image": {"image": worst["image"], "error_pp": worst["error_pp"]},
        "max_abs_error_pp": round(float(errors.max()), 3),
        "mean_abs_error_pp": round(float(errors.mean()), 3),
        "mean_abs_error_pp_per_phase": _r(errors.mean(0)),
        "mean_iou": round(float(s["mean_iou"]), 4),
        "per_class_iou": _r(s["per_class_iou"], 4),
        # the interval f ± h holds the true fraction: share of (image, phase) values, and
        # share of images where it holds for every phase
        "interval_coverage": round(float(np.mean([r["inside"] for r in rows])), 3),
        "interval_coverage_all_phases": round(float(np.mean([all(r["inside"]) for r in rows])),
                                              3),
        "every_phase_within_1.5pp": bool(errors.max() <= MAX_ERROR_PP),
        "mean_within_1pp": bool(errors.mean() <= MAX_MEAN_ERROR_PP),
    }


def _r(values: Any, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values]


def table(score: dict[str, Any]) -> str:
    """Markdown: the worst |error| per phase at every time, then the summary line."""
    lines = ["| time (min) | " + " | ".join(f"{c} max abs err pp" for c in CLASS_NAMES)
             + " | Ni->YSZ (mean) |", "|---" * 6 + "|"]
    for t, errs in score["max_abs_error_pp_by_time"].items():
        ni_ysz = np.mean([r["ni_as_ysz"] for r in score["images"] if f"{r['time_min']:g}" == t])
        lines.append(f"| {t} | " + " | ".join(f"{e:.2f}" for e in errs)
                     + f" | {ni_ysz:.3f} |")
    lines.append(f"\nmean |err| {score['mean_abs_error_pp']:.2f} pp, max "
                 f"{score['max_abs_error_pp']:.2f} pp ({score['worst_image']['image']}), "
                 f"mIoU {score['mean_iou']:.4f}, interval coverage "
                 f"{score['interval_coverage']:.0%} ({score['interval_coverage_all_phases']:.0%}"
                 " of the images for every phase)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-times", type=float, nargs="+",
                        default=list(quickstart_config().synthetic.oxidation_times),
                        help="oxidation times the 14 training samples cycle through")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--steps", type=int, default=quickstart_config().num_train_steps)
    parser.add_argument("--series", type=int, default=3, help="simulator seeds (series)")
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--in-domain", type=int, default=8,
                        help="images of generalisation.py's in-domain set also scored")
    parser.add_argument("--physics", choices=(*PHYSICS, "default"), default="composition",
                        help="what the series' simulator randomises (see PHYSICS)")
    parser.add_argument("--tuning", action="store_true", help="the tuning seeds, not the bed")
    parser.add_argument("--quick", action="store_true", help="150 steps, 1 series of 256 px")
    parser.add_argument("--predict-window", type=int, nargs=2, default=None,
                        metavar=("PX", "STRIDE"), help="inference windows (default: segment's)")
    parser.add_argument("--train-override", nargs="*", default=[], metavar="KEY=JSON",
                        help="quickstart config keys to change, e.g. loss='\"cross_entropy\"'")
    parser.add_argument("--teacher", choices=("eds", "truth"), default="eds",
                        help="labels trained on: from the EDS maps (prepare), or the true "
                             "phases (a ceiling)")
    parser.add_argument("--workdir", default="", help="kept (and reused); default: a temp dir")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "oxidation_series.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.series, args.shape = 150, 1, (256, 256)
    overrides = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.train_override)}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.perf_counter()
    seed0 = TUNING_SEED0 if args.tuning else SERIES_SEED0
    times = tuple(args.train_times)
    with tempfile.TemporaryDirectory(prefix="socseg_oxidation_") as tmp:
        work = Path(args.workdir or tmp)
        t = time.perf_counter()
        train_dir, trained = train(work, times, args.seed, args.steps, overrides,
                                   args.teacher)
        train_s = time.perf_counter() - t
        window = tuple(args.predict_window) if args.predict_window else None
        model = (train_dir.parent.name + "_" + train_dir.name
                 + (f"_win{window[0]}s{window[1]}" if window else ""))
        shape = tuple(args.shape)
        sets = {"series": (f"series_{args.physics}_{seed0}_{args.series}_{shape[0]}x{shape[1]}",
                           series_specs(seed0, args.series, shape, args.physics)),
                "in_domain": (f"in_domain_{args.in_domain}_{shape[0]}x{shape[1]}",
                              in_domain_specs(args.in_domain, shape))}
        scores = {}
        for name, (sub, specs) in sets.items():
            if specs:
                items = write_images(work / sub, specs)
                segment_folder(work / sub, train_dir, work / sub / "segment" / model, window)
                scores[name] = score_images(items, work / sub / "segment" / model)
    result = {
        "command": " ".join(["python", "benchmarks/oxidation_series.py", *sys.argv[1:]]),
        "train_times": list(times), "teacher": args.teacher, "training_seed": args.seed,
        "steps": args.steps,
        "train_overrides": overrides, "train_samples": trained.get("train_samples"),
        "validation_patch_miou_vs_eds": trained.get("validation", {}).get("mean_iou"),
        "series_seeds": [seed0, seed0 + args.series - 1], "times_min": list(TIMES),
        "physics": args.physics,
        "series_ranges": {k: list(v) for k, v in PHYSICS.get(args.physics, {}).items()},
        "shape": list(args.shape), "predict_window": window,
        "cpu": cpu_info(), "train_seconds": round(train_s, 1),
        "total_wall_seconds": round(time.perf_counter() - started, 1), **scores,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for name, score in scores.items():
        print(f"\n{name}\n" + table(score))
    print(f"wall {result['total_wall_seconds']:.0f} s on {result['cpu']['model_name']}")


if __name__ == "__main__":
    main()
