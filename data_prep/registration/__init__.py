"""EDS maps onto the SEM grid, every step in one place, in the order prepare runs them.

1. ``field``: where the EDS field lies in the SEM frame (data-bar conventions: drawn over the
   scan, Zeiss, or appended below it, FEI/Thermo; maps of a sub-area located in the image).
2. ``maps``: element maps brought to one grid, upsampled and registered to the SEM
   (translation, similarity or affine), with a quality score.
3. ``gate``: the checks that refuse a sample whose maps do not fit its SEM: the absolute
   quality gate, outliers of the run, and coarse-map warnings.
"""
