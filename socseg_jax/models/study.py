"""The study's U-Net architecture, apart from the model code so that the configs can name it
without importing JAX."""

FEATURES = (16, 32, 64, 128, 256)  # filters per encoder level, the last the bottleneck
ENCODER_DROPOUT = (0.1, 0.1, 0.2, 0.2, 0.3)  # one rate per encoder level
DECODER_DROPOUT = (0.2, 0.2, 0.1, 0.1)  # one per decoder level, deepest first
