"""The screenshots of docs/napari.md: each widget of the napari plugin docked in a viewer.

Uses a quickstart workdir (``socseg --config socseg:quickstart --workdir Q``): a copy of its
raw samples is prepared again with this version (so the EDS maps and the raw folders are
recorded), and its trained model segments. Needs the ``napari`` extra and a display
(``xvfb-run -a python docs/scripts/napari_screenshots.py --quickstart Q``).
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SIZE = (1560, 900)  # viewer window (px)


def _save(viewer, name: str) -> None:
    from qtpy.QtWidgets import QApplication
    from skimage.io import imsave

    for _ in range(5):  # let the docked widget lay out and the canvas draw
        QApplication.processEvents()

    path = ROOT / "docs" / "images" / f"napari_{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart", required=True, help="a quickstart workdir")
    parser.add_argument("--samples", type=int, default=3, help="raw samples to prepare")
    args = parser.parse_args()
    quickstart = Path(args.quickstart)

    import napari
    from qtpy.QtWidgets import QApplication
    from socseg_jax.configs.sections import prepare_config

    from data_prep.prepare.run import prepare
    from socseg_jax.napari import widgets

    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "prepared"
        for sample in sorted((quickstart / "raw").iterdir())[: args.samples]:
            shutil.copytree(sample, raw / sample.name)
        settings = prepare_config()
        settings.update(val_fraction=0.0, test_fraction=0.0)
        prepare(raw, out, settings)

        viewer = napari.Viewer(show=True)
        viewer.window.resize(*SIZE)
        layers = viewer.open(str(out), plugin="socseg_jax")
        for layer in layers:
            if " EDS Ni" in layer.name or "registration edges" in layer.name:
                layer.visible = True
        viewer.layers.selection.active = layers[-1]
        _save(viewer, "reader")
        for layer in list(viewer.layers):
            viewer.layers.remove(layer)

        review = widgets.ReviewWidget(viewer)
        viewer.window.add_dock_widget(review, name="Review and correct", area="right")
        review.folder.setText(str(out))
        review.load_folder()
        labels = review.labels_layer()
        labels.brush_size = 14
        for x in range(150, 260, 4):  # a stroke of Ni across the image
            labels.paint((200 + (x - 150) // 3, x), 2)
        review.save()
        _save(viewer, "review")
        viewer.window.remove_dock_widget(review)

        sem = next(ly for ly in viewer.layers if ly.name.endswith(" SEM"))
        for layer in list(viewer.layers):
            if layer is not sem:
                viewer.layers.remove(layer)
        segment = widgets.SegmentWidget(viewer)
        viewer.window.add_dock_widget(segment, name="Segment", area="right")
        segment.image.setCurrentText(sem.name)
        segment.checkpoint.setText(str(quickstart / "train"))
        worker = segment.run()
        while worker.is_running or segment.last is None:
            QApplication.processEvents()
        _save(viewer, "segment")
        viewer.window.remove_dock_widget(segment)

        measure = widgets.MeasureWidget(viewer)
        viewer.window.add_dock_widget(measure, name="Measure", area="right")
        measure.labels.setCurrentText(f"{sem.name} labels")
        result = measure.run()
        assert result is not None and np.isfinite(result.rows[0][1])
        viewer.camera.zoom *= 3  # the TPB corners show close up
        _save(viewer, "measure")
        viewer.close()


if __name__ == "__main__":
    main()
