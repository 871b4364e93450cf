"""Microstructure analysis of segmented Ni/YSZ label maps (issue #14).

Metrics: area fractions (+ block SE), TPB density (all / active / oxidised), connectivity,
local thickness, chord lengths, particle sizes, interface densities, tortuosity factor.
Results are in µm when the pixel size is known, px otherwise; every key names its unit.
"""
