"""Config values checked before a job creates a folder or loads a model (the CLI runs
:func:`check_config` first): choices and ranges by key name, wherever the key sits
(``predict.tta``, ``recipe.predict.tta``), and an unknown ``--config.*`` key named with the
nearest valid ones. Each problem is one line naming the key (UserError)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator
from typing import Any

from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError

# key name -> (test, what it must be)
_POSITIVE_INT = (lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1")
_NON_NEGATIVE = (lambda v: isinstance(v, int | float) and v >= 0, "a number >= 0")
_FRACTION = (lambda v: isinstance(v, int | float) and 0 <= v <= 1, "between 0 and 1")
_POSITIVE = (lambda v: isinstance(v, int | float) and v > 0, "a number > 0")
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(
        ("batch_size", "patch_size", "stride", "num_train_steps", "grad_accum_steps",
         "num_workers", "prefetch", "overlay_max_size", "checkpoint_every_steps",
         "log_every_steps", "channels", "max_image_bytes", "max_band_pixels"),
        _POSITIVE_INT),
    **dict.fromkeys(
        ("weight_decay", "grad_clip_norm", "warmup_steps", "num_epochs", "eval_every_steps",
         "early_stopping_patience", "mc_samples", "pixel_size_nm", "eds_step_nm",
         "augment_to", "patches_per_image", "local_contrast_px", "eds_model_sweeps",
         "shift_reference_images", "keep_best", "keep_checkpoints"),
        _NON_NEGATIVE),
    **dict.fromkeys(
        ("val_fraction", "test_fraction", "label_smoothing", "apply_prob", "blur_prob",
         "max_patch_iou", "min_registration_quality"),
        _FRACTION),
    "learning_rate": _POSITIVE,
}


def _choices() -> dict[str, tuple[str, ...]]:
    """Key name -> allowed values, from the modules that define them (imported on use)."""
    from data_prep.labels.refinement import REFINEMENTS
    from data_prep.registration.field import CONVENTIONS
    from socseg_jax.analysis.image_metrics import DIRECTIONS
    from socseg_jax.inference.band_plan import PAD_MODES
    from socseg_jax.inference.image_input import PREPROCESSING
    from socseg_jax.inference.windows import TTA_TRANSFORMS
    from socseg_jax.training.losses import LOSSES
    from socseg_jax.training.optim import SCHEDULES

    return {
        "tta": tuple(sorted(TTA_TRANSFORMS)), "blending": ("gaussian", "uniform"),
        "pad_mode": PAD_MODES, "preprocess": PREPROCESSING, "loss": LOSSES,
        "lr_schedule": SCHEDULES, "refine_labels": REFINEMENTS,
        "data_bar_convention": CONVENTIONS, "direction": DIRECTIONS,
        "registration": ("translation", "similarity", "affine"),
        "registration_outliers": ("refuse", "warn"), "sampler": ("grid", "random"),
        "image_dtype": ("uint8", "uint16"),
    }


def check_config(config: ConfigDict) -> None:
    """UserError naming the first key whose value is outside its choices or range."""
    choices = _choices()
    for key, value in _leaves(config):
        name = key.rsplit(".", 1)[-1]
        if name in choices and value not in choices[name]:
            raise UserError(f"config.{key} must be one of {choices[name]}, got {value!r}")
        if name in RANGES and not isinstance(value, bool):
            test, what = RANGES[name]
            ok = test(value) and (not isinstance(value, float) or math.isfinite(value))
            if not ok:
                raise UserError(f"config.{key} must be {what}, got {value!r}")


def unknown_key(config: ConfigDict, key: str) -> str | None:
    """One line for a ``--config.<key>`` override the config does not have (None if it has
    it), with the nearest valid keys."""
    keys = [k for k, _ in _leaves(config)]
    if key in keys or any(k.startswith(f"{key}.") for k in keys):
        return None
    parent, _, name = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    near = [siblings[n] for n in difflib.get_close_matches(name, list(siblings), n=2)]
    near = near or difflib.get_close_matches(key, keys, n=2)  # a misplaced key
    hint = f"; did you mean {' or '.join(f'config.{k}' for k in near)}?" if near else ""
    return f"unknown config key config.{key}{hint}"


def _leaves(config: ConfigDict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in config.items():
        if isinstance(value, ConfigDict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
