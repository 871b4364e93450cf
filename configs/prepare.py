"""job=prepare: raw SEM + EDS samples -> labels, QA pictures and TFDS shards.

python launch.py --config configs/prepare.py --config.raw_dir RAW --config.output_dir DATA
  [--config.prepare.registration=similarity] [--config.prepare.refine_labels=mean_field|forest|none]
  [--config.prepare.data_bar=auto|none|<rows>] [--config.prepare.manifest=samples.csv]
  [--config.prepare.data_bar_convention=auto|overlay|appended]
  [--config.prepare.registration_outliers=refuse|warn] [--config.prepare.eds_step_nm=NM]
"""

from ml_collections import ConfigDict
from socseg_jax.configs import sections


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "prepare"
    config.raw_dir = ""
    config.output_dir = ""
    config.seed = 0
    config.prepare = sections.prepare_config()
    return config
