"""Benchmark of the napari plugin's reader on one study-sized prepared sample (2856×4096).

Acceptance (issue #27): opening a 2856×4096 sample with all its layers (SEM, labels,
confidence, the registered EDS maps and the registration edges) takes ≤ 3 s on the 2-core
CPU. A raw sample is simulated and prepared first (not timed); then, in a fresh process each
time, (a) the reader alone (files -> layer data) and (b) ``viewer.open`` in a napari viewer
until every layer is added and the canvas has drawn once (a screenshot) are timed. Files are
in the page cache (just written), as when a reviewer reopens a sample. Needs the ``napari``
extra and a display (Xvfb: ``xvfb-run -a python benchmarks/napari_open.py``).

    python benchmarks/napari_open.py [--shape 2856 4096] [--repeats 3] [--keep DIR]

``--keep DIR``: prepare into DIR and keep it (a DIR already prepared is reused, not timed).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_READER = """
import sys, time
t = time.perf_counter()
from socseg_jax.napari.layer_data import read_path
layers = read_path({out!r})
print(time.perf_counter() - t, len(layers))
"""

_VIEWER = """
import sys, time
import napari
viewer = napari.Viewer(show=True)
times = []
for _ in range(2):  # cold: the session's first open; warm: the same sample opened again
    t = time.perf_counter()
    layers = viewer.open({out!r}, plugin="socseg_jax")
    viewer.screenshot(canvas_only=True, flash=False)
    times.append(time.perf_counter() - t)
    viewer.layers.clear()
print(*times, len(layers))
viewer.close()
"""


def _child(code: str) -> list[float]:
    """The seconds a child prints, the layer count last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return [float(v) for v in out.stdout.split("\n")[-2].split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(2856, 4096))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "napari_open.json"))
    parser.add_argument("--keep", default="", help="prepare into (or reuse) this folder")
    args = parser.parse_args()

    from socseg_jax.configs.sections import prepare_config

    from data_prep import synthetic
    from data_prep.prepare.run import prepare
    from socseg_jax.runtime.cpu_record import cpu_info

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        raw, out = work / "raw", work / "out"
        prepare_s = None
        if not (out / "prepare_report.json").is_file():
            synthetic.write_raw_dataset(raw, 1, seed=0, shape=tuple(args.shape),
                                        oxidation_times=(30,))
            settings = prepare_config()
            settings.update(val_fraction=0.0, test_fraction=0.0)
            t = time.perf_counter()
            prepare(raw, out, settings)
            prepare_s = round(time.perf_counter() - t, 1)
        reader = [_child(_READER.format(out=str(out))) for _ in range(args.repeats)]
        viewer = [_child(_VIEWER.format(out=str(out))) for _ in range(args.repeats)]
    def summary(values: list[float]) -> dict[str, Any]:
        return {"seconds": [round(v, 3) for v in values],
                "median_s": round(statistics.median(values), 3)}

    result = {
        "shape": list(args.shape),
        "layers": int(reader[0][-1]),
        # files -> layer data in a fresh process, the plugin's imports included
        "reader": summary([r[0] for r in reader]),
        # viewer.open until every layer is added and the canvas has drawn once: the first
        # open of a napari session (one-time imports such as pandas for the phase names,
        # shader compilation) and the same sample opened again
        "viewer_cold": summary([v[0] for v in viewer]),
        "viewer_warm": summary([v[1] for v in viewer]),
        "prepare_seconds": prepare_s,
        "cpu": cpu_info(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
