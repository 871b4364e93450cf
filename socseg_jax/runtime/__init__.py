"""Where the job runs: JAX multi-host initialisation, forced CPU host devices, the CPU."""
