"""What a user watches during training: console progress, metrics.jsonl, TensorBoard, a curve.

Only process 0 writes. Step metrics stay on the device until a log step, so the training
loop never waits on the host between log steps.
"""

import json
import logging
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from socseg_jax.core.atomic import atomic_path

log = logging.getLogger(__name__)


class TrainingLog:
    """Logs every `log_every` steps and every validation; draws `training_curves.png` at exit."""

    def __init__(self, workdir: Path, total_steps: int, batch_size: int, log_every: int = 50):
        self.workdir, self.total, self.batch_size = workdir, total_steps, batch_size
        self.log_every = max(1, log_every)
        self.is_writer = jax.process_index() == 0
        self.pending: list[dict] = []
        self.history: list[dict] = []
        self.validations: list[dict] = []
        self.t_start = time.perf_counter()
        self.timed_samples = 0
        self.compile_seconds = float("nan")

    def __enter__(self) -> "TrainingLog":
        if self.is_writer:
            from tensorboardX import SummaryWriter

            self.metrics_file = open(self.workdir / "metrics.jsonl", "a")  # noqa: SIM115
            self.tensorboard = SummaryWriter(str(self.workdir / "tensorboard"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.is_writer:
            self.metrics_file.close()
            self.tensorboard.close()
            if self.history:
                self.plot(self.workdir / "training_curves.png")

    def record_step(self, step: int, metrics: dict[str, jax.Array], first: bool) -> None:
        """Keeps the step's device metrics; logs the means every `log_every` steps."""
        self.pending.append(metrics)
        if first:  # the first step compiles: time it apart from the throughput
            jax.block_until_ready(metrics)
            self.compile_seconds = time.perf_counter() - self.t_start
            self.t_start = time.perf_counter()
        else:
            self.timed_samples += self.batch_size
        if step % self.log_every and step != self.total:
            return
        means = {k: float(np.mean([float(m[k]) for m in self.pending])) for k in self.pending[0]}
        self.pending.clear()
        elapsed = time.perf_counter() - self.t_start
        rate = self.timed_samples / elapsed if elapsed > 0 and self.timed_samples else 0.0
        eta = (self.total - step) * self.batch_size / rate if rate else float("nan")
        entry = {"step": step, **means, "samples_per_s": round(rate, 2)}
        self.history.append(entry)
        log.info("step %d/%d  loss %.4f  accuracy %.3f  %.1f samples/s  ETA %s",
                 step, self.total, means["loss"], means["accuracy"], rate, format_seconds(eta))
        self._write(entry, "train")

    def record_validation(self, step: int, scores: dict[str, Any]) -> None:
        """Logs validation mean IoU, per-class IoU and pixel accuracy."""
        entry = {
            "step": step,
            "val_mean_iou": float(scores["mean_iou"]),
            "val_pixel_accuracy": float(scores["pixel_accuracy"]),
            "val_per_class_iou": [float(v) for v in scores["per_class_iou"]],
        }
        self.validations.append(entry)
        per_class = " ".join(f"{v:.3f}" for v in entry["val_per_class_iou"])
        log.info("step %d validation  mean IoU %.4f  per class [%s]  accuracy %.3f",
                 step, entry["val_mean_iou"], per_class, entry["val_pixel_accuracy"])
        self._write(entry, "validation")

    def _write(self, entry: dict[str, Any], prefix: str) -> None:
        if not self.is_writer:
            return
        self.metrics_file.write(json.dumps(entry) + "\n")
        self.metrics_file.flush()
        for key, value in entry.items():
            if key != "step" and isinstance(value, float):
                self.tensorboard.add_scalar(f"{prefix}/{key}", value, entry["step"])
        self.tensorboard.flush()

    def summary(self) -> dict[str, Any]:
        """Final loss, best validation mean IoU and throughput, for train_result.json."""
        last = self.history[-1] if self.history else {}
        best = max((v["val_mean_iou"] for v in self.validations), default=None)
        return {
            "final_loss": last.get("loss", float("nan")),
            "best_val_mean_iou": best,
            "samples_per_s": last.get("samples_per_s"),
            "compile_seconds": self.compile_seconds,
        }

    def plot(self, path: Path) -> None:
        """Training loss and validation mean IoU against step."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([h["step"] for h in self.history], [h["loss"] for h in self.history], "C0-")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss", color="C0")
        if self.validations:
            ax2 = ax.twinx()
            ax2.plot([v["step"] for v in self.validations],
                     [v["val_mean_iou"] for v in self.validations], "C1o-")
            ax2.set_ylabel("validation mean IoU", color="C1")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)


def format_seconds(seconds: float) -> str:
    """'3m05s' style durations for ETAs."""
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
