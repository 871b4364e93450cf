"""EDS element maps in a folder: which file holds which element, and reading one map (or the
element-named pages of a multi-page TIFF).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from data_prep.errors import ImageReadError
from data_prep.readers.images import MAX_IMAGE_BYTES, read_grey, tiff_pages

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


def unnamed_map_files(eds_dir: str | os.PathLike) -> list[str]:
    """Warnings for the files in ``eds_dir`` named like a map of an element that does not
    exist ('Xx Ka1.tif'): they are not used."""
    eds_dir = Path(eds_dir)
    if not eds_dir.is_dir():
        return []
    return [
        f"EDS file {f.name} ignored: '{m.group(1)}' is not an element symbol"
        for f in sorted(eds_dir.iterdir())
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in EDS_EXTS
        and (m := _ELEMENT_RE.match(f.stem)) and m.group(1) not in ELEMENT_SYMBOLS
    ]


def read_eds_maps(
    path: str | os.PathLike, element: str, max_bytes: int = MAX_IMAGE_BYTES
) -> dict[str, np.ndarray]:
    """Element -> map (counts or intensities, 2-D float32, see ``read_grey``) of one file.

    A file holds ``element``'s map; a TIFF of several pages holds one map per page, each page
    named by its element (PageName tag, ImageJ label or description, e.g. 'Ni Ka1'). A
    multi-page TIFF whose pages are not all named by distinct elements is refused
    (ImageReadError), never read as its first page.
    """
    pages = tiff_pages(path)
    if len(pages) <= 1:
        return {element: read_grey(path, max_bytes)}
    elements = [element_of(name) for _, name in pages]
    if None in elements or len(set(elements)) < len(elements):
        names = ", ".join(repr(name) for _, name in pages[:6])
        raise ImageReadError(
            f"{path}: a TIFF of {len(pages)} pages not named by element (page names: {names}); "
            "save one map per file, or name each page by its element (PageName tag)"
        )
    return {el: read_grey(path, max_bytes, index)
            for el, (index, _) in zip(elements, pages, strict=True)}
