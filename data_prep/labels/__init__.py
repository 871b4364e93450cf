"""EDS-guided training labels: per-pixel phase from registered element maps and the SEM image.

Why: the network learns SEM -> phase; the labels come once from EDS chemistry. Three stages:
(a) ``eds_evidence`` + ``eds_labels``: rule-based decisions from the element evidence, with
reference levels from the maps' histograms (Otsu) and overridable thresholds; (b) a refinement
at SEM resolution taught by the confident pixels of (a): ``refine_mean_field`` (default: EDS
prior x SEM grey-level likelihood, the SEM weighted more where the maps are coarse, smoothed
by mean-field iterations) or ``refine_forest`` (an ilastik-like random forest on multiscale SEM
features); (c) after ``mean_field``,
``eds_model.refine_with_eds_model``: every pixel re-decided against a per-sample forward model
of the maps (fitted rates and blur), its SEM likelihood and its neighbours.
Decisions of stage (a), in order:
  * pore vs solid: the sharp SEM image (dark pores) combined with the smoothed total cation
    signal (Ni + Zr + Y), so that pore boundaries follow the SEM and not the blurred EDS;
  * YSZ vs Ni-bearing: share of the (Zr + Y) signal in the cation signal, each normalised by
    its own level in that phase (a 50 % decision, independent of the phase fractions);
  * NiO vs Ni: oxygen in excess of what YSZ contributes, in units of YSZ's oxygen signal, per
    unit of Ni signal. NiO has ~0.75 of YSZ's O atom fraction (0.50 vs ~0.66), metallic Ni ~0,
    so a fixed threshold (0.3) works whether NiO is absent or dominant.
Confidence is the smallest relative margin of the decisions taken for a pixel.
"""
