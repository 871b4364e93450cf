"""job=segment: an archive of SEM images -> label maps, overlays, summary.csv.

socseg --config socseg:segment --config.input IMAGES \
    --config.output_dir OUT --config.checkpoint RUN

`checkpoint` may list several (comma-separated) train workdirs, Orbax steps or Keras .h5 files:
their softmax outputs are averaged (an ensemble, as the study's 10 models).
"""

from ml_collections import ConfigDict
from socseg_jax.configs import sections
from socseg_jax.configs.analyze import analysis_options


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.job = "segment"
    config.input = ""
    config.output_dir = ""
    config.checkpoint = ""
    sections.segment_options(config)
    config.shard_index = -1  # -1: jax.process_index()
    config.num_shards = 0  # 0: jax.process_count()
    config.predict = sections.predict_config()
    # Microstructure analysis of the segmented images into <output_dir>/analysis/: each image
    # as it is written (a record in analysis/images/, kept by a re-run), then the report
    # (job=analyze on the output folder) at the end of the run; configs/analyze.py: the keys.
    config.analyze = False
    config.analysis = analysis_options()
    return config
