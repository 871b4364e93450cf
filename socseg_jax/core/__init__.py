"""Facts and small tools every stage shares; NumPy only (no JAX), so data_prep uses them too."""
