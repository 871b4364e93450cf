"""benchmarks/gpu_check.sh --dry-run: the GPU check's whole code path on CPU, tiny shapes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_the_json(tmp_path: Path) -> None:
    env = os.environ | {
        "SOCSEG_GPU_CHECK_PYTHON": sys.executable,  # this interpreter, no venv made
        "SOCSEG_GPU_CHECK_WORKDIR": str(tmp_path / "work"),
        "OUT": str(tmp_path / "out"),
    }
    env.pop("XLA_FLAGS", None)  # let launch.py choose the host devices, as on a fresh shell
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert {"gpu_check", "stages", "versions", "device", "peak", "benchmark",
            "quickstart"} <= set(report)
    assert report["gpu_check"]["dry_run"] and report["gpu_check"]["ok"]
    for stage in ("environment", "benchmark", "quickstart"):
        assert report["stages"][stage]["ok"]
    assert report["versions"]["jax"] and report["device"]["backend"] == "cpu"
    assert math.isfinite(report["peak"]["tflops"]) and report["peak"]["tflops"] > 0
    figures = report["benchmark"]["figures"]
    expected = {"matmul_peak", "jax_train", "jax_train_bfloat16", "jax_inference",
                "jax_sliding_stride16", "pipeline"}
    assert expected <= set(figures)
    for row in figures.values():
        assert math.isfinite(row["median"]) and row["median"] > 0
    for name in ("jax_train", "jax_train_bfloat16", "jax_inference"):
        assert 0 < figures[name]["fraction_of_peak"] < math.inf
    assert figures["jax_sliding_stride16"]["windows_per_s"] > 0
    for scores in report["quickstart"].values():
        assert 0.0 <= scores["mean_iou"] <= 1.0
