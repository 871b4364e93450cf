"""Generalisation to acquisition and sample shifts, with and without the acquisition augmentation.

Issue #13 item 5. The quickstart's training data (simulated, default preset, prepared with
EDS-guided labels) trains the quickstart's U-Net twice, same seed and steps: ``no_aug`` (D4
flips/rotations only) and ``aug`` (plus ``config.acquisition``, the default: every part at the
config's default strength, or ``--aug-parts`` / ``--aug-strength`` for ablations; ``--seed``
another training seed). Test sets come from the simulator with known true phases,
seeds ``TEST_SEED0`` = 70_000 and up (no training, test or other benchmark uses them), the
same seeds in every set, so sets differ only by their shift (paired):

- ``in_domain``: the default preset; ``bit16_gain``: 16-bit, output gain 0.35, offset 0.3 and
  gamma 0.7 (not a simulator knob: simulated 16-bit with gain 1, then the signal v is
  re-digitised as offset + gain * v ** gamma); ``low_dose``: sem_dose / 4; ``blur``:
  probe_blur_px 2.5; ``fine_particles`` / ``coarse_particles``: feature_size x0.6 / x1.6;
  ``bar_overlay`` / ``bar_appended``: a 48-row data bar over the bottom rows / below.

Each set's SEM images are written as TIFF (16-bit stays 16-bit) and segmented by the real
segment job (configs/segment.py defaults: data-bar detection, normalisation, shift detector
against the model's shift_reference.json; with the quickstart's flips TTA, which the
reference was predicted with). Scores per set, pooled over its images on the
sample rows only (overlay: the rows under the bar excluded; appended: label rows below the
scanned field cropped): mean and per-class IoU vs the true phases, the NiO area-fraction
error (percentage points, mean absolute over images), shift_score and warnings per image,
and the detector's separation: AUC of shift_score against the in-domain images. Writes
benchmarks/generalisation.json and prints a markdown table.

    python benchmarks/generalisation.py [--steps 900] [--images 8] [--quick] [--workdir DIR]
        [--aug-parts PART ...] [--aug-strength PART=VALUE ...] [--seed N]
    python benchmarks/generalisation.py --ceiling [SET ...] --output generalisation_ceiling.json
    python benchmarks/generalisation.py --pool RUN.json ... --output POOLED.json

``--ceiling``: matched-domain ceilings instead (``run_ceiling``): each named set's own
physics, true phases as labels, the same recipe; writes the drop of each against in-domain.
``--pool``: the acceptance of the mean over runs of one recipe with other ``--seed``s.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from socseg_jax.configs.quickstart import get_config as quickstart_config  # noqa: E402
from socseg_jax.configs.segment import get_config as segment_config  # noqa: E402

from data_prep import synthetic  # noqa: E402
from data_prep.prepare.run import prepare  # noqa: E402
from socseg_jax.core.scores import confusion_matrix, segmentation_scores  # noqa: E402
from socseg_jax.inference.shift import read_reference  # noqa: E402
from socseg_jax.jobs import segment  # noqa: E402
from socseg_jax.runtime.cpu_record import cpu_info  # noqa: E402
from socseg_jax.training.acquisition import SETTINGS as ACQUISITION_SETTINGS  # noqa: E402
from socseg_jax.training.shift_reference import write_shift_reference  # noqa: E402
from socseg_jax.training.train import train_and_evaluate  # noqa: E402

log = logging.getLogger("generalisation")

TEST_SEED0 = 70_000
BAR_ROWS = 48
IGNORE = 255
MAX_IN_DOMAIN_COST = 0.005  # mIoU the augmentation may lose in-domain (test noise) and pass
MAX_SHIFT_DROP = 0.05  # acceptance: shifted sets within this mIoU of in-domain (aug model)
_DEFAULT = synthetic.SimulationParams()
SETS: dict[str, tuple[dict[str, Any], float]] = {  # name: (SimulationParams overrides, gamma)
    "in_domain": ({}, 1.0),
    "bit16_gain": ({"bit_depth": 16, "output_gain": 0.35, "output_offset": 0.3}, 0.7),
    "low_dose": ({"sem_dose": _DEFAULT.sem_dose / 4}, 1.0),
    "blur": ({"probe_blur_px": 2.5}, 1.0),
    "fine_particles": ({"feature_size": _DEFAULT.feature_size * 0.6}, 1.0),
    "coarse_particles": ({"feature_size": _DEFAULT.feature_size * 1.6}, 1.0),
    "bar_overlay": ({"data_bar": "overlay", "data_bar_rows": BAR_ROWS}, 1.0),
    "bar_appended": ({"data_bar": "appended", "data_bar_rows": BAR_ROWS}, 1.0),
}
MODELS = ("no_aug", "aug")
# config.acquisition keys of the parts (0 switches a part off; blur_prob is blur's rate)
ACQUISITION_PARTS = tuple(k for k in ACQUISITION_SETTINGS if k != "blur_prob")
STRENGTHS = ("apply_prob", *ACQUISITION_SETTINGS)  # what --aug-strength may set
CEILING_SETS = ("bit16_gain", "low_dose", "blur", "fine_particles")  # the sets losing most


def simulate(overrides: dict[str, Any], gamma: float, seed: int, oxidation_min: float,
             shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(SEM as written, true phases of the scanned field) of one test image."""
    params = replace(_DEFAULT, shape=shape, oxidation_min=float(oxidation_min), **overrides)
    if gamma == 1.0:
        sample = synthetic.simulate_sample(params, seed)
        return sample.sem, sample.phases
    linear = replace(params, bit_depth=16, output_gain=1.0, output_offset=0.0)
    sample = synthetic.simulate_sample(linear, seed)
    return redigitise(sample.sem, params, gamma), sample.phases


def redigitise(sem: np.ndarray, params: synthetic.SimulationParams, gamma: float) -> np.ndarray:
    """A linear (gain 1, offset 0) image re-digitised as offset + gain * v ** gamma at the
    bit depth of ``params``."""
    signal = sem.astype(np.float64) / np.iinfo(sem.dtype).max
    v = np.clip(params.output_offset + params.output_gain * signal**gamma, 0.0, 1.0)
    full = 65535.0 if params.bit_depth == 16 else 255.0
    return np.rint(v * full).astype(np.uint16 if params.bit_depth == 16 else np.uint8)


def write_test_sets(work: Path, num_images: int, shape: tuple[int, int]) -> dict[str, list]:
    """Every set's SEM TIFFs under <work>/test/<set>/ and truths under <work>/truth/<set>/;
    returns set -> [(image path, truth path, oxidation min)]."""
    times = tuple(quickstart_config().synthetic.oxidation_times)
    sets: dict[str, list] = {}
    for name, (overrides, gamma) in SETS.items():
        (work / "test" / name).mkdir(parents=True, exist_ok=True)
        (work / "truth" / name).mkdir(parents=True, exist_ok=True)
        sets[name] = []
        for i in range(num_images):
            t = times[i % len(times)]
            stem = f"img_{i:02d}_ox{t:g}"
            image = work / "test" / name / f"{stem}.tif"
            truth = work / "truth" / name / f"{stem}.tif"
            sem, phases = simulate(overrides, gamma, TEST_SEED0 + i, t, shape)
            tifffile.imwrite(image, sem)
            tifffile.imwrite(truth, phases)
            sets[name].append((image, truth, t))
    return sets


def prepare_training_data(work: Path) -> dict[str, Any]:
    """The quickstart's simulate + prepare into <work>/raw and <work>/data (kept when done)."""
    config = quickstart_config()
    raw, data = work / "raw", work / "data"
    report = data / "prepare_report.json"
    if report.is_file():
        log.info("reusing the prepared training data in %s", data)
        return json.loads(report.read_text())
    synthetic.write_raw_dataset(
        raw, num_samples=config.synthetic.num_samples, seed=config.seed,
        shape=tuple(config.synthetic.shape),
        oxidation_times=tuple(config.synthetic.oxidation_times),
    )
    return prepare(raw, data, config.prepare, seed=config.seed)


def prepare_matched_truth_data(work: Path, name: str) -> Path:
    """The quickstart's training data simulated with set ``name``'s physics (and gamma) and
    labelled with the TRUE phases (``labels.tif`` = ``truth.tif``), prepared into
    <work>/ceiling/<name>/data (kept and reused): the matched-domain ceiling's training set."""
    config = quickstart_config()
    raw, data = work / "ceiling" / name / "raw", work / "ceiling" / name / "data"
    if (data / "prepare_report.json").is_file():
        log.info("reusing the matched truth-labelled data in %s", data)
        return data
    overrides, gamma = SETS[name]
    file_params = {k: v for k, v in overrides.items()
                   if k not in ("bit_depth", "output_gain", "output_offset")}
    names = synthetic.write_raw_dataset(
        raw, num_samples=config.synthetic.num_samples, seed=config.seed,
        shape=tuple(config.synthetic.shape),
        oxidation_times=tuple(config.synthetic.oxidation_times), **file_params,
    )
    params = replace(_DEFAULT, **overrides)
    for sample in names:
        folder = raw / sample
        if gamma != 1.0 or file_params != overrides:
            with tifffile.TiffFile(folder / "sem.tif") as tif:
                page = tif.pages[0]
                sem = page.asarray()
                resolution = (page.tags["XResolution"].value, page.tags["YResolution"].value)
            tifffile.imwrite(folder / "sem.tif", redigitise(sem, params, gamma),
                             resolution=resolution, resolutionunit="CENTIMETER")
        shutil.copyfile(folder / "truth.tif", folder / "labels.tif")
    prepare(raw, data, config.prepare, seed=config.seed)
    return data


def train_model(
    work: Path, name: str, parts: tuple[str, ...], steps: int,
    strengths: dict[str, float] | None = None, seed: int | None = None,
    data: Path | None = None,
) -> dict[str, Any]:
    """The quickstart's training into <work>/train/<name> (reused when it reached ``steps``),
    with the acquisition augmentation's ``parts`` on (the others 0; none: augmentation off),
    at the config's strengths unless ``strengths`` overrides them; ``seed``: the training
    seed (initialisation, batches, dropout) instead of the quickstart's; ``data``: the
    prepared data set (default <work>/data)."""
    train_dir = work / "train" / name
    done = train_dir / "train_result.json"
    config = quickstart_config()
    data = data or work / "data"
    if done.is_file() and json.loads(done.read_text()).get("final_step") == steps:
        log.info("reusing the trained model in %s", train_dir)
        reference = read_reference(train_dir)
        if (reference is None or reference.get("tta") != config.predict.tta
                or "class_bias" not in reference):  # an older format
            write_shift_reference(train_dir, str(data), config.shift_reference_images,
                                  config.predict)
        return json.loads(done.read_text())
    shutil.rmtree(train_dir, ignore_errors=True)
    config.dataset_dir = str(data)
    config.num_train_steps = steps
    config.seed = config.seed if seed is None else seed
    config.checkpoint_every_steps = min(config.checkpoint_every_steps, steps)
    config.eval_every_steps = min(config.eval_every_steps, steps)
    config.acquisition.enabled = bool(parts)
    for part in set(ACQUISITION_PARTS) - set(parts):
        config.acquisition[part] = 0.0
    for part, value in (strengths or {}).items():
        config.acquisition[part] = value
    return train_and_evaluate(config, train_dir)


def segment_all(work: Path, model: str, only: str = "") -> dict[str, dict[str, Any]]:
    """The segment job over <work>/test (``only``: over that set's folder) with the model;
    returns summary rows by input path."""
    config = segment_config()
    config.input = str(work / "test" / only)
    config.output_dir = str(work / "segment" / model / only)
    config.checkpoint = str(work / "train" / model)
    config.predict.tta = quickstart_config().predict.tta  # as the quickstart and its reference
    config.overwrite = True
    segment.run(config, None)
    with open(Path(config.output_dir) / "summary.csv", newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def scored_pair(labels: np.ndarray, phases: np.ndarray, bar: str,
                rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) over the sample rows: an overlay bar's rows excluded, label rows
    past the scanned field cropped, rows the label map marks 255 (a bar) ignored."""
    visible = phases.shape[0] - (rows if bar == "overlay" else 0)
    n = min(visible, labels.shape[0])
    truth, pred = phases[:n].astype(np.int64), labels[:n].astype(np.int64)
    truth[pred == IGNORE] = IGNORE
    return truth, np.where(pred == IGNORE, 0, pred)


def score_set(name: str, items: list, rows: dict[str, dict[str, Any]], out: Path) -> dict:
    """Pooled IoU, NiO fraction errors, shift scores and bar detection of one set."""
    overrides = SETS[name][0]
    bar, bar_rows = overrides.get("data_bar", "none"), overrides.get("data_bar_rows", 0)
    cm = np.zeros((4, 4), np.int64)
    nio_err, shift, flagged, detected, scored = [], [], [], [], []
    for image, truth_path, _ in items:
        row = rows[str(image)]
        if row["status"] != "ok":
            raise RuntimeError(f"segment failed on {image}: {row['reason']}")
        labels = tifffile.imread(out / name / f"{image.stem}_labels.tif")
        truth, pred = scored_pair(labels, tifffile.imread(truth_path), bar, bar_rows)
        one = confusion_matrix(truth, pred, ignore_index=IGNORE)
        cm += one
        nio_err.append(100.0 * (one[:, 1].sum() - one[1].sum()) / one.sum())
        shift.append(float(row["shift_score"]))
        flagged.append(bool(row["warning"]))
        detected.append(int(row["data_bar_rows"]))
        scored.append(int(one.sum()))
    s = segmentation_scores(cm)
    return {
        "mean_iou": round(float(s["mean_iou"]), 4),
        "per_class_iou": [round(float(v), 4) for v in s["per_class_iou"]],
        "pixel_accuracy": round(float(s["pixel_accuracy"]), 4),
        "nio_fraction_error_pp": [round(float(e), 3) for e in nio_err],
        "nio_fraction_mae_pp": round(float(np.mean(np.abs(nio_err))), 3),
        "shift_scores": shift,
        "flagged": flagged,
        "data_bar_rows_true": bar_rows,
        "data_bar_rows_detected": detected,
        "scored_pixels": scored,
    }


def detector_separation(scores: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per shifted set: AUC of shift_score vs the in-domain images, fraction flagged."""
    base = scores["in_domain"]["shift_scores"]
    out = {"in_domain": {"auc": float("nan"), "flagged_fraction": _mean(scores["in_domain"])}}
    for name, s in scores.items():
        if name == "in_domain":
            continue
        y = [0] * len(base) + [1] * len(s["shift_scores"])
        auc = float(roc_auc_score(y, base + s["shift_scores"]))
        out[name] = {"auc": round(auc, 3), "flagged_fraction": _mean(s)}
    return out


def _mean(s: dict) -> float:
    return round(float(np.mean(s["flagged"])), 3)


def acceptance(results: dict[str, dict]) -> dict[str, Any]:
    """The issue's two criteria, measured on the aug model (and the in-domain cost)."""
    aug, no_aug = results["aug"]["sets"], results["no_aug"]["sets"]
    base = aug["in_domain"]["mean_iou"]
    drops = {n: round(base - s["mean_iou"], 4) for n, s in aug.items() if n != "in_domain"}
    return _verdict(drops, round(no_aug["in_domain"]["mean_iou"] - base, 4))


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one recipe with other training seeds: each run's acceptance and the acceptance
    of their mean drops and cost (a 900-step training's seed-to-seed noise, ~0.01 mIoU, is
    larger than MAX_IN_DOMAIN_COST, so one seed cannot decide the in-domain line)."""
    per_run = [acceptance(r["results"]) for r in runs]
    names = per_run[0]["aug_drop_vs_in_domain"]
    drops = {n: round(float(np.mean([a["aug_drop_vs_in_domain"][n] for a in per_run])), 4)
             for n in names}
    cost = round(float(np.mean([a["in_domain_cost_of_aug"] for a in per_run])), 4)
    return {"training_seeds": [r.get("training_seed") for r in runs],
            "per_run": per_run, "mean": _verdict(drops, cost)}


def _verdict(drops: dict[str, float], cost: float) -> dict[str, Any]:
    """The acceptance of aug-model drops per shifted set and the augmentation's in-domain cost."""
    return {
        "aug_drop_vs_in_domain": drops,
        "max_drop": max(drops.values()),
        "shifted_within_0.05": max(drops.values()) <= MAX_SHIFT_DROP,
        "in_domain_cost_of_aug": cost,
        "aug_keeps_in_domain": cost <= MAX_IN_DOMAIN_COST,
    }


def table(results: dict[str, dict]) -> str:
    """Markdown: one row per set, the two models side by side (no-aug / aug)."""
    lines = ["| set | mIoU no-aug | mIoU aug | NiO err pp no-aug / aug | shift median no-aug / aug"
             " | AUC no-aug / aug | flagged no-aug / aug |", "|---" * 7 + "|"]
    a, b = results["no_aug"], results["aug"]
    for name in SETS:
        sa, sb = a["sets"][name], b["sets"][name]
        da, db = a["detector"][name], b["detector"][name]
        auc = "-" if name == "in_domain" else f"{da['auc']:.2f} / {db['auc']:.2f}"
        lines.append(
            f"| {name} | {sa['mean_iou']:.3f} | {sb['mean_iou']:.3f} | "
            f"{sa['nio_fraction_mae_pp']:.2f} / {sb['nio_fraction_mae_pp']:.2f} | "
            f"{np.median(sa['shift_scores']):.1f} / {np.median(sb['shift_scores']):.1f} | "
            f"{auc} | {da['flagged_fraction']:.2f} / {db['flagged_fraction']:.2f} |"
        )
    return "\n".join(lines)


def run(
    work: Path, steps: int, num_images: int, shape: tuple[int, int], parts: tuple[str, ...],
    strengths: dict[str, float], seed: int | None = None,
) -> dict[str, Any]:
    """Prepare, train both models (``aug``: with the augmentation ``parts`` at the config's
    strengths or ``strengths``; ``seed``: the training seed), write the test sets, segment
    and score them."""
    every = set(parts) == set(ACQUISITION_PARTS) and not strengths
    name = "_".join([*parts, *(f"{k}{v:g}" for k, v in sorted(strengths.items()))])
    trained_as = {"no_aug": "no_aug", "aug": "aug" if every else "aug_" + name}
    if seed is not None:
        trained_as = {model: f"{folder}_seed{seed}" for model, folder in trained_as.items()}
    wall: dict[str, float] = {}
    t = time.perf_counter()
    prepared = prepare_training_data(work)
    wall["simulate_prepare_s"] = round(time.perf_counter() - t, 1)
    results: dict[str, dict] = {}
    for model in MODELS:
        t = time.perf_counter()
        aug = model == "aug"
        trained = train_model(work, trained_as[model], parts if aug else (), steps,
                              strengths if aug else None, seed)
        wall[f"train_{model}_s"] = round(time.perf_counter() - t, 1)
        results[model] = {"validation_patch_miou_vs_eds": _val(trained)}
    t = time.perf_counter()
    sets = write_test_sets(work, num_images, shape)
    wall["test_sets_s"] = round(time.perf_counter() - t, 1)
    for model in MODELS:
        t = time.perf_counter()
        rows = segment_all(work, trained_as[model])
        wall[f"segment_{model}_s"] = round(time.perf_counter() - t, 1)
        out = work / "segment" / trained_as[model]
        scores = {name: score_set(name, items, rows, out) for name, items in sets.items()}
        results[model].update(sets=scores, detector=detector_separation(scores))
    return {
        "augmentation_parts": list(parts),
        "augmentation_strengths": strengths,
        "training_seed": seed,
        "train_samples": prepared.get("splits", {}).get("train"),
        "results": results,
        "acceptance": acceptance(results),
        "wall_seconds": wall,
    }


def run_ceiling(work: Path, steps: int, num_images: int, shape: tuple[int, int],
                names: tuple[str, ...]) -> dict[str, Any]:
    """Matched-domain ceilings: per set, a model trained (default recipe, augmentation on) on
    that set's own physics with the TRUE phases as labels, tested on that set. The drop of a
    shifted set's ceiling against the in-domain ceiling is what the images themselves lose
    (less information: blur, noise, more boundary), not what a model trained elsewhere
    misses; a drop above MAX_SHIFT_DROP means no augmentation can meet the 0.05 line there."""
    sets = write_test_sets(work, num_images, shape)
    out: dict[str, Any] = {}
    for name in ("in_domain", *[n for n in names if n != "in_domain"]):
        t = time.perf_counter()
        data = prepare_matched_truth_data(work, name)
        model = f"ceiling_{name}"
        trained = train_model(work, model, ACQUISITION_PARTS, steps, data=data)
        rows = segment_all(work, model, only=name)
        score = score_set(name, sets[name], rows, work / "segment" / model)
        out[name] = {"mean_iou": score["mean_iou"], "per_class_iou": score["per_class_iou"],
                     "nio_fraction_mae_pp": score["nio_fraction_mae_pp"],
                     "validation_patch_miou_vs_truth": _val(trained),
                     "seconds": round(time.perf_counter() - t, 1)}
        log.info("ceiling %s: mIoU %.4f", name, score["mean_iou"])
    base = out["in_domain"]["mean_iou"]
    drops = {n: round(base - r["mean_iou"], 4) for n, r in out.items() if n != "in_domain"}
    return {"ceilings": out, "ceiling_drop_vs_in_domain": drops,
            "reachable_within_0.05": {n: d <= MAX_SHIFT_DROP for n, d in drops.items()}}


def _val(trained: dict[str, Any]) -> float | None:
    value = trained.get("validation", {}).get("mean_iou")
    return None if value is None else round(float(value), 4)


def _strengths(pairs: list[str]) -> dict[str, float]:
    """``PART=VALUE`` arguments as {part: value} (parts of config.acquisition)."""
    out = {}
    for pair in pairs:
        part, _, value = pair.partition("=")
        if part not in STRENGTHS or not value:
            raise SystemExit(f"--aug-strength: expected PART=VALUE with PART in "
                             f"{STRENGTHS}, got {pair!r}")
        out[part] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=quickstart_config().num_train_steps)
    parser.add_argument("--images", type=int, default=8, help="test images per set")
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 512))
    parser.add_argument("--quick", action="store_true", help="150 steps, 2 images per set")
    parser.add_argument("--aug-parts", nargs="+", choices=ACQUISITION_PARTS,
                        default=list(ACQUISITION_PARTS), help="augmentation parts of 'aug'")
    parser.add_argument("--aug-strength", nargs="*", default=[], metavar="PART=VALUE",
                        help="strengths of 'aug' other than config.acquisition's")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed of both models (default: the quickstart's)")
    parser.add_argument("--ceiling", nargs="*", choices=tuple(SETS), default=None,
                        metavar="SET", help="instead: matched-domain truth-label ceilings of "
                        "these sets (none named: the four that lose most)")
    parser.add_argument("--pool", nargs="+", type=Path, default=None, metavar="JSON",
                        help="instead: the acceptance over these runs' outputs (other seeds)")
    parser.add_argument("--workdir", default="", help="kept (and reused); default: a temp dir")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "generalisation.json"))
    args = parser.parse_args()
    if args.pool:
        result = pooled([json.loads(path.read_text()) for path in args.pool])
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["mean"], indent=2))
        return
    if args.quick:
        args.steps, args.images = 150, 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="socseg_generalisation_") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.ceiling is not None:
            result = run_ceiling(work, args.steps, args.images, tuple(args.shape),
                                 tuple(args.ceiling or CEILING_SETS))
        else:
            result = run(work, args.steps, args.images, tuple(args.shape),
                         tuple(args.aug_parts), _strengths(args.aug_strength), args.seed)
    result = {
        "command": " ".join(["python", "benchmarks/generalisation.py", *sys.argv[1:]]),
        "steps": args.steps, "images_per_set": args.images, "shape": list(args.shape),
        "test_seeds": [TEST_SEED0, TEST_SEED0 + args.images - 1],
        "sets": {n: {"overrides": o, "gamma": g} for n, (o, g) in SETS.items()},
        "segment_settings": ("configs/segment.py defaults (data_bar auto, percentile) with the "
                             "quickstart's tta"),
        "cpu": cpu_info(), "total_wall_seconds": round(time.perf_counter() - started, 1),
        **result,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    if args.ceiling is None:
        print(table(result["results"]))
    print(json.dumps(result.get("acceptance") or result["ceiling_drop_vs_in_domain"], indent=2))
    print(f"wall {result['total_wall_seconds']:.0f} s on {result['cpu']['model_name']}")


if __name__ == "__main__":
    main()
