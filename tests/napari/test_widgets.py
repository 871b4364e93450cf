"""The plugin in a headless viewer (napari's make_napari_viewer): opening a prepare output,
review -> prepare again, segment = job=segment, measure = job=analyze, a screenshot."""

import csv
import json
import math

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")

from socseg_jax.configs.analyze import get_config as analyze_config  # noqa: E402
from socseg_jax.configs.segment import get_config as segment_config  # noqa: E402

from data_prep.prepare.run import prepare  # noqa: E402
from socseg_jax.core import dataset_layout  # noqa: E402
from socseg_jax.core.phases import CLASS_NAMES  # noqa: E402
from socseg_jax.jobs import analyze, segment  # noqa: E402
from socseg_jax.napari import layer_data, review, widgets  # noqa: E402
from socseg_jax.napari.writer import write_class_ids  # noqa: E402
from tests.napari.conftest import prepare_settings  # noqa: E402

PATCH = 32


def test_open_prepare_output_in_the_viewer(make_napari_viewer, prepared):
    _, out = prepared
    viewer = make_napari_viewer()
    layers = viewer.open(str(out), plugin="socseg_jax")
    name = review.review_order(layer_data.read_prepare_report(out))[0]
    by_name = {layer.name: layer for layer in layers}
    np.testing.assert_array_equal(by_name[f"{name} labels"].data,
                                  tifffile.imread(dataset_layout.label_path(out, name)))
    np.testing.assert_array_equal(by_name[f"{name} SEM"].data,
                                  tifffile.imread(dataset_layout.image_path(out, name)))
    assert not by_name[f"{name} EDS Ni"].visible
    labels = by_name[f"{name} labels"]
    phase = CLASS_NAMES[int(labels.data[5, 5])]
    where = tuple(np.array([5, 5]) * labels.scale)  # world coordinates (µm)
    assert f"phase: {phase}" in labels.get_status(where)["coordinates"]  # hover text


def test_painted_stroke_goes_to_labels_tif_and_the_next_prepare(make_napari_viewer, prepared):
    raw, out = prepared
    viewer = make_napari_viewer()
    widget = widgets.ReviewWidget(viewer)
    widget.folder.setText(str(out))
    widget.load_folder()
    name = widget.sample()
    assert name == review.review_order(layer_data.read_prepare_report(out))[0]
    layer = widget.labels_layer()
    before = np.array(layer.data)
    new = int((before[40, 40] + 1) % 4)
    layer.brush_size = 5
    layer.paint((40, 40), new)  # napari's own paint brush (a stroke's dab)
    layer.paint((40, 50), new)
    painted = np.array(layer.data) != before
    assert painted.any()
    path = widget.save()
    assert path == raw / name / review.LABELS_FILE
    written = tifffile.imread(path)
    np.testing.assert_array_equal(written != before, painted)  # exactly those pixels
    report = prepare(raw, tmp := out.parent / "again", prepare_settings())
    entry = layer_data.sample_report(report, name)
    assert entry["label_source"] == "labels file"
    assert entry["metadata"]["labels_file"] == str(path)
    np.testing.assert_array_equal(tifffile.imread(dataset_layout.label_path(tmp, name)),
                                  written)
    assert json.loads((tmp / dataset_layout.REPORT_JSON).read_text())["samples"]


def test_segment_widget_equals_the_segment_job(make_napari_viewer, qtbot, checkpoint_dir,
                                               simulated_raw, tmp_path):
    source = sorted(simulated_raw.glob("*/sem.tif"))[0]
    config = segment_config()
    config.input, config.output_dir = str(source), str(tmp_path / "out")
    config.checkpoint = str(checkpoint_dir)
    config.predict.update(patch_size=PATCH, stride=16, batch_size=4)
    segment.run(config, None)
    expected = tifffile.imread(next((tmp_path / "out").glob("*_labels.tif")))
    viewer = make_napari_viewer()
    viewer.add_image(tifffile.imread(source), name="sem")
    widget = widgets.SegmentWidget(viewer)
    widget.checkpoint.setText(str(checkpoint_dir))
    widget.config = lambda: config  # the job's settings (patch 32 for the tiny net)
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: "sem labels" in viewer.layers, timeout=10_000)
    np.testing.assert_array_equal(viewer.layers["sem labels"].data, expected)
    assert "sem entropy" in viewer.layers and "pore" in widget.result.text()


def test_segment_widget_cancel_adds_nothing(make_napari_viewer, qtbot, checkpoint_dir):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((48, 64), np.uint8), name="sem")
    widget = widgets.SegmentWidget(viewer)
    widget.checkpoint.setText(str(checkpoint_dir))
    worker = widget.run()
    with qtbot.waitSignal(worker.aborted, timeout=60_000):
        widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=10_000)
    assert "sem labels" not in viewer.layers and widget.last is None


def test_measure_widget_equals_the_analyze_job(make_napari_viewer, prepared, tmp_path):
    _, out = prepared
    name = review.review_order(layer_data.read_prepare_report(out))[0]
    labels = tifffile.imread(dataset_layout.label_path(out, name))
    write_class_ids(tmp_path / "maps" / f"{name}_labels.tif", labels, 40.0)
    config = analyze_config()
    config.input, config.output_dir = str(tmp_path / "maps"), str(tmp_path / "analysis")
    config.pictures = False
    analyze.run(config, None)
    with open(tmp_path / "analysis" / "analysis.csv", newline="") as f:
        row = next(csv.DictReader(f))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "maps" / f"{name}_labels.tif"), plugin="socseg_jax")
    widget = widgets.MeasureWidget(viewer)
    result = widget.run()
    assert result is not None and widget.table.rowCount() == len(result.rows) > 10
    compared = 0
    for key, value in result.metrics.items():
        if isinstance(value, str) or key not in row:
            continue
        expected = float(row[key])
        assert (math.isnan(expected) and math.isnan(value)) or value == pytest.approx(
            expected, rel=1e-6, abs=1e-9), key
        compared += 1
    assert compared > 50
    units = {widget.table.item(i, 2).text() for i in range(widget.table.rowCount())}
    assert {"%", "µm", "1/µm²"} <= units
    active = viewer.layers[f"{name} labels active TPB ({result.axis})"]
    assert len(active.data) + len(result.inactive) == int(row["tpb_count"])


def test_screenshot_with_the_widgets_is_not_blank(make_napari_viewer, prepared):
    _, out = prepared
    viewer = make_napari_viewer(show=True)
    viewer.open(str(out), plugin="socseg_jax")
    for widget in (widgets.ReviewWidget(viewer), widgets.MeasureWidget(viewer)):
        viewer.window.add_dock_widget(widget)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot[..., :3].std() > 10


def test_napari_lists_the_plugin_and_its_widgets():
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("socseg_jax")
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Review and correct", "Segment", "Measure"]
    assert manifest.contributions.readers and manifest.contributions.writers
