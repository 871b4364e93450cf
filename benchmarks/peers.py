"""socseg_jax against the peers a user would pick instead, each configured as its best users
would, measured side by side in one run.

Peers (extra `bench`: torch, monai, keras), every torch row with `torch.set_num_threads(cores)`:

* PyTorch: the same U-Net (same layers, dropout placement and Keras-like initialisation:
  truncated he_normal 3x3 convs, glorot_uniform transposed convs and head, zero biases),
  Adam 1e-3 and cross-entropy, in f32 and with bf16 autocast, in three forms:
  `channels_last` (model and inputs; oneDNN's preferred CPU layout), `channels_last` +
  `torch.compile` (inductor), and NCHW (the default layout, kept as a reference row);
  inference under `torch.inference_mode()`, compiled inference with inductor's weight freezing;
* MONAI `sliding_window_inference` on that network, in the same three forms, with the
  project's settings (the same windows and overlap, gaussian blending with sigma 1/8, reflect
  padding, softmax);
* Keras 3 on the JAX backend running the study's model definition (`train_on_batch`).

Every ratio is the project over the FASTEST peer of its group in this run (fastest by median;
`vs_best_peer_each_round` also gives the ratio against the best peer of every round), per
interleaved round; median and min-max over the rounds are reported. Same batch sizes, shapes and
cores (the project runs as `launch.py` runs it: one XLA CPU device per core, each batch split
over them); compilation and warm-up are excluded (reported apart as setup seconds).

Project rows besides the benchmark job's: its default inference (the sliding window with
`configs/sections.py` predict_config) and large windows (patch P, stride P - 2 x the network's
one-sided receptive field, one window per device per call), each against the fastest MONAI at
50 % overlap.

python benchmarks/peers.py                   # ~10 min on a 2-core CPU: 1024x1536 image, stride 128
python benchmarks/peers.py --sliding-strides 128 64 --no-compile   # + the study's stride 64
python benchmarks/peers.py --preset full     # the issue's sizes (batch 32, a 2856x4096 image)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from ml_collections import ConfigDict  # noqa: E402

# Project internals: every import of the project is here.
from socseg_jax.configs import benchmark as benchmark_config  # noqa: E402
from socseg_jax.configs import sections as common_config  # noqa: E402

from socseg_jax.runtime import host_devices  # noqa: E402

# As launch.py does for every job: one XLA CPU device per core, set before jax starts.
host_devices.configure(benchmark_config.get_config("quick"))

import jax  # noqa: E402

from benchmarks.peer_runners import (  # noqa: E402
    context_margin,
    jax_predict_runner,
    keras_train_runner,
    monai_name,
    monai_sliding_runner,
    receptive_field,
    suffix,
    torch_inference_model,
    torch_inference_runner,
    torch_train_runner,
)
from socseg_jax.core.atomic import write_json_atomic  # noqa: E402
from socseg_jax.jobs import benchmark as bench  # noqa: E402
from socseg_jax.models.unet import UNetConfig  # noqa: E402

# What peers.py changes in the benchmark job's presets: the reference sliding-window image.
PEER_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"sliding_image_shape": (1024, 1536), "sliding_strides": (128,)},
    "full": {},
}


TORCH_TRAIN_F32 = ("torch_train_channels_last", "torch_train_channels_last_compile",
                   "torch_train_nchw")
TORCH_TRAIN_BF16 = ("torch_train_bf16_autocast_channels_last", "torch_train_bf16_autocast_nchw")
TORCH_INFERENCE = ("torch_inference_channels_last", "torch_inference_channels_last_compile",
                   "torch_inference_nchw")
JAX_TRAIN = ("jax_train", "jax_train_bfloat16")
RATIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # name: (project, peers)
    "train_ratio_vs_torch": (("jax_train",), TORCH_TRAIN_F32),
    "train_bf16_ratio_vs_torch_bf16": (("jax_train_bfloat16",), TORCH_TRAIN_BF16),
    "train_best_ratio_vs_torch_best": (JAX_TRAIN, TORCH_TRAIN_F32 + TORCH_TRAIN_BF16),
    "train_ratio_vs_keras": (("jax_train",), ("keras_jax_train",)),
    "inference_ratio_vs_torch": (("jax_inference",), TORCH_INFERENCE),
    "pipeline_ratio": (("pipeline",), JAX_TRAIN + TORCH_TRAIN_F32 + TORCH_TRAIN_BF16),
    "pipeline_ratio_vs_jax_train": (("pipeline",), ("jax_train",)),
    # Peer against peer, for the reader: what the layout, compilation and bf16 buy.
    "torch_bf16_over_f32": (TORCH_TRAIN_BF16, TORCH_TRAIN_F32),
    "jax_bf16_over_f32": (("jax_train_bfloat16",), ("jax_train",)),
    "torch_train_channels_last_over_nchw": (("torch_train_channels_last",),
                                            ("torch_train_nchw",)),
    "torch_inference_channels_last_over_nchw": (("torch_inference_channels_last",),
                                                ("torch_inference_nchw",)),
}


def monai_names(stride: int) -> tuple[str, ...]:
    """The MONAI rows at one stride, every layout and compilation."""
    return tuple(monai_name(stride, layout, compiled)
                 for layout, compiled in (("channels_last", False), ("channels_last", True),
                                          ("nchw", False)))


def monai_bf16_name(stride: int) -> str:
    """The MONAI row at one stride under bf16 autocast (channels_last, eager)."""
    return monai_name(stride, "channels_last", False, bf16=True)


def fastest(results: dict[str, dict], names: Sequence[str]) -> str | None:
    """The name, among `names` measured, with the highest median rate."""
    present = [n for n in names if n in results]
    return max(present, key=lambda n: results[n]["median"]) if present else None


def ratio_vs_fastest(
    results: dict[str, dict], project: Sequence[str], peers: Sequence[str]
) -> dict[str, Any] | None:
    """Per-round ratio of the fastest of `project` over the fastest of `peers` (by median),
    summarized; plus, stricter, the ratio against the best peer of every round."""
    top, peer = fastest(results, project), fastest(results, peers)
    if top is None or peer is None:
        return None
    ours = results[top]["values"]
    present = [n for n in peers if n in results]
    best_each = [max(results[n]["values"][i] for n in present) for i in range(len(ours))]
    return bench.paired_ratio(ours, results[peer]["values"]) | {
        "project": top,
        "peer": peer,
        "peers": present,
        "vs_best_peer_each_round": bench.paired_ratio(ours, best_each),
    }


def torch_cpu_paths() -> dict[str, Any]:
    """The CPU paths the PyTorch peers take (ATen's capability and oneDNN's version)."""
    oneDNN = re.search(r"oneDNN v([\d.]+)|MKL-DNN v([\d.]+)", torch.__config__.show())
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": next((g for g in oneDNN.groups() if g), None) if oneDNN else None,
    }


def _build(name: str, make: Callable[[], bench.Runner], runners: list[bench.Runner],
           failures: dict[str, str]) -> None:
    """Builds a runner (compiling it); a failure is recorded, not fatal."""
    print(f"building {name}", flush=True)
    try:
        runners.append(make())
    except Exception as err:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
        failures[name] = f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
        print(f"  failed: {failures[name]}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--repetitions", type=int, default=0, help="0: the preset's (5)")
    parser.add_argument("--threads", type=int, default=host_devices.usable_cores(),
                        help="torch threads (default: every usable core)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "peers.json")
    parser.add_argument("--only", choices=("all", "sliding"), default="all",
                        help="sliding: only the sliding-window rows (JAX and MONAI)")
    parser.add_argument("--sliding-shape", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--sliding-strides", type=int, nargs="+", default=None,
                        help="the first is the headline sliding_ratio_vs_monai")
    parser.add_argument("--large-patches", type=int, nargs="*", default=[1024, 512],
                        help="project rows with these windows, stride P - 2 x context margin")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the pipeline's TFDS data goes (default: a temp folder)")
    return parser.parse_args()


def build_runners(args: argparse.Namespace, config: ConfigDict, workdir: Path,
                  failures: dict[str, str]) -> tuple[list[bench.Runner], dict[str, Any]]:
    """Every runner, project and peers interleaved in the list (measure rotates the order)."""
    b = config.benchmark
    model_config = UNetConfig.from_dict(config.model.to_dict())
    shape = tuple(b.sliding_image_shape)
    layouts = [("channels_last", False), ("nchw", False)]
    if not args.no_compile:
        layouts.insert(1, ("channels_last", True))
    runners: list[bench.Runner] = []
    if args.only == "sliding":
        for s in b.sliding_strides:
            _build(f"jax_sliding_stride{s}", lambda s=s: bench.sliding_runner(
                model_config, shape, b.patch_size, s, b.sliding_batch_size), runners, failures)
    else:
        runners += bench.jax_runners(config, workdir)
        train = (b.patch_size, b.train_batch_size, b.train_steps)
        for layout, compiled in layouts:
            _build("torch_train" + suffix(layout, compiled), lambda lo=layout, c=compiled:
                   torch_train_runner(model_config, *train, False, lo, c), runners, failures)
        for layout in ("channels_last", "nchw"):
            _build(f"torch_train_bf16_autocast_{layout}", lambda lo=layout:
                   torch_train_runner(model_config, *train, True, lo), runners, failures)
        _build("keras_jax_train", lambda: keras_train_runner(model_config, *train), runners,
               failures)
    models = {}
    for layout, compiled in layouts:
        key = suffix(layout, compiled)
        try:
            models[key] = torch_inference_model(model_config, layout, compiled)
        except Exception as err:  # noqa: BLE001
            failures["torch_model" + key] = f"{type(err).__name__}: {err}"
            continue
        if args.only != "sliding":
            _build("torch_inference" + key, lambda m=models[key], lo=layout, c=compiled:
                   torch_inference_runner(m, model_config, b.patch_size, b.inference_batch_size,
                                          b.inference_batches, lo, c), runners, failures)
        for s in b.sliding_strides:
            _build(monai_name(s, layout, compiled), lambda m=models[key], lo=layout, c=compiled,
                   s=s: monai_sliding_runner(m, shape, b.patch_size, s, b.sliding_batch_size, lo,
                                             c), runners, failures)
    if "_channels_last" in models:  # bf16 autocast: the best MONAI on AVX512-BF16 / AMX
        for s in b.sliding_strides:
            _build(monai_bf16_name(s), lambda s=s: monai_sliding_runner(
                models["_channels_last"], shape, b.patch_size, s, b.sliding_batch_size,
                "channels_last", False, bf16=True), runners, failures)
    # The project's default inference: predict_config as the segment job uses it.
    predict = common_config.predict_config()
    same = (predict.patch_size == b.patch_size and predict.stride in b.sliding_strides
            and predict.batch_size == b.sliding_batch_size and predict.blending == "gaussian"
            and predict.get("tta", "none") == "none")
    default = {"predict_config": predict.to_dict(),
               "runner": f"jax_sliding_stride{predict.stride}" if same else
               "jax_default_inference"}
    if not same:
        _build("jax_default_inference", lambda: jax_predict_runner(
            model_config, shape, predict, "jax_default_inference"), runners, failures)
    margin = context_margin(model_config)
    large = []
    for patch in args.large_patches:
        stride = patch - 2 * margin
        if stride < 1 or patch % 2 ** (len(model_config.features) - 1):
            failures[f"large_patch{patch}"] = f"patch {patch} too small or not a multiple of 16"
            continue
        cfg = ConfigDict({"patch_size": patch, "stride": stride, "batch_size": len(
            jax.local_devices()), "blending": "gaussian", "tta": "none"})
        name = f"jax_sliding_patch{patch}_stride{stride}"
        large.append(name)
        _build(name, lambda cfg=cfg, name=name: jax_predict_runner(
            model_config, shape, cfg, name), runners, failures)
    info = {"default_inference": default, "large_windows": large,
            "receptive_field": receptive_field(model_config), "context_margin": margin}
    return runners, info


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    config = benchmark_config.get_config(args.preset)
    b = config.benchmark
    for key, value in PEER_PRESETS[args.preset].items():
        b[key] = value
    if args.repetitions:
        b.repetitions = args.repetitions
    if args.sliding_shape:
        b.sliding_image_shape = tuple(args.sliding_shape)
    if args.sliding_strides:
        b.sliding_strides = tuple(args.sliding_strides)
    machine = bench.machine_info()
    failures: dict[str, str] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runners, info = build_runners(args, config, args.workdir or Path(tmp), failures)
        built = time.perf_counter()
        print(f"measuring {len(runners)} workloads, {b.repetitions} interleaved rounds after "
              f"{b.warmup} warm-up", flush=True)
        seconds = bench.measure(runners, b.repetitions, b.warmup)
    results = {r.name: bench.rates(r, seconds[r.name]) for r in runners}
    ratios = {name: ratio_vs_fastest(results, ours, peers)
              for name, (ours, peers) in RATIOS.items()}
    half = b.patch_size // 2
    for s in b.sliding_strides:
        ratios[f"sliding_ratio_vs_monai_stride{s}"] = ratio_vs_fastest(
            results, (f"jax_sliding_stride{s}",), monai_names(s))
    ratios["sliding_ratio_vs_monai"] = ratios[f"sliding_ratio_vs_monai_stride"
                                              f"{b.sliding_strides[0]}"]
    monai50 = monai_names(half)
    ratios["default_inference_ratio_vs_monai50"] = ratio_vs_fastest(
        results, (info["default_inference"]["runner"],), monai50)
    for name in info["large_windows"]:
        ratios[name.replace("jax_sliding_", "large_window_ratio_vs_monai50_")] = (
            ratio_vs_fastest(results, (name,), monai50))
    # Best of each: the project's default (f32) against MONAI in any precision, bf16 included.
    ratios["default_inference_ratio_vs_monai50_best"] = ratio_vs_fastest(
        results, (info["default_inference"]["runner"],), (*monai50, monai_bf16_name(half)))
    first = b.sliding_strides[0]
    ratios[f"sliding_ratio_vs_monai_best_stride{first}"] = ratio_vs_fastest(
        results, (f"jax_sliding_stride{first}",), (*monai_names(first), monai_bf16_name(first)))
    ratios = {name: r for name, r in ratios.items() if r is not None}
    import jaxlib
    import monai

    machine["versions"] |= {"jaxlib": jaxlib.__version__, "torch": torch.__version__,
                            "monai": monai.__version__}
    if args.only != "sliding":
        import keras

        machine["versions"] |= {"keras": keras.__version__,
                                "keras_backend": keras.backend.backend()}
    report = {
        "machine": machine | {
            "cpu": machine["cpu"] | torch_cpu_paths(),
            "load_average_at_end": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "build_seconds": built - start,
            "total_seconds": time.perf_counter() - start,
        },
        "settings": b.to_dict() | {"preset": args.preset, "model": config.model.to_dict(),
                                   "compile_rows": not args.no_compile} | info,
        **{name: r["median"] for name, r in ratios.items()},
        "ratios": ratios,
        "failures": failures,
        "results": results,
        "derived": bench.derived_figures(results),
    }
    write_json_atomic(args.out, report)
    print(bench.format_table(results, report["derived"]))
    print(f"\n{'ratio (per round, project / fastest peer)':<52}{'median':>8}{'min':>8}"
          f"{'max':>8}  peer")
    for name, r in ratios.items():
        print(f"{name:<52}{r['median']:>8.3f}{r['min']:>8.3f}{r['max']:>8.3f}  {r['peer']}")
    for name, why in failures.items():
        print(f"failed: {name}: {why}")
    cpu = report["machine"]["cpu"]
    print(f"\nCPU {cpu['model_name']} ({', '.join(k for k, v in cpu['isa'].items() if v)}); "
          f"load average at start {cpu['load_average']}, at end {os.getloadavg()}; "
          f"{report['machine']['total_seconds']:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
