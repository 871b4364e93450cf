"""Benchmark of the napari plugin's reader on one study-sized prepared sample (2856×4096).

Acceptance (issue #27): opening a 2856×4096 sample with all its layers (SEM, labels,
confidence, the registered EDS maps and the registration edges) takes ≤ 3 s on the 2-core
CPU. A raw sample is simulated and prepared first (not timed); then, in a fresh process each
time, (a) the reader alone (files -> layer data) and (b) ``viewer.open`` in a napari viewer
until every layer is added and the canvas has drawn once (a screenshot) are timed. Files are
in the page cache (just written), as when a reviewer reopens a sample. Needs the ``napari``
extra and a display (Xvfb: ``xvfb-run -a python benchmarks/napari_open.py``).

    python benchmarks/napari_open.py [--shape 2856 4096] [--repeats 3]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
t = time.perf_counter()
layers = viewer.open({out!r}, plugin="socseg_jax")
viewer.screenshot(canvas_only=True, flash=False)
print(time.perf_counter() - t, len(layers))
viewer.close()
"""


def _child(code: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    seconds, layers = out.stdout.split()[-2:]
    return float(seconds), int(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(2856, 4096))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "napari_open.json"))
    args = parser.parse_args()

    from socseg_jax.configs.sections import prepare_config

    from data_prep import synthetic
    from data_prep.prepare.run import prepare
    from socseg_jax.runtime.cpu_record import cpu_info

    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        synthetic.write_raw_dataset(raw, 1, seed=0, shape=tuple(args.shape),
                                    oxidation_times=(30,))
        settings = prepare_config()
        settings.update(val_fraction=0.0, test_fraction=0.0)
        t = time.perf_counter()
        prepare(raw, out, settings)
        prepare_s = time.perf_counter() - t
        reader = [_child(_READER.format(out=str(out))) for _ in range(args.repeats)]
        viewer = [_child(_VIEWER.format(out=str(out))) for _ in range(args.repeats)]
    result = {
        "shape": list(args.shape),
        "layers": reader[0][1],
        "reader_seconds": [round(s, 3) for s, _ in reader],
        "reader_median_s": round(statistics.median(s for s, _ in reader), 3),
        "viewer_open_and_draw_seconds": [round(s, 3) for s, _ in viewer],
        "viewer_open_and_draw_median_s": round(statistics.median(s for s, _ in viewer), 3),
        "prepare_seconds": round(prepare_s, 1),
        "cpu": cpu_info(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
