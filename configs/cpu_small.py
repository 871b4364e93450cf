"""job=train on a laptop or CI runner: 128 patches, small batch, cosine schedule.

The study's network in f32; minutes, not hours.

python launch.py --config configs/cpu_small.py --config.dataset_dir DATA --workdir RUN
"""

from ml_collections import ConfigDict
from socseg_jax.configs import default


def get_config() -> ConfigDict:
    config = default.get_config()
    config.batch_size = 8
    config.num_train_steps = 800
    config.learning_rate = 2e-3
    config.lr_schedule = "warmup_cosine"
    config.warmup_steps = 30
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 200
    return config
