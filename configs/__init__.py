"""Config presets: one file per job, each with get_config() (ml_collections, big_vision style)."""
