"""Segment a folder tree, glob or list file of SEM images with a trained checkpoint.

python launch.py --config configs/segment.py --config.input IMAGES \
    --config.output_dir OUT --config.checkpoint RUN

`checkpoint` may list several (comma-separated) train workdirs, Orbax steps or Keras .h5 files:
their softmax outputs are averaged (an ensemble, as the study's 10 models).
"""

from ml_collections import ConfigDict

from configs import common


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "segment"
    config.input = ""
    config.output_dir = ""
    config.checkpoint = ""
    config.label_encoding = "ids"  # or 'grey' (the study's 0/85/170/255)
    config.overwrite = False  # False: skip images whose outputs are complete (resume)
    config.save_probabilities = False  # <stem>_proba.tif, float16 (K, H, W)
    config.save_uncertainty = False  # <stem>_entropy.tif and <stem>_maxprob.tif, float16
    config.preprocess = "percentile"  # or 'keras_l2_rows' for the study's Keras models
    config.data_bar_height = "0"  # rows cut at the bottom (SEM data bar); 'auto': detected
    config.pixel_size_nm = 0.0  # used when a file has no pixel-size metadata; 0 = unknown
    config.overlay_max_size = 4096  # overlays of larger images are subsampled
    config.tiff_compression = "zlib"  # '' for uncompressed TIFFs
    config.num_workers = 2  # CPU threads decoding the next images
    config.prefetch = 2  # images decoded ahead of the predictor
    config.shard_index = -1  # -1: jax.process_index()
    config.num_shards = 0  # 0: jax.process_count()
    config.predict = common.predict_config()
    config.predict.pad_mode = "reflect"
    config.predict.mc_samples = 0  # > 0: Monte-Carlo dropout passes per model
    config.predict.seed = 0  # seeds MC dropout
    config.predict.max_band_pixels = 1 << 24  # bounds memory: larger images go in row bands
    return config
