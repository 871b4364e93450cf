"""Benchmark of job=prepare on one study-sized sample (2856×4096, like the Zeiss images).

Acceptance (issue #3): read, register, label and patch one 2856×4096 sample in ≤ 60 s on a
2-core CPU with peak memory ≤ 4 GB. Since issue #12 the sample carries a data bar drawn over
its bottom rows (Zeiss) and registration tries both bar conventions (``auto``). The raw
sample is simulated first (not timed); preparation runs in a fresh child process so that its
peak RSS is measured alone.

    python benchmarks/prepare_bench.py [--shape 2856 4096] [--refine mean_field|forest|none]
        [--bar-rows 120]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tifffile

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from configs.sections import prepare_config
from data_prep import patches
from data_prep.prepare.sample import prepare_sample
import tifffile
settings = prepare_config()
settings.update({settings!r})
t = time.perf_counter()
paths, report = prepare_sample(Path({sample!r}), Path({out!r}), settings, 0)
label = tifffile.imread(paths.label_path)
image = tifffile.imread(paths.image_path)
conf = tifffile.imread(paths.confidence_path)
n = sum(1 for _ in patches.cut_patches("s", image, label, conf, 256, 128))
print(json.dumps({{"seconds": time.perf_counter() - t, "patches": n, "steps": report.seconds,
                  "truth_miou": report.truth_miou, "rotation_deg": report.rotation_deg,
                  "quality": report.registration_quality, "label_shape": list(label.shape),
                  "convention": report.metadata.get("data_bar_convention"),
                  "qualities": report.metadata.get("registration_qualities"),
                  "matrix": report.metadata["registration_matrix"]}}))
"""


def _registration_error(matrix, sim: dict, shape, image_shape) -> float:
    """Largest error (SEM px, over the labelled image's corners and centre) of the estimated
    mapping vs the simulated drift + rotation of the frame of ``shape``."""
    import numpy as np

    th = np.radians(sim["rotation_deg"])
    a = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    c = (np.array(shape) - 1) / 2
    true = np.concatenate([a, (c - a @ c + a @ np.array(sim["drift_yx"]))[:, None]], 1)
    h, w = image_shape
    pts = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1], [h / 2, w / 2]], float)
    diff = np.asarray(matrix) - true
    return float(np.abs(pts @ diff[:, :2].T + diff[:, 2]).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(2856, 4096))
    parser.add_argument(
        "--refine", default="mean_field", choices=("mean_field", "forest", "none"),
        help="label refinement stage (prepare.refine_labels)",
    )
    parser.add_argument(
        "--bar-rows", type=int, default=120,
        help="data bar drawn over the bottom rows (Zeiss convention; 0 = none)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "prepare_bench.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from data_prep import synthetic
    from socseg_jax.runtime.cpu_record import cpu_info

    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        for sub in ("images", "labels", "qa"):
            (out / sub).mkdir(parents=True)
        t = time.perf_counter()
        (name,) = synthetic.write_raw_dataset(
            raw,
            1,
            seed=0,
            shape=tuple(args.shape),
            oxidation_times=(30,),
            max_drift_px=8.0,
            max_rotation_deg=2.0,
        )
        simulate_s = time.perf_counter() - t
        if args.bar_rows:  # a bar drawn over the scan: the maps still cover its rows
            sem_path = raw / name / "sem.tif"
            sem = tifffile.imread(sem_path)
            tifffile.imwrite(sem_path, synthetic.add_data_bar(sem[: -args.bar_rows],
                                                              args.bar_rows, 0))
        settings = {"refine_labels": args.refine, "data_bar": "auto",
                    "data_bar_convention": "auto"}
        code = _CHILD.format(
            root=str(ROOT), sample=str(raw / name), out=str(out), settings=settings
        )
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"prepare failed:\n{proc.stderr}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        sim = json.loads((raw / name / "simulation.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    result = {
        "shape": list(args.shape),
        "refine_labels": args.refine,
        "prepare_seconds": round(child["seconds"], 2),
        "process_wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "steps_seconds": child["steps"],
        "patches": child["patches"],
        "labels_truth_miou": child["truth_miou"],
        "registration": {
            "rotation_deg": child["rotation_deg"],
            "true_rotation_deg": sim["rotation_deg"],
            "true_shift_yx": sim["registration_shift_yx"],
            "max_error_px": round(
                _registration_error(child["matrix"], sim, args.shape, child["label_shape"]), 3
            ),
            "quality": child["quality"],
            "data_bar_rows": args.bar_rows,
            "convention": child["convention"],
            "qualities": child["qualities"],
        },
        "simulate_seconds": round(simulate_s, 1),
        "cpu": cpu_info(),
        "within_budget": child["seconds"] <= 60 and peak_mb <= 4096,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
