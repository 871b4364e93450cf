"""Training: Grain input pipeline, losses, optimiser, the jitted train step, Orbax checkpoints."""
