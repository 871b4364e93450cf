"""prepare on EDS maps it cannot use, and on a folder a killed or concurrent run touches:
each case refused with its own reason, in the project's words, and nothing left behind."""

import fcntl
import json
import os
import shutil
import warnings

import numpy as np
import pytest
import tifffile
from socseg_jax.configs.sections import prepare_config

from data_prep import synthetic
from data_prep.errors import ImageReadError, SampleError
from data_prep.prepare.run import prepare
from data_prep.readers.eds_maps import read_eds_maps
from data_prep.samples.raw_sample import read_raw_sample
from socseg_jax.core import dataset_layout, run_lock
from socseg_jax.core.errors import UserError

NI = "Ni Ka1.tif"


@pytest.fixture(scope="module")
def good_sample(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    synthetic.write_raw_dataset(raw, 1, seed=0, shape=(128, 128), oxidation_times=(10,))
    return next(raw.iterdir())


def clone(good, tmp_path, name="s"):
    return shutil.copytree(good, tmp_path / "raw" / name)


def ni_map(sample):
    return tifffile.imread(sample / "eds" / NI)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda m: np.ones((1, 1), np.float32), "is 1x1 px: too small to register"),
        (lambda m: np.zeros_like(m), "is empty (every pixel 0)"),
        (lambda m: np.full_like(m, 7.0), "is constant (every pixel 7)"),
        (lambda m: np.pad(np.ones((1, 2), m.dtype), ((0, m.shape[0] - 1), (0, m.shape[1] - 2))),
         "counts above its background in only 2 of"),
        (lambda m: np.stack([np.zeros_like(m), m]), "a TIFF of 2 pages not named by element"),
    ],
    ids=["1x1", "all-zero", "constant", "two-counts", "unnamed-pages"],
)
def test_unusable_ni_map_refused_with_its_reason(good_sample, tmp_path, make, reason):
    sample = clone(good_sample, tmp_path)
    tifffile.imwrite(sample / "eds" / NI, make(ni_map(sample)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw library warnings on the way
        with pytest.raises(SampleError, match="Ni") as err:
            read_raw_sample(sample)
    assert reason in str(err.value)
    assert "sample 's'" in str(err.value)


def test_a_coarse_map_without_a_step_is_refused(good_sample, tmp_path):
    sample = clone(good_sample, tmp_path)
    sem = tifffile.imread(sample / "sem.tif")
    rng = np.random.default_rng(0)
    big = np.kron(sem, np.ones((70, 70), sem.dtype))  # the SEM 70x finer than the 128-px map
    tifffile.imwrite(sample / "sem.tif", big)
    tifffile.imwrite(sample / "eds" / NI, rng.poisson(3, (9, 9)).astype(np.float32))
    with pytest.raises(SampleError, match="over 64x coarser, too coarse to label from"):
        read_raw_sample(sample)


def test_a_map_spanning_more_than_the_sem_at_its_step(good_sample, tmp_path):
    sample = clone(good_sample, tmp_path)
    for path in (sample / "eds").iterdir():  # a 100x too large step in the TIFF tags
        data = tifffile.imread(path)
        tifffile.imwrite(path, data, resolution=(1e7 / 200, 1e7 / 200),
                         resolutionunit="CENTIMETER")
    tifffile.imwrite(sample / "sem.tif", tifffile.imread(sample / "sem.tif"),
                     resolution=(1e7 / 10, 1e7 / 10), resolutionunit="CENTIMETER")
    with pytest.raises(SampleError, match="spans .*x the SEM field at its step"):
        read_raw_sample(sample)


def test_named_pages_are_maps_and_unknown_files_are_warned(good_sample, tmp_path):
    sample = clone(good_sample, tmp_path)
    eds = sample / "eds"
    maps = {el: tifffile.imread(next(eds.glob(f"{el} *"))) for el in ("Ni", "O", "Zr")}
    for path in eds.iterdir():
        path.unlink()
    with tifffile.TiffWriter(eds / "Ni Ka1.tif") as tif:  # one file, a page per element
        for el, data in maps.items():
            tif.write(data, extratags=[(285, "s", 0, f"{el} Ka1", True)])
    tifffile.imwrite(eds / "Xx Ka1.tif", maps["Ni"])
    raw = read_raw_sample(sample)
    for el, data in maps.items():
        np.testing.assert_array_equal(raw.eds[el], data)
    assert any("Xx Ka1.tif ignored: 'Xx' is not an element symbol" in w for w in raw.warnings)
    assert set(read_eds_maps(eds / "Ni Ka1.tif", "Ni")) == {"Ni", "O", "Zr"}
    with tifffile.TiffWriter(eds / "two.tif") as tif:
        tif.write(maps["Ni"], extratags=[(285, "s", 0, "Ni", True)])
        tif.write(maps["O"], extratags=[(285, "s", 0, "Ni", True)])
    with pytest.raises(ImageReadError, match="not named by element"):
        read_eds_maps(eds / "two.tif", "Ni")


def settings():
    config = prepare_config()
    config.update(patch_size=64, stride=64, val_fraction=0.0, test_fraction=0.0)
    return config


def test_every_sample_failing_writes_the_report_and_no_empty_folders(good_sample, tmp_path):
    bad = clone(good_sample, tmp_path, "flat_ni")
    tifffile.imwrite(bad / "eds" / NI, np.zeros_like(ni_map(bad)))
    out = tmp_path / "out"
    with pytest.raises(UserError, match="no sample .* could be prepared"):
        prepare(tmp_path / "raw", out, settings())
    report = json.loads((out / dataset_layout.REPORT_JSON).read_text())
    assert report["num_prepared"] == 0 and report["dataset_path"] is None
    assert "EDS map Ni (Ni Ka1.tif) is empty" in report["failed"][0]["reason"]
    assert (out / dataset_layout.REPORT_HTML).is_file()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [dataset_layout.REPORT_JSON, dataset_layout.REPORT_HTML])


def test_leftovers_of_a_killed_prepare_are_removed_and_a_live_one_refuses(good_sample,
                                                                          tmp_path):
    clone(good_sample, tmp_path)
    out = tmp_path / "out"
    (out / "qa").mkdir(parents=True)
    (out / "qa" / ".s_overlay.k2j3h4g5.png.tmp").write_bytes(b"half")
    incomplete = out / "socseg_patches" / "abc" / "incomplete.Q1W2E3_1.0.0"
    incomplete.mkdir(parents=True)
    (incomplete / "shard").write_bytes(b"half")
    other = run_lock._acquire(out / run_lock.LOCK_NAME, "prepare", fcntl.LOCK_EX)  # a live run
    with pytest.raises(UserError, match="in use by job=prepare"):
        prepare(tmp_path / "raw", out, settings())
    assert incomplete.is_dir()
    os.close(other)
    result = prepare(tmp_path / "raw", out, settings())
    assert result["num_prepared"] == 1
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob("incomplete.*"))
    assert not (out / run_lock.LOCK_NAME).exists()


def test_multi_page_label_maps_refused_and_sem_pages_warned(tmp_path, caplog):
    from data_prep.readers.images import read_grey
    from data_prep.readers.label_maps import read_label_values

    stack = np.zeros((2, 16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "labels.tif", stack)
    with pytest.raises(ImageReadError, match="a TIFF of 2 pages; a label map has one"):
        read_label_values(tmp_path / "labels.tif")
    with caplog.at_level("WARNING"):
        assert read_grey(tmp_path / "labels.tif").shape == (16, 16)
    assert "a TIFF of 2 pages; only the first is read" in caplog.text
