"""job=analyze: microstructure metrics of label maps, groups, series and report.html.

python launch.py --config configs/analyze.py --config.input LABELS --config.output_dir OUT

``input``: a folder, glob or .txt list of label maps, or a `segment` output folder (its
summary.csv gives pixel and image sizes). Writes analysis.csv, analysis_groups.csv,
analysis.json, pictures/ and report.html to ``output_dir``.
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    config = analysis_options()
    config.job = "analyze"
    config.input = ""
    config.output_dir = ""
    return config


def analysis_options() -> ConfigDict:
    """The analysis keys, also `segment`'s ``analysis`` section (``--config.analyze=True``)."""
    config = ConfigDict()
    config.label_encoding = "auto"  # 'ids' (0..3, 255 = not sample), 'grey' (0/85/170/255)
    config.pixel_size_nm = 0.0  # when neither summary.csv nor TIFF metadata has it; 0 = unknown
    config.groups_csv = ""  # CSV path,group,time_min,... (wins over group_regex)
    # 'auto': the time as file names give it (t000, _t10, 10min, 20 min, 2h, ox30: the
    # patterns in socseg_jax/analysis/series.py), one group; or a regex with named groups
    # searched in the relative path, e.g. (?P<group>cell\w+)_t(?P<time_min>\d+); '' = none.
    config.group_regex = "auto"
    # Axis for percolation, active TPB and tortuosity: 'both' (y = top-bottom and x =
    # left-right, each reported with its own columns), 'y' or 'x'.
    config.direction = "both"
    config.connectivity = 4  # clusters: 4 = edge neighbours (diffusion needs shared edges), or 8
    config.block_size_px = 256  # blocks for the standard error of the area fractions
    config.tortuosity = True
    config.pictures = True  # per-image PNGs, series PNGs (and their place in report.html)
    return config
