"""job=train on a TPU pod slice: bf16, global batch 256 over every core of every host.

jax.distributed is detected automatically on Cloud TPU; warmup + cosine schedule.

python launch.py --config configs/tpu.py --config.dataset_dir gs://.../DATA --workdir RUN
"""

from ml_collections import ConfigDict
from socseg_jax.configs import gpu


def get_config() -> ConfigDict:
    config = gpu.get_config()
    config.batch_size = 256
    config.learning_rate = 4e-3
    config.warmup_steps = 500
    config.num_train_steps = 4000
    config.distributed.auto = True
    return config
