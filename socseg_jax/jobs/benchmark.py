"""job=benchmark: throughput of the study's U-Net on whatever devices JAX sees.

Measures training samples/s (compile time apart), inference patches/s, sliding-window
megapixels/s, input-pipeline records/s (TFDS + Grain with augmentation), the model's FLOPs from
XLA's cost analysis, achieved FLOP/s and its fraction of the device's peak (measured with a
large f32 matmul in the same run). Every figure is the median of `repetitions` timed runs after
`warmup` untimed ones, with the spread; runners of one run are interleaved (rotated order each
repetition) so that a load change on a shared machine hits them all alike. `benchmarks/peers.py`
reuses these runners and timing helpers to time PyTorch, MONAI and Keras side by side.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

from socseg_jax.core import dataset_layout
from socseg_jax.core.atomic import write_json_atomic
from socseg_jax.jobs.job_checks import require_workdir
from socseg_jax.models.unet import UNet, UNetConfig
from socseg_jax.runtime import distributed
from socseg_jax.runtime.cpu_record import cpu_info
from socseg_jax.training import input_pipeline
from socseg_jax.training.optim import make_optimizer
from socseg_jax.training.train import init_model, make_train_step

log = logging.getLogger(__name__)


@dataclass
class Runner:
    """One measurable workload: `run()` does one repetition and blocks until it is done.

    `items` is what one repetition processes (samples, patches, megapixels, records, FLOPs), so
    a rate is `items / seconds`; `setup_seconds` is the one-off cost (compilation) kept apart.
    """

    name: str
    run: Callable[[], Any]
    items: float
    unit: str
    setup_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max, and spread = (max - min) / median, of repeated measurements."""
    values = [float(v) for v in values]
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
        "n": len(values),
        "values": values,
    }


def measure(runners: Sequence[Runner], repetitions: int, warmup: int = 1) -> dict[str, list]:
    """Seconds per repetition of every runner, interleaved, after `warmup` untimed runs each.

    The order rotates every repetition, so no runner always follows the same neighbour.
    """
    for runner in runners:
        for _ in range(warmup):
            runner.run()
    seconds: dict[str, list[float]] = {r.name: [] for r in runners}
    for rep in range(repetitions):
        shift = rep % len(runners)
        for runner in [*runners[shift:], *runners[:shift]]:
            start = time.perf_counter()
            runner.run()
            seconds[runner.name].append(time.perf_counter() - start)
    return seconds


def rates(runner: Runner, seconds: Sequence[float]) -> dict[str, Any]:
    """`items / s` statistics of one runner, with its unit, setup time and info."""
    return {
        "unit": runner.unit,
        **summarize([runner.items / s for s in seconds]),
        "setup_seconds": runner.setup_seconds,
        **runner.info,
    }


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Per-repetition ratio of two rate series measured side by side, summarized."""
    return summarize([a / b for a, b in zip(numerator, denominator, strict=True)])


def xla_flops(compiled: Any) -> float:
    """FLOPs of a compiled XLA program (per device under SPMD), from its cost analysis."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def _block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


def matmul_runner(size: int, repeats: int = 4) -> Runner:
    """`repeats` f32 `size`x`size` matmuls: the device's measured peak FLOP/s."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size), np.float32))
    fn = jax.jit(lambda x: x @ x)
    start = time.perf_counter()
    compiled = fn.lower(a).compile()
    setup = time.perf_counter() - start

    def run() -> None:
        for _ in range(repeats):
            _block(compiled(a))

    return Runner("matmul_peak", run, 2.0 * size**3 * repeats / 1e9, "GFLOP/s", setup,
                  {"matmul_size": size})


def _random_batch(batch_size: int, patch: int, channels: int, classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (batch_size, patch, patch, channels), dtype=np.uint8),
        "label": rng.integers(0, classes, (batch_size, patch, patch), dtype=np.uint8),
    }


def train_runner(
    model_config: UNetConfig, patch: int, batch_size: int, steps: int, recipe: ConfigDict,
    seed: int = 0, name: str = "jax_train",
) -> Runner:
    """`steps` training steps (dropout on) of the project's step with the optimizer of
    ``recipe`` (the training keys; the benchmark config's ``recipe``: the study's Adam 1e-3)."""
    mesh = distributed.data_mesh()
    distributed.check_batch_size(batch_size)
    fns, params = init_model(model_config, seed)
    recipe = ConfigDict(recipe.to_dict())
    recipe.num_train_steps = steps
    tx = make_optimizer(recipe)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    state = distributed.replicate(state, mesh)
    sample = _random_batch(batch_size, patch, model_config.in_channels,
                           model_config.num_classes, seed)
    batch = distributed.global_batch(sample, mesh)
    start = time.perf_counter()
    compiled = make_train_step(fns, tx, seed).lower(state, batch).compile()
    setup = time.perf_counter() - start
    holder = {"state": state}

    def run() -> None:
        for _ in range(steps):
            holder["state"], metrics = compiled(holder["state"], batch)
        _block(metrics["loss"])

    flops = xla_flops(compiled) * jax.device_count()
    return Runner(name, run, batch_size * steps, "samples/s", setup,
                  {"batch_size": batch_size, "flops_per_step": flops,
                   "compute_dtype": model_config.compute_dtype})


def inference_runner(
    model_config: UNetConfig, patch: int, batch_size: int, batches: int, seed: int = 0
) -> Runner:
    """`batches` eval-mode forward passes (logits) of `batch_size` patches."""
    mesh = distributed.data_mesh()
    distributed.check_batch_size(batch_size)
    fns, params = init_model(model_config, seed)
    params = distributed.replicate(params, mesh)
    sample = _random_batch(batch_size, patch, model_config.in_channels, 1, seed)
    images = distributed.global_batch({"image": sample["image"]}, mesh)["image"]
    start = time.perf_counter()
    compiled = jax.jit(lambda p, x: fns.logits(p, x, None)).lower(params, images).compile()
    setup = time.perf_counter() - start

    def run() -> None:
        for _ in range(batches):
            out = compiled(params, images)
        _block(out)

    flops_per_patch = xla_flops(compiled) * jax.device_count() / batch_size
    return Runner("jax_inference", run, batch_size * batches, "patches/s", setup,
                  {"batch_size": batch_size, "flops_per_patch": flops_per_patch})


def sliding_runner(
    model_config: UNetConfig, shape: Sequence[int], patch: int, stride: int, batch_size: int,
    seed: int = 0, name: str | None = None,
) -> Runner:
    """Blended (gaussian) class probabilities of one (H, W) image with the project's predictor."""
    from socseg_jax.inference.model_apply import make_model_apply_fn
    from socseg_jax.inference.predictor import SlidingWindowPredictor

    model = UNet(model_config, rngs=nnx.Rngs(params=seed))
    predictor = SlidingWindowPredictor(
        make_model_apply_fn(model), patch_size=patch, stride=stride, batch_size=batch_size,
        blending="gaussian",
    )
    image = np.random.default_rng(seed).random(tuple(shape), dtype=np.float32)
    start = time.perf_counter()
    predictor.predict_proba(image)  # compiles every batch and band shape of this image
    setup = time.perf_counter() - start
    return Runner(name or f"jax_sliding_stride{stride}", lambda: predictor.predict_proba(image),
                  shape[0] * shape[1] / 1e6, "megapixels/s", setup,
                  {"image": list(shape), "stride": stride, "batch_size": batch_size})


def synthetic_dataset(root: Path, num_images: int, size: int, patch: int) -> Path:
    """A small TFDS dataset of random images (reused when it exists) for the pipeline figure."""
    import tifffile

    from data_prep.tfds_builder import PreparedSample, build_dataset

    rng = np.random.default_rng(0)
    samples = []
    for i in range(num_images):
        name = f"bench{i}"
        sample = PreparedSample(name, dataset_layout.image_path(root, name),
                                dataset_layout.label_path(root, name),
                                dataset_layout.confidence_path(root, name))
        if not sample.image_path.exists():
            for path in (sample.image_path, sample.label_path):
                path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(sample.image_path, rng.integers(0, 256, (size, size), np.uint8))
            tifffile.imwrite(sample.label_path, rng.integers(0, 4, (size, size), np.uint8))
            tifffile.imwrite(sample.confidence_path, np.full((size, size), 255, np.uint8))
        samples.append(sample)
    settings = {"patch_size": patch, "stride": patch // 2, "channels": 1}
    return build_dataset(root / "tfds", settings, {"train": samples}, {"class_fractions": {}})


def pipeline_runner(dataset_dir: Path, batch_size: int, batches: int, seed: int = 0) -> Runner:
    """`batches` augmented training batches from the project's TFDS + Grain pipeline."""
    iterator = input_pipeline.train_batches(str(dataset_dir), batch_size, 1 << 30, seed)
    start = time.perf_counter()
    next(iterator)  # starts the read threads
    setup = time.perf_counter() - start

    def run() -> None:
        for _ in range(batches):
            next(iterator)

    return Runner("pipeline", run, batch_size * batches, "records/s", setup,
                  {"batch_size": batch_size, "augment": True})


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    import flax
    import optax

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_info(),  # with the cores and the load average at the start
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "versions": {"jax": jax.__version__, "flax": flax.__version__,
                     "optax": optax.__version__},
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def _model_config(config: ConfigDict, dtype: str) -> UNetConfig:
    return UNetConfig.from_dict(config.model.to_dict() | {"compute_dtype": dtype})


def jax_runners(config: ConfigDict, workdir: Path) -> list[Runner]:
    """Every runner of the benchmark job, built (and compiled) from `config.benchmark`."""
    b, seed = config.benchmark, config.get("seed", 0)
    runners = [matmul_runner(b.matmul_size)]
    for dtype in b.train_compute_dtypes:
        suffix = "" if dtype == "float32" else f"_{dtype}"
        runners.append(train_runner(_model_config(config, dtype), b.patch_size,
                                    b.train_batch_size, b.train_steps, config.recipe,
                                    seed, name=f"jax_train{suffix}"))
    f32 = _model_config(config, "float32")
    runners.append(inference_runner(f32, b.patch_size, b.inference_batch_size,
                                    b.inference_batches, seed))
    for stride in b.sliding_strides:
        runners.append(sliding_runner(f32, b.sliding_image_shape, b.patch_size, stride,
                                      b.sliding_batch_size, seed))
    dataset = synthetic_dataset(workdir / "bench_data", b.pipeline_images,
                                b.pipeline_image_size, b.patch_size)
    runners.append(pipeline_runner(dataset, b.train_batch_size, b.pipeline_batches, seed))
    return runners


def derived_figures(results: dict[str, dict]) -> dict[str, Any]:
    """FLOP/s achieved by training and inference, fractions of the measured peak, and the
    pipeline's records/s over the training samples/s (all from medians)."""
    out: dict[str, Any] = {}
    if "matmul_peak" in results:
        out["peak_flops_per_s"] = results["matmul_peak"]["median"] * 1e9
    for name, result in results.items():
        if "flops_per_step" in result:
            achieved = result["flops_per_step"] * result["median"] / result["batch_size"]
        elif "flops_per_patch" in result:
            achieved = result["flops_per_patch"] * result["median"]
        else:
            continue
        peak = out.get("peak_flops_per_s", float("nan"))
        out[name] = {"achieved_flops_per_s": achieved, "fraction_of_peak": achieved / peak}
    if "jax_train" in results and "pipeline" in results:
        out["pipeline_ratio"] = results["pipeline"]["median"] / results["jax_train"]["median"]
    return out


def format_table(results: dict[str, dict], derived: dict[str, Any] | None = None) -> str:
    """A plain-text table: name, median, min-max, spread, unit, setup (compile) seconds."""
    lines = [f"{'measurement':<34}{'median':>12}{'min':>11}{'max':>11}{'spread':>8}  "
             f"{'unit':<14}{'setup s':>8}"]
    for name, r in results.items():
        lines.append(f"{name:<34}{r['median']:>12.4g}{r['min']:>11.4g}{r['max']:>11.4g}"
                     f"{100 * r['spread']:>7.1f}%  {r.get('unit', ''):<14}"
                     f"{r.get('setup_seconds', 0.0):>8.1f}")
    for name, d in (derived or {}).items():
        if isinstance(d, dict):
            lines.append(f"{name + ' achieved':<34}{d['achieved_flops_per_s'] / 1e9:>12.4g}"
                         f"{'':>30}  GFLOP/s ({100 * d['fraction_of_peak']:.1f} % of peak)")
        elif name == "pipeline_ratio":
            lines.append(f"{'pipeline / training':<34}{d:>12.3g}{'':>30}  x")
    return "\n".join(lines)


def run(config: ConfigDict, workdir: str | None) -> dict[str, Any]:
    """Builds every runner, measures them interleaved, writes `<workdir>/benchmark.json` and
    prints the table."""
    workdir = require_workdir(config, workdir)
    b = config.benchmark
    machine = machine_info()
    log.info("compiling the benchmark workloads on %s", machine["devices"])
    runners = jax_runners(config, workdir)
    log.info("measuring %d repetitions after %d warm-up", b.repetitions, b.warmup)
    seconds = measure(runners, b.repetitions, b.warmup)
    results = {r.name: rates(r, seconds[r.name]) for r in runners}
    derived = derived_figures(results)
    report = {"machine": machine | {"load_average_at_end": list(os.getloadavg())},
              "settings": b.to_dict() | {"model": config.model.to_dict()},
              "results": results, "derived": derived}
    write_json_atomic(workdir / "benchmark.json", report)
    print(format_table(results, derived))
    return report
