"""Segment a folder tree, glob or list file of SEM images with a trained checkpoint.

python launch.py --config configs/segment.py --config.input IMAGES \
    --config.output_dir OUT --config.checkpoint RUN
"""

from ml_collections import ConfigDict

from configs import common


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "segment"
    config.input = ""
    config.output_dir = ""
    config.checkpoint = ""
    config.label_encoding = "ids"
    config.overwrite = False
    config.predict = common.predict_config()
    return config
