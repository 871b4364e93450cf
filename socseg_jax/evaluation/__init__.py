"""Scoring against references: device confusion, reference label maps, baselines, figures."""
