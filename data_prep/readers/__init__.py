"""Readers of what a user brings: SEM images and their metadata, data bars, EDS maps, labels."""
