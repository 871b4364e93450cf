"""job=evaluate: score a checkpoint on a prepared split or on images with references.

python launch.py --config configs/evaluate.py --config.checkpoint RUN --config.dataset_dir DATA
python launch.py --config configs/evaluate.py --config.checkpoint RUN \
    --config.input IMAGES --config.truth_dir LABELS
"""

from ml_collections import ConfigDict
from socseg_jax.configs import sections


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "evaluate"
    config.checkpoint = ""
    config.dataset_dir = ""
    config.split = "test"
    config.input = ""
    config.truth_dir = ""
    config.predict = sections.predict_config()
    return config
