"""job=train on GPUs: bf16 compute, batch 64 over all GPUs, warmup + cosine schedule.

The study's network with bf16 compute (f32 parameters); the batch is global.

python launch.py --config configs/gpu.py --config.dataset_dir DATA --workdir RUN
"""

from ml_collections import ConfigDict
from socseg_jax.configs import default


def get_config() -> ConfigDict:
    config = default.get_config()
    config.model.compute_dtype = "bfloat16"
    config.batch_size = 64
    config.learning_rate = 2e-3
    config.lr_schedule = "warmup_cosine"
    config.warmup_steps = 200
    config.num_train_steps = 6000
    config.checkpoint_every_steps = 1000
    config.eval_every_steps = 500
    config.early_stopping_patience = 6
    return config
