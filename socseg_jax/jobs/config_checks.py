"""Config values checked before a job creates a folder or loads a model (the CLI runs
:func:`check_config` first): choices and ranges by key name, wherever the key sits
(``predict.tta``, ``recipe.predict.tta``). Each problem is one line naming the key
(UserError). Unknown keys are the CLI's (``cli.check_override_keys``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

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
    from data_prep.patches import SAMPLERS
    from data_prep.registration.field import CONVENTIONS
    from data_prep.registration.gate import OUTLIER_ACTIONS
    from data_prep.registration.maps import TRANSFORMS
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
        "registration": TRANSFORMS, "registration_outliers": OUTLIER_ACTIONS,
        "sampler": SAMPLERS, "image_dtype": ("uint8", "uint16"),
    }


def check_config(items: Iterable[tuple[str, Any]]) -> None:
    """UserError naming the first key whose value is outside its choices or range; ``items``:
    the config's (dotted key, value) leaves (``cli.flat_items``)."""
    choices = _choices()
    for key, value in items:
        name = key.rsplit(".", 1)[-1]
        if name in choices and value not in choices[name]:
            raise UserError(f"config.{key} must be one of {choices[name]}, got {value!r}")
        if name in RANGES and not isinstance(value, bool):
            test, what = RANGES[name]
            ok = test(value) and (not isinstance(value, float) or math.isfinite(value))
            if not ok:
                raise UserError(f"config.{key} must be {what}, got {value!r}")
