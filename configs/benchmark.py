"""job=benchmark: throughput of the study's U-Net on this machine (:quick for minutes).

Training, inference, sliding-window and input-pipeline throughput (patch 256) on every
device JAX sees; writes <workdir>/benchmark.json + a table.

python launch.py --config configs/benchmark.py --workdir RUN          # the issue's full sizes
python launch.py --config configs/benchmark.py:quick --workdir RUN    # minutes on a 2-core CPU
"""

from ml_collections import ConfigDict
from socseg_jax.configs import sections


def get_config(preset: str = "full") -> ConfigDict:
    """`full`: the study's 2856x4096 SEM image for the sliding window, batch 32;
    `quick`: the same network and patch size on smaller workloads (a 2-core CPU in minutes)."""
    if preset not in ("full", "quick"):
        raise ValueError(f"benchmark preset must be 'full' or 'quick', got {preset!r}")
    quick = preset == "quick"
    config = ConfigDict()
    config.job = "benchmark"
    config.seed = 0
    config.model = sections.model_config()
    recipe = ConfigDict()
    sections.train_config(recipe)  # the timed training steps' optimizer: the study's recipe
    config.recipe = ConfigDict({k: recipe[k] for k in sections.OPTIMIZER_KEYS})
    config.benchmark = ConfigDict(
        {
            "patch_size": 256,
            "repetitions": 5,  # timed runs per figure (median and spread reported)
            "warmup": 1,  # untimed runs per figure, after compilation
            "train_batch_size": 8 if quick else 32,
            "train_steps": 1 if quick else 5,  # steps per repetition
            "train_compute_dtypes": ("float32", "bfloat16"),
            "inference_batch_size": 8,
            "inference_batches": 2 if quick else 10,
            "sliding_image_shape": (512, 512) if quick else (2856, 4096),
            "sliding_strides": (64, 128),  # the study's stride, and 50 % overlap
            "sliding_batch_size": 8,
            "pipeline_images": 2,
            "pipeline_image_size": 1024,
            "pipeline_batches": 20 if quick else 50,
            "matmul_size": 2048 if quick else 4096,
        }
    )
    return config
