"""Benchmark of job=prepare on one study-sized sample (2856×4096, like the Zeiss images).

Acceptance (issue #3): read, register, label and patch one 2856×4096 sample in ≤ 60 s on a
2-core CPU with peak memory ≤ 4 GB. The raw sample is simulated first (not timed); preparation
runs in a fresh child process so that its peak RSS is measured alone.

    python benchmarks/prepare_bench.py [--shape 2856 4096] [--refine mean_field|forest|none]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from data_prep import prepare, patches
import tifffile
t = time.perf_counter()
paths, report = prepare.prepare_sample(Path({sample!r}), Path({out!r}), 0.3, {settings!r}, 0)
label = tifffile.imread(paths.label_path)
image = tifffile.imread(paths.image_path)
conf = tifffile.imread(paths.confidence_path)
n = sum(1 for _ in patches.cut_patches("s", image, label, conf, 256, 128))
print(json.dumps({{"seconds": time.perf_counter() - t, "patches": n, "steps": report.seconds,
                  "truth_miou": report.truth_miou, "rotation_deg": report.rotation_deg,
                  "quality": report.registration_quality,
                  "matrix": report.metadata["registration_matrix"]}}))
"""


def _registration_error(matrix, sim: dict, shape) -> float:
    """Largest error (SEM px) of the estimated mapping vs the simulated drift + rotation."""
    import numpy as np

    th = np.radians(sim["rotation_deg"])
    a = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    c = (np.array(shape) - 1) / 2
    true = np.concatenate([a, (c - a @ c + a @ np.array(sim["drift_yx"]))[:, None]], 1)
    h, w = shape
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
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "prepare_bench.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from data_prep import synthetic

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
        settings = {"refine_labels": args.refine, "data_bar": "auto"}
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
            "max_error_px": round(_registration_error(child["matrix"], sim, args.shape), 3),
            "quality": child["quality"],
        },
        "simulate_seconds": round(simulate_s, 1),
        "cpu_count": __import__("os").cpu_count(),
        "within_budget": child["seconds"] <= 60 and peak_mb <= 4096,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
