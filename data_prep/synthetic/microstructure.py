"""Phase maps: random interpenetrating pore/Ni/YSZ structure, NiO growth, hand-like scribbles.

Why Gaussian random fields: their argmax gives connected, tortuous phases like a sintered
cermet, with one knob (``feature_size``) for the particle size and biases for the fractions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from data_prep.synthetic.params import SimulationParams, oxide_thickness_px
from socseg_jax.core.phases import NI, NIO, PORE, YSZ


def grf(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma`` (wrap borders)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _argmax_with_fractions(fields: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Argmax over biased fields, with biases tuned so class fractions match ``fractions``."""
    bias = np.zeros(len(fields), dtype=np.float32)
    sub = fields[:, ::3, ::3]
    for _ in range(40):
        lab = np.argmax(sub + bias[:, None, None], axis=0)
        frac = np.bincount(lab.ravel(), minlength=len(fields)) / lab.size
        err = fractions - frac
        if np.abs(err).max() < 0.004:
            break
        bias += 1.5 * err
    return np.argmax(fields + bias[:, None, None], axis=0)


def microstructure(
    rng: np.random.Generator, shape: tuple[int, int], p: SimulationParams
) -> np.ndarray:
    """Pore/Ni/YSZ class ids (0, 2, 3) of an unoxidised, interpenetrating structure."""
    s = p.feature_size
    fields = np.stack([grf(rng, shape, s), grf(rng, shape, 1.25 * s), grf(rng, shape, 0.85 * s)])
    lab = _argmax_with_fractions(fields, np.asarray(p.volume_fractions, dtype=np.float32))
    return np.array([PORE, NI, YSZ], dtype=np.uint8)[lab]


def oxidise(rng: np.random.Generator, phases: np.ndarray, p: SimulationParams) -> np.ndarray:
    """Grow NiO shells into pore-exposed Ni (thickness from ``p.oxide_law``, locally rough)
    with outward growth into the pores (the Ni -> NiO volume expansion), optionally capped
    at ``oxide_volume_cap`` x the oxidised Ni area (mass balance, so pores never vanish)."""
    if p.oxidation_min <= 0:
        return phases
    d = oxide_thickness_px(p)
    rough = 1.0 + p.oxide_roughness * np.clip(grf(rng, phases.shape, 3.0), -2.5, 2.5) / 1.5
    d_local = d * np.clip(rough, 0.2, None)
    pore = phases == PORE
    dist_pore = ndi.distance_transform_edt(~pore)
    nio = (phases == NI) & (dist_pore <= d_local + 0.5)
    out = phases.copy()
    out[nio] = NIO
    d_out = p.oxide_outward * d_local
    if np.any(nio):
        dist_nio = ndi.distance_transform_edt(~nio)
        grown = pore & (dist_nio <= d_out)
        cap = int(p.oxide_volume_cap * nio.sum())
        if p.oxide_volume_cap > 0 and grown.sum() > cap:  # mass balance: keep the nearest
            order = np.argsort(np.where(grown, dist_nio, np.inf), axis=None, kind="stable")
            grown = np.zeros_like(grown)
            grown.flat[order[:cap]] = True
        out[grown] = NIO
    return out


def voronoi(rng: np.random.Generator, shape: tuple[int, int], size: float) -> np.ndarray:
    """Voronoi grain ids with mean grain diameter ~ ``size`` px."""
    n = max(1, int(shape[0] * shape[1] / (size * size)))
    seeds = np.ones(shape, dtype=bool)
    ys, xs = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    seeds[ys, xs] = False
    ids = np.zeros(shape, dtype=np.int32)
    ids[ys, xs] = np.arange(1, n + 1)
    idx = ndi.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    return ids[idx[0], idx[1]]


def simulate_scribbles(phases: np.ndarray, strokes: int, seed: int, length: int = 30) -> np.ndarray:
    """Hand-label-like scribbles for a phase map: ``strokes`` straight strokes of up to
    ``length`` px, shared equally by the phases present (as a person scribbles each phase),
    each from a random point of its phase and stopped where that phase ends. uint8,
    0 = unlabelled, class id + 1 elsewhere (ilastik's convention)."""
    rng = np.random.default_rng(seed)
    h, w = phases.shape
    out = np.zeros((h, w), np.uint8)
    present = [c for c in np.unique(phases) if (phases == c).mean() >= 0.005]
    steps = np.arange(length)
    for cls in present:
        ys0, xs0 = np.nonzero(phases == cls)
        for k in rng.choice(ys0.size, max(1, strokes // len(present))):
            y, x = int(ys0[k]), int(xs0[k])
            angle = rng.uniform(0.0, 2.0 * np.pi)
            ys = np.rint(y + steps * np.sin(angle)).astype(int)
            xs = np.rint(x + steps * np.cos(angle)).astype(int)
            inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            n = int(np.argmin(inside)) if not inside.all() else length
            same = phases[ys[:n], xs[:n]] == cls
            n = int(np.argmin(same)) if not same.all() else n
            out[ys[:n], xs[:n]] = cls + 1
    return out
