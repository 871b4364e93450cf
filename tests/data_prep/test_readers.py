"""Tests of raw-data reading: image formats, errors naming files, element-map matching."""

import struct
import tracemalloc

import h5py
import numpy as np
import pytest
import skimage.io
import tifffile
from PIL import Image

from data_prep import synthetic
from data_prep.errors import ImageReadError, SampleError
from data_prep.readers.eds_maps import find_eds_maps
from data_prep.readers.h5oina import read_h5oina
from data_prep.readers.images import read_grey
from data_prep.readers.label_maps import read_label_values
from data_prep.samples.files import discover_samples
from data_prep.samples.raw_sample import read_raw_sample
from socseg_jax.core.atomic import write_tiff_atomic
from socseg_jax.core.intensity import normalize_sem
from socseg_jax.core.overlays import overlay, save_overlay_png
from socseg_jax.core.phases import colorize


def test_read_8_and_16_bit_tiff(tmp_path):
    a8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    a16 = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    tifffile.imwrite(tmp_path / "a8.tif", a8)
    tifffile.imwrite(tmp_path / "a16.tiff", a16)
    g8, g16 = read_grey(tmp_path / "a8.tif"), read_grey(tmp_path / "a16.tiff")
    assert g8.dtype == np.float32 and g8.shape == (3, 4)
    np.testing.assert_array_equal(g8, a8)
    np.testing.assert_array_equal(g16, a16.astype(np.float32))


def test_multipage_tiff_takes_first_page(tmp_path):
    stack = np.stack([np.full((5, 6), 7, np.uint8), np.full((5, 6), 200, np.uint8)])
    with tifffile.TiffWriter(tmp_path / "multi.tif") as tw:
        for page in stack:
            tw.write(page)
    g = read_grey(tmp_path / "multi.tif")
    assert g.shape == (5, 6) and np.all(g == 7)


def test_rgb_png_to_grey(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 100
    skimage.io.imsave(tmp_path / "rgb.png", rgb, check_contrast=False)
    g = read_grey(tmp_path / "rgb.png")
    assert g.shape == (4, 5)
    np.testing.assert_allclose(g, 0.7154 * 100, rtol=1e-4)
    rgba = np.dstack([rgb, np.full((4, 5), 255, np.uint8)])
    skimage.io.imsave(tmp_path / "rgba.png", rgba, check_contrast=False)
    assert read_grey(tmp_path / "rgba.png").shape == (4, 5)


@pytest.mark.parametrize("content", [b"", b"this is not an image at all" * 10])
@pytest.mark.parametrize("name", ["bad.tif", "bad.png", "bad.jpg"])
def test_empty_or_corrupt_file_names_the_file(tmp_path, content, name):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=name):
        read_grey(p)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="nothere.tif"):
        read_grey(tmp_path / "nothere.tif")


def test_normalize_sem_robust_stretch():
    img = np.linspace(0, 1000, 10000, dtype=np.float32).reshape(100, 100)
    img[0, 0] = 1e6  # hot pixel must not dominate
    n = normalize_sem(img)
    assert n.dtype == np.float32 and n.min() == 0.0 and n.max() == 1.0
    assert 0.45 < float(np.median(n)) < 0.55
    assert np.all(normalize_sem(np.full((4, 4), 3.0)) == 0)


def test_find_eds_maps_element_matching(tmp_path):
    for name in [
        "Ni Ka1.tif",
        "N Ka1.tif",
        "O.png",
        "Os La1.tif",
        "Zr_La.tiff",
        "Y.npy",
        "NiO map.tif",
        "SEM.tif",
        "notes.txt",
        "Mn.csv",
    ]:
        (tmp_path / name).write_bytes(b"x")
    maps = find_eds_maps(tmp_path)
    assert maps["Ni"].name == "Ni Ka1.tif"
    assert maps["N"].name == "N Ka1.tif"
    assert maps["O"].name == "O.png"
    assert maps["Os"].name == "Os La1.tif"
    assert maps["Zr"].name == "Zr_La.tiff"
    assert maps["Y"].name == "Y.npy"
    assert maps["Mn"].name == "Mn.csv"
    assert set(maps) == {"Ni", "N", "O", "Os", "Zr", "Y", "Mn"}


def _make_sample(root, name="s1", elements=("Ni", "O", "Zr", "Y"), eds_shape=(8, 8)):
    d = root / name
    (d / "eds").mkdir(parents=True)
    tifffile.imwrite(
        d / "sem.tif",
        np.zeros((16, 16), np.uint8),
        resolution=(1e7 / 25.0, 1e7 / 25.0),
        resolutionunit="CENTIMETER",
    )
    rng = np.random.default_rng(0)
    for el in elements:
        counts = rng.poisson(2.0, eds_shape).astype(np.float32)
        tifffile.imwrite(d / "eds" / f"{el} Ka1.tif", counts)
    return d


def test_read_raw_sample_ok(tmp_path):
    d = _make_sample(tmp_path)
    s = read_raw_sample(d)
    assert s.name == "s1" and s.sem.shape == (16, 16) and s.labels is None
    assert set(s.eds) == {"Ni", "O", "Zr", "Y"}
    assert abs(s.pixel_size_nm - 25.0) < 1e-6
    assert [s.name for s in discover_samples(tmp_path)] == ["s1"]


@pytest.mark.parametrize(("per_cm", "scale"), [(1e7 / 50.0, 2.0), (72 / 2.54, None)])
def test_eds_step_from_the_maps_tiff_tags(tmp_path, per_cm, scale):
    """EDS maps whose TIFF resolution gives 50 nm pixels, beside a 25 nm SEM: the sub-area
    scale is known (2x); a screen-dpi default (72 dpi) is no pixel size and is ignored."""
    d = _make_sample(tmp_path)
    for path in (d / "eds").iterdir():
        tifffile.imwrite(path, tifffile.imread(path), resolution=(per_cm, per_cm),
                         resolutionunit="CENTIMETER")
    s = read_raw_sample(d)
    if scale is None:
        assert "eds_scale_from_steps" not in s.metadata
    else:
        assert s.metadata["eds_step_nm"] == pytest.approx(50.0)
        assert s.metadata["eds_scale_from_steps"] == pytest.approx(scale)


def test_missing_element_map_names_sample(tmp_path):
    d = _make_sample(tmp_path, name="sampleX", elements=("Ni", "O"))
    with pytest.raises(SampleError, match=r"sampleX.*Zr"):
        read_raw_sample(d)


def test_missing_sem_and_big_eds(tmp_path):
    d = _make_sample(tmp_path, name="big", eds_shape=(32, 32))
    with pytest.raises(SampleError, match="big.*larger"):
        read_raw_sample(d)
    (d / "sem.tif").unlink()
    with pytest.raises(SampleError, match="big.*missing SEM"):
        read_raw_sample(d)


def test_corrupt_map_in_sample(tmp_path):
    d = _make_sample(tmp_path, name="corrupt")
    (d / "eds" / "O Ka1.tif").write_bytes(b"")
    with pytest.raises(SampleError, match=r"corrupt.*O Ka1.tif"):
        read_raw_sample(d)


def test_labels_grey_and_unknown_values(tmp_path):
    d = _make_sample(tmp_path, name="lab")
    grey = np.zeros((16, 16), np.uint8)
    grey[:, 4:] = 85
    grey[:, 8:] = 170
    grey[:, 12:] = 255
    skimage.io.imsave(d / "labels.png", grey, check_contrast=False)
    lab = read_raw_sample(d).labels
    assert lab.dtype == np.uint8 and list(np.unique(lab)) == [0, 1, 2, 3]
    grey[0, 0] = 42
    skimage.io.imsave(d / "labels.png", grey, check_contrast=False)
    with pytest.raises(SampleError, match=r"lab.*unknown values \[42\]"):
        read_raw_sample(d)


def test_discover_samples_in_messy_folders(tmp_path):
    """Grouping folders are searched, system folders skipped, an 'EDS' folder is the eds one."""
    _make_sample(tmp_path / "2024-03", name="cellA")
    upper = _make_sample(tmp_path, name="cellB")
    (upper / "eds").rename(upper / "EDS")
    for junk in ("__MACOSX", ".git", "@eaDir"):
        (tmp_path / junk / "x").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    flat = _make_sample(tmp_path / "2024-04", name="aztec export")  # AZtec: all in one folder
    for f in (flat / "eds").iterdir():
        f.rename(flat / f.name)
    (flat / "eds").rmdir()
    (flat / "sem.tif").rename(flat / "Electron Image 1.tif")
    tifffile.imwrite(flat / "Layered Image 1.tif", np.zeros((16, 16, 3), np.uint8))
    found = discover_samples(tmp_path)
    assert [s.name for s in found] == [
        "2024-03__cellA",
        "2024-04__aztec export",
        "cellB",
        "empty",
    ]
    aztec = read_raw_sample(found[1])
    assert aztec.sem.shape == (16, 16) and set(aztec.eds) == {"Ni", "O", "Zr", "Y"}
    assert found[1].folder == flat and aztec.warnings == []
    tifffile.imwrite(flat / "Electron Image 2.tif", np.zeros((16, 16), np.uint8))
    assert "used Electron Image 1.tif" in read_raw_sample(discover_samples(tmp_path)[1]).warnings[0]
    found = [found[0], found[2], found[3]]
    grouped = read_raw_sample(found[0])
    assert grouped.name == "2024-03__cellA" and set(grouped.eds) == {"Ni", "O", "Zr", "Y"}
    assert set(read_raw_sample(found[1]).eds) == {"Ni", "O", "Zr", "Y"}
    with pytest.raises(SampleError, match="'empty'.*missing SEM"):
        read_raw_sample(found[2])


def test_scribbles_read_and_checked(tmp_path):
    d = _make_sample(tmp_path, name="scr")
    marks = np.zeros((16, 16), np.uint8)
    marks[2, 2:6] = 4  # a YSZ stroke
    skimage.io.imsave(d / "scribbles.png", marks, check_contrast=False)
    s = read_raw_sample(d)
    np.testing.assert_array_equal(s.scribbles, marks)
    (tmp_path / "m.csv").write_text(
        "sample,sem,eds,scribbles\nx,scr/sem.tif,scr/eds,scr/scribbles.png\n"
    )
    listed = read_raw_sample(read_manifest(tmp_path / "m.csv")[0])
    np.testing.assert_array_equal(listed.scribbles, marks)
    marks[0, 0] = 7
    skimage.io.imsave(d / "scribbles.png", marks, check_contrast=False)
    with pytest.raises(SampleError, match=r"'scr', scribbles.png: .* unknown values \[7\]"):
        read_raw_sample(d)
    skimage.io.imsave(d / "scribbles.png", np.zeros((16, 16), np.uint8), check_contrast=False)
    with pytest.raises(SampleError, match="labels no pixel"):
        read_raw_sample(d)
    from PIL import Image

    palette = Image.fromarray(
        np.where(np.arange(16) < 8, 2, 3).astype(np.uint8)[None].repeat(16, 0)
    )
    palette = palette.convert("P")
    palette.putpalette([0, 0, 0, 200, 30, 30, 30, 200, 30, 240, 240, 240] + [0] * 756)
    palette.save(d / "scribbles.png")  # drawn in an editor: palette indices, not brightness
    assert set(np.unique(read_raw_sample(d).scribbles)) == {2, 3}
    grey = Image.fromarray(np.array([[0, 85, 170, 255]], np.uint8).repeat(4, 1).repeat(16, 0))
    grey.quantize(4).save(d / "labels.png")  # the study's grey labels, saved indexed
    assert list(np.unique(read_raw_sample(d).labels)) == [0, 1, 2, 3]  # brightness, not index
    np.testing.assert_array_equal(read_raw_sample(d).labels[0, ::4], [0, 1, 2, 3])
    skimage.io.imsave(d / "labels.png", np.zeros((16, 16), np.uint8), check_contrast=False)
    with_labels = read_raw_sample(d)
    assert with_labels.scribbles is None
    assert with_labels.warnings == ["scribbles.png ignored: labels.png labels every pixel"]
    (d / "labels.png").unlink()
    skimage.io.imsave(d / "scribbles.png", np.ones((8, 16), np.uint8), check_contrast=False)
    with pytest.raises(SampleError, match=r"scribbles shape \(8, 16\) differs"):
        read_raw_sample(d)


def test_discover_samples_refuses_ambiguous_raw_dirs(tmp_path):
    group = tmp_path / "group"
    _make_sample(group, name="a")
    (group / "labels.xlsx").write_bytes(b"notes")  # a stray file does not hide the samples
    (group / "sem.txt").write_text("notes")
    assert [s.name for s in discover_samples(tmp_path)] == ["group__a"]
    _make_sample(tmp_path, name="group__a")
    with pytest.raises(SampleError, match="get the same sample name"):
        discover_samples(tmp_path)
    with pytest.raises(SampleError, match=r"looks like one sample folder itself \(eds, sem.tif"):
        discover_samples(group / "a")
    tifffile.imwrite(tmp_path / "sem.tif", np.zeros((4, 4), np.uint8))  # a stray thumbnail
    (tmp_path / "group__a").rename(tmp_path / "b")
    assert [s.name for s in discover_samples(tmp_path)] == ["b", "group__a"]


def test_discover_samples_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        discover_samples(tmp_path / "missing")
    with pytest.raises(SampleError, match="no sample folders"):
        discover_samples(tmp_path)


def test_write_tiff_atomic_and_overlay(tmp_path):
    arr = np.arange(20, dtype=np.uint8).reshape(4, 5)
    write_tiff_atomic(tmp_path / "sub" / "x.tif", arr)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "sub" / "x.tif"), arr)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.tif"]
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    assert colorize(labels).shape == (2, 2, 3)
    assert overlay(np.full((2, 2), 0.5), labels).dtype == np.uint8
    save_overlay_png(tmp_path / "o.png", np.full((2, 2), 128, np.uint8), labels, title="t")
    assert skimage.io.imread(tmp_path / "o.png").ndim == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png", "sub"]


# --- readers for real microscope exports -------------------------------------------------

from data_prep.readers.data_bar import crop_data_bar, detect_data_bar  # noqa: E402
from data_prep.readers.label_maps import labels_from_values  # noqa: E402
from data_prep.readers.sem_metadata import read_sem_metadata  # noqa: E402
from data_prep.samples.files import read_manifest  # noqa: E402


def test_zeiss_tiff_metadata(tmp_path):
    tag = synthetic.zeiss_sem_tag(12.5, voltage_kv=15.0, detector="InLens")
    tifffile.imwrite(
        tmp_path / "zeiss.tif", np.zeros((8, 8), np.uint16), extratags=[(34118, "s", 0, tag, True)]
    )
    md = read_sem_metadata(tmp_path / "zeiss.tif")
    assert md == {"pixel_size_nm": 12.5, "voltage_kv": 15.0, "detector": "InLens"}
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    assert read_sem_metadata(tmp_path / "plain.tif") == {}


def test_thermo_fei_tiff_metadata(tmp_path):
    ini = "\r\n".join(
        ["[Beam]", "HV=5000", "[Scan]", "PixelWidth=2.5e-08", "[Detectors]", "Name=TLD", "Mode=SE"]
    )
    tifffile.imwrite(
        tmp_path / "fei.tif", np.zeros((8, 8), np.uint8), extratags=[(34682, "s", 0, ini, True)]
    )
    md = read_sem_metadata(tmp_path / "fei.tif")
    assert md == {"pixel_size_nm": pytest.approx(25.0), "voltage_kv": 5.0, "detector": "TLD SE"}


def test_data_bar_detected_and_cropped(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(20, 230, (120, 160)).astype(np.uint8)
    with_bar = synthetic.add_data_bar(img, 24, seed=1)
    skimage.io.imsave(tmp_path / "bar.png", with_bar, check_contrast=False)
    grey = read_grey(tmp_path / "bar.png")
    assert detect_data_bar(grey) == 24
    cropped, rows = crop_data_bar(grey, "auto")
    assert rows == 24 and cropped.shape == (120, 160)
    assert detect_data_bar(img.astype(np.float32)) == 0  # a micrograph alone has none
    assert crop_data_bar(grey, 10)[0].shape == (134, 160)
    assert crop_data_bar(grey, "none")[1] == 0


def test_sixteen_bit_zeiss_sample_with_data_bar(tmp_path):
    synthetic.write_raw_dataset(
        tmp_path, 1, seed=0, shape=(96, 128), data_bar_rows=20, bit_depth=16, zeiss=True
    )
    d = next(tmp_path.iterdir())
    assert tifffile.imread(d / "sem.tif").dtype == np.uint16
    s = read_raw_sample(d, data_bar="auto")
    assert s.sem.shape == (96, 128) and s.metadata["data_bar_rows"] == 20
    assert s.pixel_size_nm == 40.0 and s.metadata["voltage_kv"] == 15.0


@pytest.mark.parametrize("fmt", ["npy", "csv", "png", "h5oina"])
def test_eds_map_formats(tmp_path, fmt):
    synthetic.write_raw_dataset(tmp_path, 1, seed=2, shape=(64, 96), eds_format=fmt)
    d = next(tmp_path.iterdir())
    s = read_raw_sample(d)
    assert set(s.eds) == {"Ni", "O", "Zr", "Y"} and s.eds["Ni"].shape == (32, 48)
    truth = synthetic.simulate_sample(
        synthetic.SimulationParams(shape=(64, 96), oxidation_min=0), synthetic._sample_seed(2, 0)
    )
    atol = 1.0 if fmt == "png" else 1e-3  # png maps are rounded to 8 bit
    np.testing.assert_allclose(s.eds["Zr"], np.clip(truth.eds["Zr"], 0, 255), atol=atol)


def test_h5oina_reshape_nan_and_steps(tmp_path):
    rng = np.random.default_rng(0)
    maps = {el: rng.random((6, 10)).astype(np.float32) for el in ("Ni", "O", "Zr")}
    maps["Ni"][0, :3] = np.nan  # outside an irregular acquisition area
    synthetic.write_h5oina(tmp_path / "m.h5oina", maps, (0.08, 0.05), {"Zr": "La1"})
    h5 = read_h5oina(tmp_path / "m.h5oina")
    assert h5.maps["O"].shape == (6, 10) and h5.step_um == pytest.approx((0.08, 0.05))
    np.testing.assert_allclose(h5.maps["O"][h5.valid], maps["O"][h5.valid])
    assert h5.valid.sum() == 57 and np.isfinite(h5.maps["Ni"]).all()
    assert h5.lines["Zr"] == "La1"
    import h5py

    with h5py.File(tmp_path / "bad.h5oina", "w") as f:
        f["1/EDS/Header/X Cells"] = np.array([[4]])
        f["1/EDS/Header/Y Cells"] = np.array([[4]])
        f["1/EDS/Data/Window Integral/Ni Ka1"] = np.zeros((15, 1), np.float32)
    with pytest.raises(ImageReadError, match=r"bad.h5oina.*15 values"):
        read_h5oina(tmp_path / "bad.h5oina")


def test_eds_names_unicode_and_pattern(tmp_path):
    for name in ("Ni Kα1.tif", "map_Zr.tif", "map_O.tif"):
        (tmp_path / name).write_bytes(b"x")
    assert find_eds_maps(tmp_path)["Ni"].name == "Ni Kα1.tif"
    maps = find_eds_maps(tmp_path, pattern=r"^map_(?P<el>[A-Z][a-z]?)$")
    assert {k: v.name for k, v in maps.items()} == {"Zr": "map_Zr.tif", "O": "map_O.tif"}


def test_ilastik_labels_h5_and_tiff(tmp_path):
    import h5py

    ids = np.array([[0, 1], [2, 3]], np.uint8)
    with h5py.File(tmp_path / "seg.h5", "w") as f:
        f["exported_data"] = (ids + 1)[..., None]  # ilastik Simple Segmentation: 1..N, (H,W,1)
    vals = read_label_values(tmp_path / "seg.h5")
    np.testing.assert_array_equal(labels_from_values(vals, "x", "ilastik"), ids)
    tifffile.imwrite(tmp_path / "seg.tif", ids + 1)
    auto = labels_from_values(read_label_values(tmp_path / "seg.tif"), "x")  # 4 -> ilastik
    np.testing.assert_array_equal(auto, ids)
    with pytest.raises(SampleError, match=r"x: labels with unknown values \[7\]"):
        labels_from_values(np.array([[1, 7]]), "x", "ilastik")


def test_manifest(tmp_path):
    d = _make_sample(tmp_path, name="s9")
    (tmp_path / "m.csv").write_text("sample,sem,eds,pixel_size_nm\nA,s9/sem.tif,s9/eds,7.5\n")
    (entry,) = read_manifest(tmp_path / "m.csv")
    assert entry.name == "A" and entry.sem == d / "sem.tif" and entry.pixel_size_nm == 7.5
    s = read_raw_sample(entry)
    assert s.name == "A" and s.pixel_size_nm == 7.5 and set(s.eds) == {"Ni", "O", "Zr", "Y"}
    (tmp_path / "bad.csv").write_text("name,file\nA,b\n")
    with pytest.raises(SampleError, match="bad.csv.*'sample'"):
        read_manifest(tmp_path / "bad.csv")


def test_h5oina_electron_image_as_sem_and_partial_box(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "h5only" / "eds"
    d.mkdir(parents=True)
    image = rng.integers(0, 255, (40, 60)).astype(np.uint8)
    maps = {el: rng.random((10, 15)).astype(np.float32) for el in ("Ni", "O", "Zr")}
    synthetic.write_h5oina(
        d / "a.h5oina", maps, (0.1, 0.1), electron_image=image, electron_step_um=0.025
    )
    s = read_raw_sample(tmp_path / "h5only")
    np.testing.assert_array_equal(s.sem, image)
    assert s.pixel_size_nm == pytest.approx(25.0) and "electron image" in s.metadata["sem_source"]
    synthetic.write_h5oina(
        d / "a.h5oina",
        maps,
        (0.1, 0.1),
        electron_image=image,
        electron_step_um=0.025,
        box_yxhw=(0.25, 0.5, 0.5, 0.5),
    )
    s = read_raw_sample(tmp_path / "h5only")
    assert s.metadata["eds_box_px"] == [10, 30, 20, 30] and s.sem.shape == (20, 30)
    np.testing.assert_array_equal(s.sem, image[10:30, 30:60])


def hostile_tiff(width: int, height: int, compression: int = 1, strip_bytes: int = 64) -> bytes:
    """A little-endian TIFF of ~200 bytes whose header declares width x height 8-bit pixels."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, compression), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 8 + 4), (277, 3, 1), (278, 4, height), (279, 4, strip_bytes)]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + struct.pack("<I" if kind == 4 else "<HH", value,
                                                        *(() if kind == 4 else (0,)))
        for tag, kind, value in tags
    ) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + bytes(strip_bytes)


def test_huge_declared_tiff_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.tif"
    path.write_bytes(hostile_tiff(200_000, 200_000))
    assert path.stat().st_size < 300
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError) as err:
            read_grey(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20
    message = str(err.value)
    assert "\n" not in message and "bomb.tif" in message
    assert "200000x200000" in message and "4 GiB (max_image_bytes)" in message


def test_size_lies_and_the_configured_limit(tmp_path):
    lie = tmp_path / "lie.tif"  # zlib data cannot shrink 400 MB into 200 bytes
    lie.write_bytes(hostile_tiff(20_000, 20_000, compression=8))
    with pytest.raises(ImageReadError, match="more than a .*-byte file can hold"):
        read_grey(lie)
    short = tmp_path / "short.tif"  # raw strips pointing beyond the end of the file
    short.write_bytes(hostile_tiff(100, 100, strip_bytes=10_000)[:300])
    with pytest.raises(ImageReadError, match="corrupt or truncated TIFF.*ends at byte"):
        read_grey(short)
    small = tmp_path / "small.npy"
    np.save(small, np.zeros((64, 64), np.float32))
    assert read_grey(small, max_bytes=64 * 64 * 4).shape == (64, 64)
    with pytest.raises(ImageReadError, match=r"small.npy: .*over the limit of 16383 bytes"):
        read_grey(small, max_bytes=64 * 64 * 4 - 1)
    labels = tmp_path / "labels.h5"
    with h5py.File(labels, "w") as f:
        f.create_dataset("exported_data", shape=(30_000, 30_000), dtype=np.uint8)  # unwritten
    with pytest.raises(ImageReadError, match="labels.h5: declares 30000x30000"):
        read_label_values(labels)
    h5oina = tmp_path / "maps.h5oina"
    synthetic.write_h5oina(h5oina, {el: np.ones((8, 8), np.float32) for el in ("O", "Ni")},
                           (1, 1))
    assert set(read_h5oina(h5oina).maps) == {"O", "Ni"}
    with pytest.raises(ImageReadError, match="maps.h5oina: declares 64x1 x 4 bytes"):
        read_h5oina(h5oina, max_bytes=100)


def test_format_comes_from_the_content(tmp_path, caplog):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "really_png.tif", format="PNG")
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(read_grey(tmp_path / "really_png.tif"), grey)
    assert "really_png.tif" in caplog.text and "TIFF" in caplog.text and "PNG" in caplog.text
    tifffile.imwrite(tmp_path / "really_tiff.npy", grey, photometric="minisblack")  # by content
    np.testing.assert_array_equal(read_grey(tmp_path / "really_tiff.npy"), grey)
    (tmp_path / "text.tif").write_text("1,2\n3,4\n")
    with pytest.raises(ImageReadError, match="text.tif: cannot read image: not an image"):
        read_grey(tmp_path / "text.tif")
    (tmp_path / "map.csv").write_text("1,2\n3,4\n")
    assert read_grey(tmp_path / "map.csv").tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("groups", "message"),
    [((), "no /1/EDS group"), (("1/EDS/Data",), "EDS header lacks 'X Cells'"),
     (("1/EDS/Header",), "no element maps under /1/EDS/Data")],
)
def test_h5oina_missing_groups_give_one_line(tmp_path, groups, message):
    path = tmp_path / "broken.h5oina"
    with h5py.File(path, "w") as f:
        for group in groups:
            f.create_group(group)
        if "1/EDS/Header" in groups:
            f["1/EDS/Header/X Cells"], f["1/EDS/Header/Y Cells"] = [8], [8]
    with pytest.raises(ImageReadError, match=f"broken.h5oina: {message}"):
        read_h5oina(path)
