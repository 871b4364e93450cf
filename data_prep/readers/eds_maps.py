"""EDS element maps in a folder: which file holds which element, and reading one map.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from data_prep.readers.images import MAX_IMAGE_BYTES, read_grey

EDS_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy", ".csv")


REQUIRED_ELEMENTS = ("Ni", "O", "Zr")


OPTIONAL_ELEMENTS = ("Y",)


# fmt: off
ELEMENT_SYMBOLS = frozenset("""
H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br
Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho
Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es
Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og
""".split())


# fmt: on
_ELEMENT_RE = re.compile(r"^([A-Z][a-z]?)(?![A-Za-z])")


def element_of(file_name: str, pattern: str | None = None) -> str | None:
    """Element symbol a map file name starts with ('Ni Ka1.tif' -> 'Ni'), or None.

    ``pattern`` (a regular expression searched in the name) may replace the default rule; its
    group ``el`` (or its first group) is the element symbol, e.g. ``r"map_(?P<el>[A-Z][a-z]?)"``.
    """
    if pattern:
        m = re.search(pattern, file_name)
        el = (m.groupdict().get("el") or m.group(1)) if m else None
    else:
        m = _ELEMENT_RE.match(file_name)
        el = m.group(1) if m else None
    return el if el in ELEMENT_SYMBOLS else None


def find_eds_maps(eds_dir: str | os.PathLike, pattern: str | None = None) -> dict[str, Path]:
    """Map element symbol -> file for the element maps in ``eds_dir``.

    A file belongs to an element when its name starts with the symbol followed by a non-letter
    or the end of the stem ('Ni Ka1.tif', 'O.png', 'Ni_Ka.tif'; 'N.tif' is nitrogen, not nickel,
    'Os La.tif' is osmium, not oxygen). When several files match, the first in sorted order wins.
    """
    eds_dir = Path(eds_dir)
    if not eds_dir.is_dir():
        return {}
    maps: dict[str, Path] = {}
    for f in sorted(eds_dir.iterdir()):
        if f.name.startswith(".") or not f.is_file() or f.suffix.lower() not in EDS_EXTS:
            continue
        el = element_of(f.stem, pattern)
        if el is not None and el not in maps:
            maps[el] = f
    return maps


def read_eds_map(path: str | os.PathLike, max_bytes: int = MAX_IMAGE_BYTES) -> np.ndarray:
    """Read one element map (counts or intensities) as 2-D float32 (see ``read_grey``)."""
    return read_grey(path, max_bytes)
