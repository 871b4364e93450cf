"""The study's U-Net architecture and the model defaults, apart from the model code so that
the configs can name them without importing JAX (one home: ``UNetConfig`` and
``configs/sections.py`` both read them)."""

from socseg_jax.core.phases import NUM_CLASSES as PHASE_COUNT

FEATURES = (16, 32, 64, 128, 256)  # filters per encoder level, the last the bottleneck
ENCODER_DROPOUT = (0.1, 0.1, 0.2, 0.2, 0.3)  # one rate per encoder level
DECODER_DROPOUT = (0.2, 0.2, 0.1, 0.1)  # one per decoder level, deepest first
IN_CHANNELS = 1  # one SEM detector image
NUM_CLASSES = PHASE_COUNT  # pore, NiO, Ni, YSZ
COMPUTE_DTYPE = "float32"  # arithmetic precision; parameters are always float32
