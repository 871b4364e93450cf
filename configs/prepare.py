"""Prepare raw SEM + EDS samples into TFDS shards.

python launch.py --config configs/prepare.py --config.raw_dir RAW --config.output_dir DATA
  [--config.prepare.registration=similarity] [--config.prepare.refine_labels=mean_field|forest|none]
  [--config.prepare.data_bar=auto|none|<rows>] [--config.prepare.manifest=samples.csv]
"""

from ml_collections import ConfigDict

from configs import common


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "prepare"
    config.raw_dir = ""
    config.output_dir = ""
    config.seed = 0
    config.prepare = common.prepare_config()
    # Optional keys (data_prep.prepare.DEFAULTS holds the same defaults for other callers).
    config.prepare.manifest = ""  # CSV: sample,sem[,eds,labels,scribbles,pixel_size_nm]
    config.prepare.data_bar = "auto"  # SEM information bar: auto, none or a height in rows
    config.prepare.element_pattern = ""  # regex for EDS map names; group 'el' = element
    config.prepare.label_encoding = "auto"  # labels files: auto, ids, grey, ilastik
    config.prepare.registration = "similarity"  # translation, similarity or affine
    # Stage (b) at SEM resolution: mean_field (EDS prior x SEM likelihood), forest, none.
    # A sample with scribbles.png is labelled from its scribbles instead, whatever this says.
    config.prepare.refine_labels = "mean_field"
    config.prepare.label_thresholds = ConfigDict({"nio": 0.3, "sem_weight": 0.65, "ysz": 0.5})
    config.prepare.sampler = "grid"  # grid or random (IoU-capped)
    config.prepare.patches_per_image = 0  # random sampler: 0 = as many as the grid
    config.prepare.max_patch_iou = 0.25
    config.prepare.augment_to = 0  # train records after offline augmentation (0 = none)
    config.prepare.image_dtype = "uint8"  # uint8 or uint16 records
    config.prepare.channels = 1  # SEM detector images per sample: sem.tif, sem2.tif, ...
    config.prepare.n_jobs = 2
    return config
