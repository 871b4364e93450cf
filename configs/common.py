"""Shared config sections, so every job uses the same key names and defaults."""

from ml_collections import ConfigDict


def model_config() -> ConfigDict:
    """The study's U-Net: 16-32-64-128-256 filters, its dropout rates, 1 SEM channel, 4 phases."""
    return ConfigDict(
        {
            "features": (16, 32, 64, 128, 256),
            "encoder_dropout": (0.1, 0.1, 0.2, 0.2, 0.3),
            "decoder_dropout": (0.2, 0.2, 0.1, 0.1),
            "in_channels": 1,
            "num_classes": 4,
            "compute_dtype": "float32",
        }
    )


def prepare_config() -> ConfigDict:
    """Raw SEM + EDS → labels → patches → TFDS shards."""
    return ConfigDict(
        {
            "patch_size": 256,
            "stride": 128,
            "val_fraction": 0.15,
            "test_fraction": 0.15,
            "min_registration_quality": 0.3,
        }
    )


def train_config(config: ConfigDict) -> None:
    """Adds the training keys (flat, as in DESIGN.md) to `config`: the study's recipe."""
    config.batch_size = 32  # global, split over every device of every process
    config.num_train_steps = 3000
    config.num_epochs = 0  # > 0: train for this many epochs instead of num_train_steps
    config.learning_rate = 1e-3
    config.lr_schedule = "constant"  # constant | cosine | warmup_cosine
    config.warmup_steps = 0
    config.weight_decay = 0.0  # > 0: AdamW
    config.grad_clip_norm = 0.0  # > 0: clip the global gradient norm
    config.grad_accum_steps = 1
    config.loss = "cross_entropy"  # cross_entropy | weighted_cross_entropy | cross_entropy_dice
    config.class_weights = ()  # for weighted_cross_entropy; empty: inverse train frequencies
    config.label_smoothing = 0.0
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3  # latest checkpoints kept (plus the best by validation mIoU)
    config.keep_best = 1
    config.log_every_steps = 50
    config.eval_every_steps = 500  # validation mean IoU; 0 = only at the end
    config.early_stopping_patience = 0  # evaluations without improvement; 0 = never stop
    config.augment = True
    config.seed = 0
    config.distributed = ConfigDict(
        {"coordinator_address": "", "num_processes": 0, "process_id": -1, "auto": False}
    )


def predict_config() -> ConfigDict:
    """Sliding-window inference: the study's 256 patches; 50 % overlap, gaussian blending."""
    return ConfigDict(
        {"patch_size": 256, "stride": 128, "batch_size": 8, "blending": "gaussian",
         "tta": "none"}  # tta: none | flips (4 passes) | d4 (8 passes)
    )
