"""Quickstart: simulate → prepare → train → segment → score, on a 2-core CPU in minutes.

python launch.py --config configs/quickstart.py --workdir /tmp/quickstart
"""

from ml_collections import ConfigDict

from configs import common


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "quickstart"
    config.synthetic = ConfigDict(
        {"num_samples": 12, "shape": (512, 512), "oxidation_times": (5, 10, 20, 30, 60, 120)}
    )
    config.prepare = common.prepare_config()
    config.prepare.patch_size = 128
    config.prepare.stride = 64
    config.prepare.val_fraction = 0.1
    config.prepare.test_fraction = 0.2
    config.model = common.model_config()
    common.train_config(config)
    config.batch_size = 8
    config.num_train_steps = 600
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 200
    config.log_every_steps = 50
    config.predict = common.predict_config()
    config.predict.patch_size = 128
    config.predict.stride = 64
    return config
