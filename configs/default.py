"""job=train, the study's recipe: U-Net 16-256, batch 32, Adam 1e-3, cross-entropy.

python launch.py --config configs/default.py --config.dataset_dir DATA --workdir RUN
"""

from ml_collections import ConfigDict
from socseg_jax.configs import sections


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "train"
    config.dataset_dir = ""
    config.model = sections.model_config()
    sections.train_config(config)
    return config
