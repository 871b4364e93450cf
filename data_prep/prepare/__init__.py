"""job=prepare's work: raw SEM + EDS samples → registered EDS-guided labels → patches → TFDS.

Per sample (``sample.prepare_sample``) it writes the normalised SEM image, the full-size label
map (`labels/<sample>_labels.tif`, uint8 class ids), a confidence map and QA pictures; then
(``run.prepare``) it splits the samples by source image and writes the shards. A sample that
fails is reported in one line and listed in `prepare_report.json` (and `.html`); the others
are still prepared. Settings: ``config.prepare`` (configs/sections.py ``prepare_config``).
"""
