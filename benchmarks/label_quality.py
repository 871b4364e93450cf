"""Benchmark of EDS-guided label quality against the simulator's true phases (issues #3, #12).

Mode ``settings`` (as before): for each simulator setting it scores, pooled over held-out
samples (seeds 1000+, ceiling training 2000+; drift 8 px, rotation 2°): stage (a) alone, the two
refinements (``mean_field``, ``forest``), labels taught by ``SCRIBBLE_STROKES`` simulated hand
strokes per image (``scribbles``), and a *supervised ceiling*: the features of ``forest`` with a
larger forest (twice the trees, 4 levels deeper), trained on the TRUE phases of other samples
of the same setting, i.e. what a pixel classifier reaches when its teacher is perfect. The
settings vary what limits labels on real data: SEM noise and EDS resolution.

Mode ``randomised`` (issue #12 item 4): samples with RANDOMISED physics
(``data_prep.synthetic.DEFAULT_RANGES``), seeds ``RANDOM_SEED0`` = 10_000 and up (no test or
tuning uses them), plus the ``default`` preset on the first seeds. Each sample is prepared by
``prepare_sample`` with the prepare job's configuration, exactly as ``prepare`` labels it; its
mean IoU vs ``truth.tif`` is reported as median, 10th percentile and worst, split by EDS
coarseness (<= 4x vs > 4x) and bar convention, beside stage (a), the labeller on EDS maps
warped with the TRUE registration, a per-sample supervised ceiling (forest trained on the true
phases of one image half, predicting the other) and the registration error (SEM px;
*registered* when <= max(1 px, 0.2 EDS px)). ``--cnn-ceiling`` adds, for the samples at EDS
<= 4x, the ceiling of a small U-Net taught the same way (``benchmarks/cnn_ceiling.py``; about
7 min per sample on 2 cores): it sees shapes, which the pixel forest cannot.

    python benchmarks/label_quality.py [--mode all|settings|randomised] [--size 512]
        [--test-samples 4] [--train-samples 4] [--random-samples 32] [--default-samples 16]
        [--random-size 512] [--cnn-ceiling]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from socseg_jax.configs.prepare import get_config  # noqa: E402

from data_prep.labels import (  # noqa: E402
    eds_model,
    eds_rules,
    forest,
    mean_field,
    refinement,
    scribbles,
)
from data_prep.prepare import sample as prepare  # noqa: E402
from data_prep.prepare.checks import mean_iou as miou_of  # noqa: E402
from data_prep.registration import maps as registration_maps  # noqa: E402
from data_prep.registration.maps import register_eds  # noqa: E402
from data_prep.samples.raw_sample import read_raw_sample  # noqa: E402
from data_prep.synthetic import (  # noqa: E402
    DEFAULT_OXIDATION_TIMES,
    DEFAULT_RANGES,
    PRESETS,
    SimulationParams,
    SyntheticSample,
    simulate_sample,
    simulate_scribbles,
    write_sample,
)
from socseg_jax.core.intensity import normalize_sem  # noqa: E402
from socseg_jax.core.scores import confusion_matrix as confusion  # noqa: E402
from socseg_jax.runtime.cpu_record import cpu_info  # noqa: E402

SETTINGS = {
    "default": {},
    "SEM dose x3.3 (noise sigma 0.065 -> 0.035)": {"sem_dose": 400.0},
    "EDS 4x coarser than SEM": {"eds_downsample": 4},
    "EDS 8x coarser, 3 px interaction blur": {"eds_downsample": 8, "eds_blur_px": 3.0}}
OXIDATION_MIN = (5, 20, 60, 120)
CEILING_TRAIN_PX = 60_000  # class-balanced training pixels of the supervised forest
SCRIBBLE_STROKES = 80  # strokes of up to 30 px per image, shared by the phases present
RANDOM_SEED0 = 10_000  # held-out seeds of the randomised mode; tests and tuning use < 10_000
COARSE_EDS = 4.0  # split of the randomised results: EDS pitch <= 4 SEM px vs coarser
PHYSICS = ("eds_blur_px", "eds_dose", "eds_background", "eds_pore_subsurface", "sem_dose")
PHYSICS += ("feature_size", "oxidation_min", "oxide_rate_px", "probe_blur_px", "read_noise")


def _iou(cm: np.ndarray) -> list[float]:
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return [round(float(v), 4) for v in inter / np.maximum(union, 1)]


def _sample(overrides: dict, size: int, seed: int, minutes: float):
    """Simulate one sample and run registration and stage (a) on it; also the registered maps
    and their pitch, for stage (c)."""
    params = dataclasses.replace(
        SimulationParams(
            shape=(size, size), oxidation_min=minutes, max_drift_px=8.0, max_rotation_deg=2.0
        ),
        **overrides,
    )
    sim = simulate_sample(params, seed)
    sem = normalize_sem(sim.sem)
    aligned, registration = register_eds(sem, sim.eds)
    evidence = eds_rules.eds_evidence(sem, aligned)
    stage_a, conf = eds_rules.eds_labels(sem, aligned, evidence=evidence)
    return sim.phases, sem, evidence, stage_a, conf, aligned, max(registration.scale)


def _balanced_pick(truth_flat: np.ndarray, per: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to ``per`` pixels of each class (class-balanced training pixels)."""
    picks = []
    for cls in range(4):
        idx = np.flatnonzero(truth_flat == cls)
        if idx.size:
            picks.append(rng.choice(idx, min(per, idx.size), replace=False))
    return np.concatenate(picks)


def _new_ceiling_forest(seed: int):
    """The ``forest`` refinement's classifier, larger: twice the trees, 4 levels deeper."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=forest.REFINE_TREES * 2,
        max_depth=forest.REFINE_DEPTH + 4,
        min_samples_leaf=3,
        max_features="sqrt",
        n_jobs=2,
        random_state=seed,
    )


def _ceiling_forest(train: list, seed: int):
    """A larger version of the ``forest`` refinement's classifier (its features, twice the
    trees, 4 levels deeper), trained on the true phases instead of stage (a)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    per = CEILING_TRAIN_PX // (len(train) * 4)
    for truth, sem, evidence, stage_a, *_ in train:
        flat_truth = truth.ravel()
        feats = forest.pixel_features(sem, evidence, stage_a).reshape(flat_truth.size, -1)
        pick = _balanced_pick(flat_truth, per, rng)
        xs.append(feats[pick])
        ys.append(flat_truth[pick])
    return _new_ceiling_forest(seed).fit(np.concatenate(xs), np.concatenate(ys))


def run_setting(name: str, overrides: dict, size: int, n_test: int, n_train: int) -> dict:
    """Pooled per-class and mean IoU of every labeller for one simulator setting."""
    start = time.perf_counter()
    times = [OXIDATION_MIN[i % len(OXIDATION_MIN)] for i in range(max(n_test, n_train))]
    test = [_sample(overrides, size, 1000 + i, times[i]) for i in range(n_test)]
    train = [_sample(overrides, size, 2000 + i, times[i]) for i in range(n_train)]
    supervised = _ceiling_forest(train, seed=0)
    kinds = ("stage_a", "mean_field", "eds_model", "forest", "scribbles", "ceiling")
    pooled = {k: np.zeros((4, 4), np.int64) for k in kinds}
    scribbled_px = 0
    sweeps = int(get_config().prepare.eds_model_sweeps)
    for i, (truth, sem, evidence, stage_a, conf, aligned, pitch) in enumerate(test):
        like = mean_field.class_log_likelihoods(sem, stage_a, conf)
        mf, mf_conf = mean_field.refine_mean_field(sem, evidence, stage_a, conf, like, pitch)
        em, _, _ = eds_model.refine_with_eds_model(aligned, mf, mf_conf, like, pitch, sweeps)
        rf, _ = forest.refine_forest(sem, evidence, stage_a, conf, seed=0)
        marks = simulate_scribbles(truth, SCRIBBLE_STROKES, seed=1000 + i)
        scribbled_px += int((marks > 0).sum())
        sc, _, _ = scribbles.label_from_scribbles(sem, evidence, stage_a, conf, marks, seed=0)
        feats = forest.pixel_features(sem, evidence, stage_a).reshape(truth.size, -1)
        ceiling = supervised.predict(feats).reshape(truth.shape).astype(np.uint8)
        for key, pred in (
            ("stage_a", stage_a),
            ("mean_field", mf),
            ("eds_model", em),
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


def _registration_error(
    matrix, labelled_shape: tuple[int, int], frame_shape: tuple[int, int],
    eds_shape: tuple[int, int], sim: SyntheticSample,
) -> tuple[float, float]:
    """RMS and max (SEM px) over a 9x9 grid of the labelled field of the distance between
    where the registration and where the truth put each pixel's EDS content. The estimate
    assumes the maps span ``frame_shape`` (the extent of the convention it chose: the
    scanned field for an overlay bar, the image above it otherwise); the truth knows they
    span the scanned field, so a wrong convention shows up as a scale error."""
    h, w = labelled_shape
    assumed = np.array([frame_shape[0] / eds_shape[0], frame_shape[1] / eds_shape[1]])
    pitch = np.array(sim.eds_pitch())
    ys, xs = np.meshgrid(np.linspace(0.1, 0.9, 9) * h, np.linspace(0.1, 0.9, 9) * w)
    pts = np.stack([ys.ravel(), xs.ravel()], 1)
    est, true = np.asarray(matrix, float), sim.true_matrix()
    e_est = (pts @ est[:, :2].T + est[:, 2] + 0.5) / assumed - 0.5  # EDS pixel index
    e_true = (pts @ true[:, :2].T + true[:, 2] + 0.5) / pitch - 0.5
    err = np.linalg.norm((e_est - e_true) * pitch, axis=1)
    return float(np.sqrt(np.mean(err**2))), float(err.max())


def _prepare_one(folder: Path, out: Path, settings) -> tuple[prepare.SampleReport, bool]:
    """Prepare one raw sample as the job does; when only the registration quality gate
    rejects it, prepare it again without the gate to measure the labels anyway."""
    try:
        return prepare.prepare_sample(folder, out, settings, seed=0)[1], False
    except registration_maps.RegistrationError:
        ungated = settings.copy_and_resolve_references()
        ungated.min_registration_quality = -np.inf
        return prepare.prepare_sample(folder, out, ungated, seed=0)[1], True


def _true_registration_labels(sim: SyntheticSample, sem: np.ndarray, settings: dict):
    """SEM and EDS maps cut to the labelled rows, evidence, stage (a) and the final labels of
    the prepare labeller (its refinement settings) on EDS maps warped with the TRUE
    registration (onto the scanned field)."""
    h, w = sim.phases.shape
    full = {el: registration_maps.warp_to(m, (h, w), sim.true_matrix())
            for el, m in sim.eds.items()}
    rows = min(sem.shape[0], h)
    aligned = {el: m[:rows] for el, m in full.items()}
    sem = sem[:rows]
    thresholds = dict(settings.get("label_thresholds") or {})
    evidence = eds_rules.eds_evidence(sem, aligned, thresholds=thresholds)
    stage_a, conf = eds_rules.eds_labels(sem, aligned, evidence=evidence)
    labels, *_ = refinement.refine(
        settings["refine_labels"], sem, evidence, stage_a, conf, aligned_eds=aligned,
        eds_pitch=max(sim.eds_pitch()), eds_model_sweeps=int(settings["eds_model_sweeps"]),
    )
    return sem, aligned, evidence, stage_a, labels


def _half_ceiling(truth, sem, evidence, stage_a, seed: int) -> float:
    """Mean IoU of the ceiling forest trained on the true phases of one half of the image
    (left/right) and predicting the other half, both ways (a perfect teacher per image);
    scored on every 2nd pixel of each axis (the forest's prediction dominates the time)."""
    rng = np.random.default_rng(seed)
    feats = forest.pixel_features(sem, evidence, stage_a)
    sub = (slice(None, None, 2), slice(None, None, 2))
    truth_s, feats_s = truth[sub], feats[sub]
    pred = np.zeros(truth_s.shape, np.uint8)
    half = truth.shape[1] // 2
    split = (half + 1) // 2  # sub-grid column j is column 2 j
    folds = ((slice(0, half), slice(split, None)), (slice(half, None), slice(0, split)))
    for train, cols in folds:
        t_flat = truth[:, train].ravel()
        f_train = feats[:, train].reshape(t_flat.size, -1)
        pick = _balanced_pick(t_flat, CEILING_TRAIN_PX // 8, rng)
        ceiling = _new_ceiling_forest(seed).fit(f_train[pick], t_flat[pick])
        f_test = feats_s[:, cols]
        flat = f_test.reshape(-1, f_test.shape[-1])
        pred[:, cols] = ceiling.predict(flat).reshape(f_test.shape[:2])
    return miou_of(confusion(truth_s, pred))


def _random_record(
    sim: SyntheticSample, seed: int, work: Path, settings: dict, cnn: bool = False
) -> dict:
    """Write, prepare and score one sample; its physics and every measure, as one record
    (``cnn``: with the U-Net ceiling when the EDS pitch is <= ``COARSE_EDS``)."""
    start = time.perf_counter()
    name = f"s{seed}"
    write_sample(work / "raw" / name, sim, seed)
    report, gated = _prepare_one(work / "raw" / name, work / "out", settings)
    raw = read_raw_sample(work / "raw" / name, data_bar=settings["data_bar"])
    sem = normalize_sem(raw.sem)
    eds_shape = next(iter(sim.eds.values())).shape
    bar_rows = int(report.metadata.get("data_bar_rows", 0))
    overlay = report.metadata.get("data_bar_convention") == "overlay"
    frame = (sem.shape[0] + bar_rows * overlay, sem.shape[1])
    rms, worst = _registration_error(
        report.metadata["registration_matrix"], sem.shape, frame, eds_shape, sim
    )
    pitch = max(sim.eds_pitch())
    sem_t, aligned, evidence, stage_a, mf = _true_registration_labels(sim, sem, settings)
    truth = sim.phases[: sem_t.shape[0]]
    p = sim.params
    extra = {}
    if cnn and pitch <= COARSE_EDS:
        from benchmarks import cnn_ceiling  # JAX and the U-Net: only when asked for

        channels = cnn_ceiling.input_channels(sem_t, aligned)
        extra["cnn_ceiling_miou"] = round(cnn_ceiling.half_cnn_ceiling(truth, channels, seed), 4)
    return {
        "seed": seed,
        "eds_pitch": round(pitch, 3),
        **{k: round(getattr(p, k), 3) for k in PHYSICS},
        "oxide_law": p.oxide_law,
        "grey_levels": [round(g, 3) for g in p.grey_levels],
        "nio_darker_than_ni": bool(p.grey_levels[1] < p.grey_levels[2]),
        "bit_depth": p.bit_depth,
        "data_bar": sim.data_bar,
        "data_bar_rows": sim.data_bar_rows,
        "data_bar_rows_found": int(report.metadata.get("data_bar_rows", 0)),
        "true_drift_yx": [round(d, 2) for d in sim.drift_yx],
        "true_rotation_deg": round(sim.rotation_deg, 3),
        "true_scale": round(sim.scale, 4),
        "found_shift_yx": [round(v, 2) for v in report.shift_yx],
        "found_rotation_deg": round(report.rotation_deg or 0.0, 3),
        "found_zoom": round(report.zoom or 1.0, 4),
        "registration_quality": round(report.registration_quality, 3),
        "quality_gate_rejected": gated,
        "registration_rms_px": round(rms, 2),
        "registration_max_px": round(worst, 2),
        "registered": bool(rms <= max(1.0, 0.2 * pitch)),
        "labels_miou": report.truth_miou,
        "labels_class_iou": _iou(np.asarray(report.truth_confusion)),  # pore, NiO, Ni, YSZ
        "labels_confusion": report.truth_confusion,
        "true_registration_class_iou": _iou(confusion(truth, mf)),
        "stage_a_miou": report.truth_miou_without_refinement,
        "true_registration_miou": round(miou_of(confusion(truth, mf)), 4),
        "ceiling_miou": round(_half_ceiling(truth, sem_t, evidence, stage_a, seed), 4),
        **extra,
        "warnings": report.warnings,
        "seconds": round(time.perf_counter() - start, 1),
    }


# cnn_ceiling_miou: summarised only for the groups where every sample has it
MEASURES = ("labels_miou", "stage_a_miou", "true_registration_miou", "ceiling_miou",
            "cnn_ceiling_miou")


def _summary(records: list[dict]) -> dict:
    """Median, 10th percentile and worst of each measure, registration and bar counts."""
    out: dict = {"n": len(records)}
    if not records:
        return out
    for key in MEASURES:
        if not all(key in r for r in records):
            continue
        v = np.array([r[key] for r in records], float)
        worst = records[int(np.argmin(v))]["seed"]
        out[key] = {
            "median": round(float(np.median(v)), 4),
            "p10": round(float(np.percentile(v, 10)), 4),
            "worst": round(float(v.min()), 4),
            "worst_seed": worst,
        }
    pooled = np.sum([np.asarray(r["labels_confusion"]) for r in records], axis=0)
    out["labels_pooled_miou"] = round(miou_of(pooled), 4)  # the statistic of #12's hidden bar
    out["registered"] = sum(r["registered"] for r in records)
    out["quality_gate_rejected"] = sum(r["quality_gate_rejected"] for r in records)
    out["data_bar_found"] = sum(r["data_bar_rows_found"] == r["data_bar_rows"] for r in records)
    out["registration_rms_px_median"] = round(
        float(np.median([r["registration_rms_px"] for r in records])), 2
    )
    return out


def _groups(records: list[dict]) -> dict:
    """Summaries of all records and of the splits by EDS coarseness and data bar."""
    fine = [r for r in records if r["eds_pitch"] <= COARSE_EDS]
    groups = {
        "all": records,
        f"EDS <= {COARSE_EDS:g}x": fine,
        f"EDS > {COARSE_EDS:g}x": [r for r in records if r["eds_pitch"] > COARSE_EDS],
    }
    for bar in ("none", "overlay", "appended"):
        groups[f"data bar {bar}"] = [r for r in records if r["data_bar"] == bar]
    for bar in ("none", "overlay", "appended"):
        groups[f"EDS <= {COARSE_EDS:g}x, data bar {bar}"] = [
            r for r in fine if r["data_bar"] == bar
        ]
    groups["NiO darker than Ni"] = [r for r in records if r["nio_darker_than_ni"]]
    groups["NiO brighter than Ni"] = [r for r in records if not r["nio_darker_than_ni"]]
    return {k: _summary(v) for k, v in groups.items()}


def _sensitivity(records: list[dict]) -> dict:
    """Spearman rank correlation of the labels' mIoU with each numeric physics knob."""
    from scipy.stats import spearmanr

    y = [r["labels_miou"] for r in records]
    keys = ("eds_pitch", *PHYSICS, "registration_rms_px")
    rho = {k: float(spearmanr([r[k] for r in records], y)[0]) for k in keys}
    return {k: (round(v, 3) if np.isfinite(v) else None) for k, v in rho.items()}


def run_randomised(
    n: int, n_default: int, size: int, seed0: int = RANDOM_SEED0, cnn: bool = False
) -> dict:
    """The randomised preset on seeds seed0 .. seed0 + n - 1 and, for reference, the default
    preset on the first ``n_default`` of them (oxidation times cycling the default ones);
    ``cnn``: the U-Net ceiling on the randomised samples at EDS <= ``COARSE_EDS``."""
    from data_prep.synthetic import randomised_sample

    settings = get_config().prepare  # the prepare job's settings, as launch.py passes
    result: dict = {"seeds": [seed0, seed0 + n - 1], "size": size,
                    "settings": settings.to_dict()}
    for preset, count in (("randomised", n), ("default", n_default)):
        start = time.perf_counter()
        records = []
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(count):
                seed = seed0 + k
                if preset == "randomised":
                    sim = randomised_sample(seed, (size, size))
                else:
                    t = DEFAULT_OXIDATION_TIMES[k % len(DEFAULT_OXIDATION_TIMES)]
                    sim = simulate_sample(PRESETS["default"].params(seed, (size, size), t), seed)
                cnn_here = cnn and preset == "randomised"
                records.append(_random_record(sim, seed, Path(tmp), settings, cnn_here))
                r = records[-1]
                unet = f" U-Net {r['cnn_ceiling_miou']:.3f}" if "cnn_ceiling_miou" in r else ""
                print(
                    f"{preset:<10} seed {seed} EDS {r['eds_pitch']:.2f}x bar {r['data_bar']:<8} "
                    f"labels {r['labels_miou']:.3f} true-reg {r['true_registration_miou']:.3f} "
                    f"ceiling {r['ceiling_miou']:.3f}{unet} "
                    f"reg err {r['registration_rms_px']:.2f} px "
                    f"({r['seconds']:.0f} s)",
                    flush=True,
                )
        result[preset] = {
            "groups": _groups(records),
            "sensitivity_spearman": _sensitivity(records) if preset == "randomised" else {},
            "samples": records,
            "seconds": round(time.perf_counter() - start, 1),
        }
    result["ranges"] = {k: list(v) for k, v in DEFAULT_RANGES.items()}
    return result


def _markdown(result: dict) -> str:
    """The randomised results as a markdown table (median / p10 / worst per group)."""
    head = "| preset, samples | n | labels (prepare) | stage (a) | true registration |"
    head += " forest ceiling | U-Net ceiling | labels pooled | registered | bar found |"
    head += " gate rejected |"
    lines = [head, "|---" * 11 + "|"]
    for preset in ("randomised", "default"):
        for group, g in result[preset]["groups"].items():
            if not g["n"] or (preset == "default" and group != "all"):
                continue
            cells = [f"{preset}, {group}", str(g["n"])]
            for key in MEASURES:
                m = g.get(key)
                cells.append(f"{m['median']:.3f} / {m['p10']:.3f} / {m['worst']:.3f}" if m else "–")
            cells.append(f"{g['labels_pooled_miou']:.3f}")
            cells += [f"{g['registered']}/{g['n']}", f"{g['data_bar_found']}/{g['n']}"]
            cells.append(f"{g['quality_gate_rejected']}/{g['n']}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("all", "settings", "randomised"), default="all")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--test-samples", type=int, default=4)
    parser.add_argument("--train-samples", type=int, default=4)
    parser.add_argument("--random-samples", type=int, default=32)
    parser.add_argument("--default-samples", type=int, default=16)
    parser.add_argument("--random-size", type=int, default=512)
    parser.add_argument("--cnn-ceiling", action="store_true",
                        help="add the U-Net ceiling at EDS <= 4x (about 7 min per sample)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "label_quality.json")
    args = parser.parse_args()
    start = time.perf_counter()
    # A mode run alone keeps the other mode's results already in the file.
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.mode in ("all", "settings"):
        results.update(
            {
                "size": args.size,
                "test_samples": args.test_samples,
                "train_samples_of_ceiling": args.train_samples,
                "oxidation_min": list(OXIDATION_MIN),
                "settings": {
                    name: run_setting(name, o, args.size, args.test_samples, args.train_samples)
                    for name, o in SETTINGS.items()
                },
            }
        )
    if args.mode in ("all", "randomised"):
        results["randomised"] = run_randomised(
            args.random_samples, args.default_samples, args.random_size, cnn=args.cnn_ceiling
        )
        print(_markdown(results["randomised"]))
    results["cpu"] = cpu_info()
    results["seconds_total"] = round(time.perf_counter() - start, 1)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
