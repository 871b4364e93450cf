"""Cross-check of socseg_jax.analysis against PoreSpy and TauFactor (both optional).

Local thickness and mean chord length vs PoreSpy; tortuosity factor and TPB corner count
vs TauFactor, on seeded random 2-D structures. Writes benchmarks/analysis_crosscheck.json.

    python benchmarks/analysis_crosscheck.py
"""

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from socseg_jax.analysis.sizes import chord_lengths, local_thickness  # noqa: E402
from socseg_jax.analysis.tortuosity import tortuosity  # noqa: E402
from socseg_jax.analysis.tpb import tpb_corners  # noqa: E402


def field(seed: int, shape: tuple[int, int], sigma, fraction: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return f > np.quantile(f, 1 - fraction)


def three_phase(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = np.stack([ndi.gaussian_filter(rng.standard_normal(shape), 4) for _ in range(3)])
    return np.array([0, 2, 3], np.uint8)[np.argmax(f, 0)]


def porespy_checks() -> dict:
    import porespy as ps

    out = []
    for seed, sigma in ((0, 3), (1, 6)):
        mask = field(seed, (256, 256), sigma, 0.5)
        ours = local_thickness(mask)
        theirs = 2 * ps.filters.local_thickness(mask, method="dt", smooth=False)
        diff = ours[mask] - theirs[mask]
        with warnings.catch_warnings():  # spacing=0 (every row) is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            chords = ps.filters.apply_chords(mask, axis=1, spacing=0, trim_edges=True)
        rows = [[0, 0, 0], [1, 1, 1], [0, 0, 0]]
        ps_len = np.bincount(ndi.label(chords > 0, structure=rows)[0].ravel())[1:]
        our_len = chord_lengths(mask.astype(np.uint8), 1, axis=1)
        out.append({
            "seed": seed, "sigma_px": sigma,
            "lt_d10_d50_d90_px_ours": np.percentile(ours[mask], [10, 50, 90]).round(3).tolist(),
            "lt_d10_d50_d90_px_porespy": np.percentile(theirs[mask], [10, 50, 90]).tolist(),
            "lt_mean_px_ours": float(ours[mask].mean()),
            "lt_mean_px_porespy": float(theirs[mask].mean()),
            "lt_pixels_within_2px_pct": float(100 * np.mean(np.abs(diff) <= 2)),
            "chord_x_mean_px_ours": float(our_len.mean()), "chords_ours": int(our_len.size),
            "chord_x_mean_px_porespy": float(ps_len.mean()), "chords_porespy": int(ps_len.size),
        })
    return {"porespy_version": ps.__version__, "cases": out}


def taufactor_checks() -> dict:
    import taufactor as tau
    from taufactor.metrics import triple_phase_boundary

    out = []
    for seed, shape, sigma, frac in ((0, (256, 256), (12, 3), 0.5), (1, (256, 256), 4, 0.6),
                                     (2, (192, 320), (8, 4), 0.45)):
        mask = field(seed, shape, sigma, frac)
        t0 = time.perf_counter()
        ours = tortuosity(mask, "y")
        t_ours = time.perf_counter() - t0
        solver = tau.Solver(mask.astype(np.uint8), device="cpu")
        t0 = time.perf_counter()
        theirs = float(np.asarray(solver.solve(verbose=False, conv_crit=1e-2)).ravel()[0])
        t_tau = time.perf_counter() - t0
        out.append({"seed": seed, "shape": list(shape), "eps": ours["eps"],
                    "tau_ours": ours["tau"], "tau_taufactor": theirs,
                    "rel_diff_pct": 100 * (ours["tau"] - theirs) / theirs,
                    "seconds_ours": t_ours, "seconds_taufactor": t_tau,
                    "iterations_ours": ours["iterations"]})
    labels = three_phase(3, (256, 256))
    ours_tpb = int(tpb_corners(labels)[0].sum())
    frac = float(np.asarray(triple_phase_boundary(labels.astype(np.int64))))
    theirs_tpb = frac * (labels.shape[0] - 1) * (labels.shape[1] - 1)
    return {"taufactor_version": getattr(tau, "__version__", "?"), "tortuosity": out,
            "tpb": {"corners_ours": ours_tpb, "corners_taufactor": round(theirs_tpb, 3)}}


def main() -> None:
    result: dict = {}
    for name, check in (("porespy", porespy_checks), ("taufactor", taufactor_checks)):
        try:
            result[name] = check()
        except ImportError as err:
            result[name] = {"skipped": f"not installed: {err}"}
    path = ROOT / "benchmarks" / "analysis_crosscheck.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
