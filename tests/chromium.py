"""Screenshots of the HTML reports in headless Chromium (the tests skip when it is absent).

``SOCSEG_SCREENSHOTS_DIR=docs/images python -m pytest tests/analysis/test_report.py
tests/data_prep/test_prepare.py -k screenshot`` also saves the screenshots there, as the
documentation's pictures of the reports.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import skimage.io

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


def screenshot(page: Path, name: str, size: tuple[int, int] = (1280, 1600)) -> np.ndarray:
    """RGB screenshot (height, width, 3) of ``page`` at ``size`` (width, height) css px."""
    out = page.parent / name
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", f"--screenshot={out}",
             page.resolve().as_uri()],
            check=True, capture_output=True,
        )
    if os.environ.get("SOCSEG_SCREENSHOTS_DIR"):
        docs = Path(os.environ["SOCSEG_SCREENSHOTS_DIR"])
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, docs / name)
    return skimage.io.imread(out)[..., :3]


def pixels_near(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 10) -> int:
    """How many pixels are within ``tolerance`` of ``rgb`` in every channel."""
    return int((np.abs(image.astype(int) - np.array(rgb)).max(axis=-1) <= tolerance).sum())
