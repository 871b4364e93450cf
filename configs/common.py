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
    config.batch_size = 32
    config.num_train_steps = 3000
    config.learning_rate = 1e-3
    config.checkpoint_every_steps = 500
    config.log_every_steps = 50
    config.eval_every_steps = 500
    config.augment = True
    config.seed = 0


def predict_config() -> ConfigDict:
    """Sliding-window inference: the study's 256 patches; 50 % overlap, gaussian blending."""
    return ConfigDict(
        {"patch_size": 256, "stride": 128, "batch_size": 8, "blending": "gaussian"}
    )
