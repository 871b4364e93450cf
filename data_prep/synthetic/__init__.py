"""Seeded simulator of SEM + EDS data of oxidised Ni/YSZ electrode cross-sections.

Why: the project needs an embedded, download-free data set in exactly the raw form a user has
(SEM TIFF + lower-resolution, drifted, noisy EDS element maps), hard enough that a global grey
threshold fails, yet with phases recognisable from local context and texture; and (preset
``randomised``) a test bed of many physics, so that labellers are not judged on one tuned point.

Modules: ``params`` (knobs, sample, constants), ``microstructure`` (phase maps, scribbles),
``render`` (SEM, EDS, data bar, ``simulate_sample``), ``randomised`` (ranges, presets,
``random_params``), ``writers`` (raw layout, H5OINA, Zeiss tag, ``write_raw_dataset``).
Convention: EDS content is the truth displaced by ``drift_yx`` (like ``scipy.ndimage.shift``
with +drift), so registering it back needs a shift of ``-drift_yx``.
"""

from data_prep.synthetic.microstructure import simulate_scribbles
from data_prep.synthetic.params import (
    DATA_BARS,
    EDS_FILE_NAMES,
    EDS_RATES,
    ELEMENTS,
    OXIDE_LAWS,
    SimulationParams,
    SyntheticSample,
    eds_grid,
    oxide_thickness_px,
)
from data_prep.synthetic.randomised import (
    DEFAULT_OXIDATION_TIMES,
    DEFAULT_RANGES,
    GREY_ORDERS,
    PRESETS,
    Preset,
    derive_seed,
    param_seed,
    random_params,
    randomised_sample,
)
from data_prep.synthetic.render import add_data_bar, simulate_sample
from data_prep.synthetic.writers import (
    _sample_seed,
    sample_metadata,
    write_h5oina,
    write_raw_dataset,
    write_sample,
    zeiss_sem_tag,
)

__all__ = [
    "DATA_BARS",
    "DEFAULT_OXIDATION_TIMES",
    "DEFAULT_RANGES",
    "EDS_FILE_NAMES",
    "EDS_RATES",
    "ELEMENTS",
    "GREY_ORDERS",
    "OXIDE_LAWS",
    "PRESETS",
    "Preset",
    "SimulationParams",
    "SyntheticSample",
    "_sample_seed",
    "add_data_bar",
    "derive_seed",
    "eds_grid",
    "oxide_thickness_px",
    "param_seed",
    "random_params",
    "randomised_sample",
    "sample_metadata",
    "simulate_sample",
    "simulate_scribbles",
    "write_h5oina",
    "write_raw_dataset",
    "write_sample",
    "zeiss_sem_tag",
]
