"""Where the job runs: JAX multi-host initialisation and forced CPU host devices."""
