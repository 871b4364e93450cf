"""Benchmark of every analysis metric on one study-sized label map (2856x4096).

The map comes from the project's simulator (data_prep/synthetic microstructure, NiO
shells after 4 min). Goals (issue #14): every metric group <= 10 s, tortuosity <= 30 s,
a 16384^2 map (without tortuosity; a mirrored tiling of the simulated map) within 6 GB.
In the simulator's isotropic 2-D sections no phase percolates with 4-connectivity
(tortuosity inf at once), so the solver is also timed on a percolating 55 % random field
(1024^2 and, by default, 2856x4096). Runs each case in a fresh child process so peak RSS
is its own. Writes benchmarks/analysis_bench.json.

    python benchmarks/analysis_bench.py [--big] [--solver-shape 2856 4096]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from socseg_jax.runtime.cpu_record import cpu_info

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time, tracemalloc
import numpy as np
from scipy import ndimage as ndi
sys.path.insert(0, {root!r})
from data_prep.synthetic import microstructure as m
from data_prep.synthetic.params import SimulationParams
from socseg_jax.analysis.image_metrics import AnalysisOptions, analyze_with_maps
from socseg_jax.analysis.tortuosity import tortuosity
shape, kind = tuple({shape!r}), {kind!r}
rng = np.random.default_rng(0)
t = time.perf_counter()
if kind == "solver":
    f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 5)
    mask = f > np.quantile(f, 0.45)
elif {map_file!r}:
    labels = np.load({map_file!r})
else:
    p = SimulationParams(shape=shape, oxidation_min=4.0)
    labels = m.oxidise(rng, m.microstructure(rng, shape, p), p).astype(np.uint8)
make_s = time.perf_counter() - t
tracemalloc.start()
out = {{"shape": list(shape), "kind": kind, "make_seconds": make_s}}
if kind == "solver":
    t = time.perf_counter(); r = tortuosity(mask, "y"); out["first_s"] = time.perf_counter() - t
    t = time.perf_counter(); r = tortuosity(mask, "y"); out["seconds"] = time.perf_counter() - t
    out.update({{k: r[k] for k in ("tau", "eps", "iterations", "residual", "flux_mismatch")}})
else:
    timings = {{}}
    opts = AnalysisOptions("both", 4, 256, kind == "full")
    metrics, _ = analyze_with_maps(labels, 40.0, opts, timings)
    out["seconds_per_metric"] = timings
    out["fractions_pct"] = [metrics[f"{{n}}_area_pct"] for n in ("pore", "NiO", "Ni", "YSZ")]
    out["tpb_density_per_um2"] = metrics["tpb_density_per_um2"]
out["tracemalloc_peak_gb"] = tracemalloc.get_traced_memory()[1] / 1e9
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps(out))
"""


_TILE = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
from data_prep.synthetic import microstructure as m
from data_prep.synthetic.params import SimulationParams
rng, base = np.random.default_rng(0), (2856, 4096)
p = SimulationParams(shape=base, oxidation_min=4.0)
tile = m.oxidise(rng, m.microstructure(rng, base, p), p).astype(np.uint8)
h, w = {shape!r}
np.save({map_file!r}, np.pad(tile, ((0, max(0, h - base[0])), (0, max(0, w - base[1]))),
                             mode="symmetric")[:h, :w])
"""


def run_case(shape: tuple[int, int], kind: str, map_file: str = "") -> dict:
    """One case in a fresh child; with ``map_file``, the map is a mirrored tiling of a
    2856x4096 simulated map, made by another child first (so the peak RSS is the analysis')."""
    if map_file:
        tile = _TILE.format(root=str(ROOT), shape=list(shape), map_file=map_file)
        subprocess.run([sys.executable, "-c", tile], check=True)
    code = _CHILD.format(root=str(ROOT), shape=list(shape), kind=kind, map_file=map_file)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"shape": list(shape), "kind": kind, "error": proc.stderr.strip()[-400:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", action="store_true", help="also 16384^2 without tortuosity")
    parser.add_argument("--solver-shape", type=int, nargs=2, default=(2856, 4096))
    args = parser.parse_args()
    result = {"cpu": cpu_info(), "cases": [run_case((2856, 4096), "full"),
                                           run_case((1024, 1024), "solver"),
                                           run_case(tuple(args.solver_shape), "solver")]}
    if args.big:
        with tempfile.TemporaryDirectory() as tmp:
            big = run_case((16384, 16384), "no_tortuosity", str(Path(tmp) / "map.npy"))
        result["cases"].append(big)
    path = ROOT / "benchmarks" / "analysis_bench.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
