"""A simulated sample taken through registration and stage (a), for the label tests."""

from data_prep.labels.eds_rules import eds_evidence, eds_labels
from data_prep.registration.maps import register_eds
from data_prep.synthetic import SimulationParams, simulate_sample
from socseg_jax.core.intensity import normalize_sem


def stage_a(params: SimulationParams, seed: int):
    """(sample, normalised SEM, evidence, stage-(a) labels, confidence, registered maps, EDS
    pitch in SEM px)."""
    s = simulate_sample(params, seed)
    sem = normalize_sem(s.sem)
    aligned, registration = register_eds(sem, s.eds)
    ev = eds_evidence(sem, aligned)
    lab_a, conf_a = eds_labels(sem, aligned, evidence=ev)
    return s, sem, ev, lab_a, conf_a, aligned, max(registration.scale)
