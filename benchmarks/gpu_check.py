"""Assembles gpu_check.sh's one JSON: versions, device, benchmark figures, fractions of the
device's dense bf16 peak, the quickstart's scores, and each stage's status and seconds.

python benchmarks/gpu_check.py --workdir W --out gpu_check.json [--dry-run]

Reads W/stages.tsv, W/nvidia_smi.log, W/bench/benchmark.json, W/quickstart/report/metrics.json;
anything missing (a failed stage) is recorded as missing, not fatal. Exit status 1 when a stage
failed, after writing the JSON. It imports jax (not the project) for the device and versions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendors' datasheets (SXM parts
# unless named). Keyed by the name jax (device_kind) and nvidia-smi report; the longest key
# that starts the device's name applies.
BF16_DENSE_PEAK_TFLOPS = {
    "NVIDIA H200": 989.0,
    "NVIDIA H200 NVL": 835.0,
    "NVIDIA H100": 989.0,
    "NVIDIA H100 80GB HBM3": 989.0,
    "NVIDIA H100 PCIe": 756.0,
    "NVIDIA H100 NVL": 835.0,
    "NVIDIA GH200": 989.0,
    "NVIDIA A100": 312.0,
    "NVIDIA L40S": 362.0,
    "NVIDIA L4": 121.0,
    "NVIDIA B200": 2250.0,
}
PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin",
            "jax-cuda13-pjrt", "flax", "optax", "orbax-checkpoint", "grain", "numpy",
            "socseg_jax")


def bf16_peak_tflops(name: str) -> float | None:
    """The table's peak for a device name (longest matching key), None when unknown."""
    keys = [k for k in BF16_DENSE_PEAK_TFLOPS if name == k or name.startswith(k)]
    return BF16_DENSE_PEAK_TFLOPS[max(keys, key=len)] if keys else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_stages(path: Path) -> dict[str, dict[str, Any]]:
    """stages.tsv (name, exit status, seconds) → {name: {rc, seconds, ok}}."""
    stages: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, rc, seconds = (line.split("\t") + ["", ""])[:3]
            if name:
                stages[name] = {"rc": int(rc or -1), "seconds": float(seconds or "nan"),
                                "ok": rc == "0"}
    return stages


def nvidia_smi(path: Path) -> dict[str, Any]:
    """Driver, CUDA version and GPU names from nvidia-smi's default output."""
    text = path.read_text() if path.exists() else ""
    found = {key: re.search(pattern, text) for key, pattern in (
        ("driver", r"Driver Version:\s*([\d.]+)"), ("cuda", r"CUDA Version:\s*([\d.]+)"))}
    names = re.findall(r"\|\s+\d+\s+(NVIDIA[^|]*?)\s+(?:On|Off)\s+\|", text)
    return {key: m.group(1) if m else None for key, m in found.items()} | {"gpus": names}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    """JAX's view: backend, device kind and count, memory of the first device."""
    try:
        import jax

        devices = jax.devices()
        stats = devices[0].memory_stats() or {}
    except Exception as err:  # noqa: BLE001 - a broken install is a finding, reported
        return {"error": f"{type(err).__name__}: {err}"}
    return {"backend": jax.default_backend(), "kind": devices[0].device_kind,
            "count": len(devices), "memory_bytes": stats.get("bytes_limit")}


def windows(shape: list[int], patch: int, stride: int) -> int:
    """Windows of the project's grid (data_prep.patches.tile_starts) on an (H, W) image."""
    def count(length: int) -> int:
        return -(-(max(length, patch) - patch) // stride) + 1
    return count(shape[0]) * count(shape[1])


def benchmark_figures(report: dict[str, Any], peak_flops: float | None) -> dict[str, Any]:
    """Every figure of benchmark.json, achieved FLOP/s and fractions of the peaks."""
    results, settings = report["results"], report.get("settings", {})
    measured = results.get("matmul_peak", {}).get("median", math.nan) * 1e9
    figures: dict[str, Any] = {}
    for name, r in results.items():
        row = {k: r.get(k) for k in ("median", "min", "max", "spread", "unit", "setup_seconds")}
        if "flops_per_step" in r:
            row["achieved_tflops"] = r["flops_per_step"] * r["median"] / r["batch_size"] / 1e12
        elif "flops_per_patch" in r:
            row["achieved_tflops"] = r["flops_per_patch"] * r["median"] / 1e12
        if "achieved_tflops" in row:
            row["fraction_of_peak"] = row["achieved_tflops"] * 1e12 / peak_flops \
                if peak_flops else None
            row["fraction_of_measured_matmul_peak"] = row["achieved_tflops"] * 1e12 / measured
        if "stride" in r and "image" in r:
            n = windows(r["image"], settings.get("patch_size", 256), r["stride"])
            megapixels = r["image"][0] * r["image"][1] / 1e6
            row |= {"windows": n, "windows_per_s": r["median"] / megapixels * n,
                    "seconds_per_image": megapixels / r["median"]}
        figures[name] = row
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    work = args.workdir
    stages = read_stages(work / "stages.tsv")
    device = device_info()
    smi = nvidia_smi(work / "nvidia_smi.log")
    name = device.get("kind") or (smi["gpus"] or [""])[0]
    table_peak = bf16_peak_tflops(name)
    bench = read_json(work / "bench" / "benchmark.json")
    measured = bench["results"].get("matmul_peak", {}).get("median") if bench else None
    # Without a table entry (a CPU dry run, an unknown GPU) the measured f32 matmul stands in.
    peak_tflops = table_peak or (measured / 1e3 if measured else None)
    metrics = read_json(work / "quickstart" / "report" / "metrics.json")
    report = {
        "gpu_check": {"dry_run": args.dry_run, "ok": bool(stages) and all(
            s["ok"] for n, s in stages.items() if n != "nvidia_smi" or not args.dry_run),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "workdir": str(work), "host": platform.node(), "cpu_count": os.cpu_count()},
        "stages": stages,
        "versions": versions() | {"nvidia_driver": smi["driver"], "cuda_driver": smi["cuda"]},
        "device": device | {"nvidia_smi_gpus": smi["gpus"]},
        "peak": {"tflops": peak_tflops, "device_name": name,
                 "kind": "dense bf16, datasheet (table)" if table_peak else
                 "measured f32 matmul (no table entry)" if peak_tflops else None},
        "benchmark": None if bench is None else {
            "settings": bench.get("settings"),
            "figures": benchmark_figures(bench, peak_tflops * 1e12 if peak_tflops else None),
        },
        "quickstart": None if metrics is None else {
            key: {k: metrics[key][k] for k in ("mean_iou", "pixel_accuracy")}
            for key in ("unet", "otsu", "eds_labels", "unet_vs_eds") if key in metrics
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    for stage, s in stages.items():
        print(f"{stage:<12} exit {s['rc']:>3}  {s['seconds']:8.1f} s")
    for fig, row in ((report["benchmark"] or {}).get("figures") or {}).items():
        frac = row.get("fraction_of_peak")
        extra = f"  {100 * frac:.1f} % of peak" if frac is not None else ""
        print(f"{fig:<28}{row['median']:>12.4g} {row['unit']}{extra}")
    print(f"wrote {args.out}")
    sys.exit(0 if report["gpu_check"]["ok"] else 1)


if __name__ == "__main__":
    main()
