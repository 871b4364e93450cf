"""Readers, review order, saving fixes and measuring, without Qt."""

import numpy as np
import pytest
import tifffile

from data_prep import qa_pictures
from data_prep.readers.sem_metadata import read_pixel_size_nm
from data_prep.samples.raw_sample import read_raw_sample
from socseg_jax.core import dataset_layout
from socseg_jax.core.errors import UserError
from socseg_jax.napari import layer_data, review
from socseg_jax.napari.writer import napari_write_labels


def test_prepare_layers_equal_the_files(prepared):
    _, out = prepared
    report = layer_data.read_prepare_report(out)
    name = review.review_order(report)[0]
    layers = {kwargs["name"]: (data, kwargs, kind)
              for data, kwargs, kind in layer_data.read_path(out)}
    pixel_um = layer_data.sample_report(report, name)["pixel_size_nm"] / 1000
    sem, kwargs, _ = layers[f"{name} SEM"]
    np.testing.assert_array_equal(sem, tifffile.imread(dataset_layout.image_path(out, name)))
    assert kwargs["scale"] == (pixel_um, pixel_um)
    labels, kwargs, kind = layers[f"{name} labels"]
    assert kind == "labels" and kwargs["features"]["phase"] == ["pore", "NiO", "Ni", "YSZ"]
    np.testing.assert_array_equal(labels, tifffile.imread(dataset_layout.label_path(out, name)))
    confidence = layers[f"{name} confidence"][0]
    np.testing.assert_array_equal(
        confidence, tifffile.imread(dataset_layout.confidence_path(out, name)))
    registered = qa_pictures.read_eds_maps(dataset_layout.eds_maps_path(out, name))
    assert set(registered.maps) >= {"Ni", "Zr", "Y"}
    for element, m in registered.maps.items():
        data, kwargs, _ = layers[f"{name} EDS {element}"]
        np.testing.assert_array_equal(data, m)
        assert kwargs["visible"] is False
    edges = layers[f"{name} registration edges"][0]
    np.testing.assert_array_equal(edges, registered.edges)
    assert set(np.unique(edges)) == {0, 1, 2}
    # one sample's label TIFF opens that sample
    other = review.review_order(report)[1]
    opened = layer_data.read_path(dataset_layout.label_path(out, other))
    assert opened[0][1]["name"] == f"{other} SEM"


def test_review_order_puts_the_worst_first():
    samples = [{"name": n, "status": "ok", "registration_quality": q, "mean_confidence": c}
               for n, q, c in (("a", 0.9, 0.95), ("b", 0.5, 0.99), ("c", 0.95, 0.6),
                               ("d", 0.99, 0.99), ("e", None, 1.0))]
    samples.append({"name": "f", "status": "failed"})
    assert review.review_order({"samples": samples}) == ["b", "c", "a", "d", "e"]


def test_scribbles_keep_only_the_changed_pixels(prepared):
    raw, out = prepared
    report = layer_data.read_prepare_report(out)
    name = review.review_order(report)[0]
    original = tifffile.imread(dataset_layout.label_path(out, name))
    fixed = original.copy()
    fixed[10:14, 20:30] = (original[10:14, 20:30] + 1) % 4
    entry = layer_data.sample_report(report, name)
    path = review.save_review(entry, report, fixed, original, "scribbles")
    assert path == raw / name / review.SCRIBBLES_FILE
    scribbles = read_raw_sample(raw / name).scribbles
    expected = np.zeros_like(original)
    expected[10:14, 20:30] = fixed[10:14, 20:30] + 1
    np.testing.assert_array_equal(scribbles, expected)
    with pytest.raises(UserError, match="nothing to save"):
        review.save_review(entry, report, original, original, "scribbles")
    with pytest.raises(UserError, match="no class id"):
        review.save_review(entry, report, fixed + 4, original, "labels")


def test_writer_keeps_class_ids_and_pixel_size(tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, (20, 30), dtype=np.uint8)
    path = tmp_path / "fixed_labels.tif"
    assert napari_write_labels(str(path), labels, {"scale": (0.025, 0.025)}) == [str(path)]
    np.testing.assert_array_equal(tifffile.imread(path), labels)
    assert read_pixel_size_nm(path) == pytest.approx(25.0)
    with pytest.raises(UserError, match="class-id map"):
        napari_write_labels(str(path), labels + 7, {"scale": (1.0, 1.0)})
