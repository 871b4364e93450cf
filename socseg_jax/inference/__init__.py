"""Whole-image inference: a functional core of jitted window functions and the band plan
(``windows``, ``band_plan``), the model wrappers (``model_apply``) and the thin
``SlidingWindowPredictor`` that holds the settings (``predictor``)."""
