"""napari plugin (the ``napari`` extra): readers for `prepare` and `segment` outputs, a writer
for Labels layers, and dock widgets to review and correct, segment and measure.

Only ``widgets`` imports Qt and napari; the core package never imports this sub-package.
"""
