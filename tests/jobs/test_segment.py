"""job=segment: messy archives, failures per file, resumable atomic outputs, sharding."""

import csv
import json
from pathlib import Path

import jax
import numpy as np
import pytest
import tifffile
from skimage import io as skio
from socseg_jax.configs.segment import get_config

from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import CLASS_NAMES, STUDY_GREY
from socseg_jax.inference import archive, archive_loop, outputs
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.jobs import segment
from socseg_jax.training import checkpoints

PATCH = 32
LINEAR = np.random.default_rng(0).normal(size=(1, 4)).astype(np.float32) * 3.0


def options(**overrides):
    """The segment job's options (configs/segment.py) with some changed."""
    config = get_config()
    config.update(overrides)
    return config


def pixelwise_model(batch):
    return jax.nn.softmax(batch @ LINEAR, axis=-1)


def test_loading_a_model_does_not_warn(checkpoint_dir, caplog):
    with caplog.at_level("WARNING"):
        checkpoints.load_model(checkpoint_dir)
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


def messy_archive(root: Path) -> tuple[list[str], dict[str, str]]:
    """Valid images (relative paths) and invalid files with a word their reason must contain."""
    rng = np.random.default_rng(0)
    (root / "a" / "b").mkdir(parents=True)
    (root / "échantillon µ").mkdir()
    tifffile.imwrite(root / "a" / "grey8.tif", rng.integers(0, 255, (40, 50), dtype=np.uint8))
    tifffile.imwrite(root / "a" / "b" / "deep16.TIFF",
                     rng.integers(0, 65535, (45, 37), dtype=np.uint16))
    skio.imsave(root / "a" / "rgb.png", rng.integers(0, 255, (33, 41, 3), dtype=np.uint8),
                check_contrast=False)
    skio.imsave(root / "échantillon µ" / "façade é.JPG",
                rng.integers(0, 255, (36, 36), dtype=np.uint8), check_contrast=False)
    tifffile.imwrite(root / "tiny.tif", rng.integers(0, 255, (9, 5), dtype=np.uint8))
    valid = ["a/grey8.tif", "a/b/deep16.TIFF", "a/rgb.png", "échantillon µ/façade é.JPG",
             "tiny.tif"]
    (root / "zero.tif").write_bytes(b"")
    (root / "corrupt.png").write_bytes(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
    whole = (root / "a" / "grey8.tif").read_bytes()
    (root / "a" / "truncated.tif").write_bytes(whole[: len(whole) // 3])
    (root / "notes.jpeg").write_text("not an image at all")
    (root / "readme.txt").write_text("ignored: not an image suffix")
    (root / ".hidden.tif").write_bytes(b"")
    broken_png = b"\x89PNG\r\n\x1a\n" + rng.integers(0, 255, 200, dtype=np.uint8).tobytes()
    (root / "broken.png").write_bytes(broken_png)
    invalid = {"zero.tif": "empty", "corrupt.png": "not an image", "notes.jpeg": "not an image",
               "a/truncated.tif": "corrupt or truncated TIFF",
               "broken.png": "corrupt or truncated PNG"}
    return valid, invalid


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def test_messy_archive(tmp_path, checkpoint_dir):
    source, out = tmp_path / "archive", tmp_path / "out"
    valid, invalid = messy_archive(source)
    config = get_config()
    config.input, config.output_dir, config.checkpoint = str(source), str(out), str(checkpoint_dir)
    config.predict.update(patch_size=PATCH, stride=16, batch_size=4, tta="flips")
    config.save_probabilities = config.save_uncertainty = True
    config.label_encoding = "grey"
    rows = segment.run(config, None)
    assert len(rows) == len(valid) + len(invalid)
    summary = read_summary(out / "summary.csv")
    for rel in valid:
        row = summary[str(source / rel)]
        assert row["status"] == "ok", row
        job = archive.ImageJob(source / rel, Path(rel))
        paths = job.paths(out)
        labels = tifffile.imread(paths["labels"])
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= set(STUDY_GREY)
        assert labels.shape == (int(row["height"]), int(row["width"]))
        proba = tifffile.imread(paths["proba"])
        assert proba.dtype == np.float16 and proba.shape == (4, *labels.shape)
        assert tifffile.imread(paths["max_prob"]).shape == labels.shape
        assert paths["overlay"].stat().st_size > 0
        fractions = [float(row[f]) for f in outputs.FRACTION_FIELDS]
        assert sum(fractions) == pytest.approx(100.0, abs=0.01)
        # each fraction's interval half-width: the soft/hard gap (no reference: no floor)
        soft = 100 * proba.astype(np.float64).mean(axis=(1, 2))
        widths = [float(row[f]) for f in outputs.UNCERTAINTY_FIELDS]
        np.testing.assert_allclose(widths, np.abs(soft - fractions), atol=0.01)
        assert 0.25 <= float(row["mean_max_prob"]) <= 1.0
    assert summary[str(source / "tiny.tif")]["height"] == "9"
    for rel, word in invalid.items():
        row = summary[str(source / rel)]
        assert row["status"] == "failed" and word in row["reason"], row
        assert "\n" not in row["reason"]
    assert not list(out.rglob("*.tmp"))
    assert not (out / "zero_labels.tif").exists()


def test_every_image_failed_raises(tmp_path, checkpoint_dir):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "zero.tif").write_bytes(b"")
    config = get_config()
    config.input, config.output_dir = str(tmp_path / "in"), str(tmp_path / "out")
    config.checkpoint = str(checkpoint_dir)
    config.predict.update(patch_size=PATCH, stride=16, batch_size=2)
    with pytest.raises(ValueError, match="every image failed"):
        segment.run(config, None)
    assert read_summary(tmp_path / "out" / "summary.csv")[str(tmp_path / "in" / "zero.tif")]


class CountingPredictor(SlidingWindowPredictor):
    """Records which images were predicted (by shape)."""

    def __init__(self):
        super().__init__(pixelwise_model, patch_size=PATCH, batch_size=4)
        self.calls = 0

    def predict_maps(self, image, kinds=("labels",), dtypes=None):
        self.calls += 1
        return super().predict_maps(image, kinds, dtypes)


def test_killed_run_resumes_without_partial_files(tmp_path, monkeypatch):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for i in range(5):
        tifffile.imwrite(source / f"img{i}.tif",
                         np.random.default_rng(i).integers(0, 255, (40, 30 + i), dtype=np.uint8))
    jobs = archive.discover_images(str(source))
    real_save = outputs.save_overlay_png
    written = []

    def dying_save(path, grey, labels, title=None):
        if len(written) == 2:  # the process "dies" while writing the third overlay
            Path(path).with_name("." + Path(path).stem + ".x.png.tmp").write_bytes(b"half")
            raise KeyboardInterrupt
        written.append(path)
        real_save(path, grey, labels, title)

    monkeypatch.setattr(outputs, "save_overlay_png", dying_save)
    first = CountingPredictor()
    with pytest.raises(KeyboardInterrupt):
        archive_loop.segment_images(first, jobs, out, options(num_workers=1, prefetch=1))
    monkeypatch.setattr(outputs, "save_overlay_png", real_save)
    # Every file under its final name is complete; the summary lists the finished images.
    for path in out.glob("*.tif"):
        assert tifffile.imread(path).shape[0] == 40
    assert len(list(out.glob("*_overlay.png"))) == 2
    assert len(read_summary(out / "summary.csv")) == 2
    assert list(out.glob(".*.tmp"))  # a stale temporary, as a SIGKILL would leave

    second = CountingPredictor()
    rows = archive_loop.segment_images(second, jobs, out, options())
    assert second.calls == 3
    assert [r["status"] for r in rows] == ["skipped"] * 2 + ["ok"] * 3
    assert rows[0]["NiO_percent"] != ""
    assert not list(out.glob(".*.tmp"))
    third = CountingPredictor()
    rows = archive_loop.segment_images(third, jobs, out, options())
    assert [r["status"] for r in rows] == ["skipped"] * 5
    assert third.calls == 0


def test_discovery_glob_list_and_shards(tmp_path):
    for rel in ["x/1.TIF", "x/y/2.png", "x/3.jpeg", "x/skip.txt", "x/.4.tif"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"1")
    found = archive.discover_images(str(tmp_path / "x"))
    assert [str(j.relative) for j in found] == ["1.TIF", "3.jpeg", "y/2.png"]
    globbed = archive.discover_images(str(tmp_path / "x" / "**" / "*.png"))
    assert [str(j.relative) for j in globbed] == ["y/2.png"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'x/1.TIF'}\n\n{tmp_path / 'x/3.jpeg'}\n")
    assert len(archive.discover_images(str(listing))) == 2
    shards = [archive.shard_jobs(found, i, 2) for i in range(2)]
    assert sorted(j.path for s in shards for j in s) == sorted(j.path for j in found)
    with pytest.raises(ValueError, match="shard_index"):
        archive.shard_jobs(found, 2, 2)
    with pytest.raises(FileNotFoundError):
        archive.discover_images(str(tmp_path / "nothing*.tif"))


def test_data_bar_and_options(tmp_path):
    image = np.arange(60 * 40, dtype=np.uint8).reshape(60, 40)
    tifffile.imwrite(tmp_path / "bar.tif", image)
    job = archive.ImageJob(tmp_path / "bar.tif", Path("bar.tif"))
    rows = archive_loop.segment_images(
        SlidingWindowPredictor(pixelwise_model, patch_size=PATCH), [job], tmp_path / "out",
        options(data_bar="12", preprocess="keras_l2_rows"),
    )
    assert (rows[0]["height"], rows[0]["width"], rows[0]["data_bar_rows"]) == (48, 40, 12)
    bar = np.random.default_rng(0).integers(0, 255, (60, 40), dtype=np.uint8)
    bar[50:] = 255  # a white data bar of 10 rows
    bar[53, 5:9] = 0  # with some text
    tifffile.imwrite(tmp_path / "auto.tif", bar)
    job = archive.ImageJob(tmp_path / "auto.tif", Path("auto.tif"))
    rows = archive_loop.segment_images(
        SlidingWindowPredictor(pixelwise_model, patch_size=PATCH), [job], tmp_path / "out",
        options(),  # data_bar="auto" is the default, as in prepare
    )
    assert (rows[0]["height"], rows[0]["data_bar_rows"]) == (50, 10)
    with pytest.raises(UserError, match="data_bar"):
        outputs.check_options(options(data_bar="lots"))
    with pytest.raises(UserError, match="preprocess"):
        outputs.check_options(options(preprocess="zscore"))
    with pytest.raises(UserError, match="label_encoding"):
        outputs.check_options(options(label_encoding="rgb"))


KILLED_RUN = """
import sys, time
import jax
import jax.numpy as jnp
from socseg_jax.configs.segment import get_config
from socseg_jax.inference.archive import discover_images
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.inference.archive_loop import segment_images

class Slow(SlidingWindowPredictor):
    def predict_maps(self, image, kinds=("labels",), dtypes=None):
        time.sleep(0.4)
        return super().predict_maps(image, kinds, dtypes)

model = lambda b: jax.nn.softmax(jnp.concatenate([b, -b, b * 2, b * 0], -1), -1)
options = get_config()
options.num_workers = 1
segment_images(Slow(model, patch_size=32), discover_images(sys.argv[1]), sys.argv[2], options)
"""


@pytest.mark.slow
def test_sigkilled_run_resumes(tmp_path):
    """A run killed with SIGKILL mid-batch leaves only complete outputs; the re-run finishes.
    The uninterrupted run, whose rows the resumed ones must equal, runs beside the killed one."""
    import os
    import signal
    import subprocess
    import sys
    import time

    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for i in range(8):
        tifffile.imwrite(source / f"img{i}.tif",
                         np.random.default_rng(i).integers(0, 255, (300, 200), dtype=np.uint8))
    root = Path(__file__).resolve().parents[2]
    uninterrupted = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(source),
                                      str(tmp_path / "single")], cwd=root,
                                     env={**os.environ, "PYTHONPATH": str(root)},
                                     stderr=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(source), str(out)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)},
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*_overlay.png"))) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in out.glob("*_overlay.png")}
    assert 2 <= len(done_before) < 8
    for path in out.glob("*_labels.tif"):  # whatever exists under a final name is complete
        assert tifffile.imread(path).shape == (300, 200)
    predictor = CountingPredictor()
    jobs = archive.discover_images(str(source))
    rows = archive_loop.segment_images(predictor, jobs, out, options())
    assert predictor.calls == 8 - len(done_before)
    assert sum(r["status"] == "skipped" for r in rows) == len(done_before)
    assert all(r["status"] in ("ok", "skipped") for r in rows)
    assert not list(out.glob(".*.tmp"))
    # rows of the images done before the kill (same model) equal an uninterrupted run's,
    # every column (but status and timing)
    assert uninterrupted.wait(timeout=120) == 0
    resumed, single = (read_summary(d / "summary.csv") for d in (out, tmp_path / "single"))
    resumed = {p: r for p, r in resumed.items() if r["status"] == "skipped"}
    single = {p: single[p] for p in resumed}
    for rows in (resumed, single):
        for row in rows.values():
            assert row["mean_entropy"] and row["data_bar_rows"], row
            del row["status"], row["reason"], row["seconds"]
    assert resumed == single


def test_png_named_tif_is_segmented_with_a_warning(tmp_path, checkpoint_dir, caplog):
    from PIL import Image

    source = tmp_path / "in"
    source.mkdir()
    grey = np.random.default_rng(3).integers(0, 255, (40, 44), dtype=np.uint8)
    Image.fromarray(grey).save(source / "misnamed.tif", format="PNG")
    config = get_config()
    config.input, config.output_dir, config.checkpoint = (
        str(source), str(tmp_path / "out"), str(checkpoint_dir))
    config.predict.update(patch_size=PATCH, stride=PATCH, batch_size=4)
    with caplog.at_level("WARNING"):
        segment.run(config, None)
    row = read_summary(tmp_path / "out" / "summary.csv")[str(source / "misnamed.tif")]
    assert row["status"] == "ok" and row["height"] == "40", row
    assert "misnamed.tif: named as TIFF but its content is PNG" in caplog.text
    assert tifffile.imread(tmp_path / "out" / "misnamed_labels.tif").shape == (40, 44)


def test_segment_then_analyze_in_one_command(tmp_path, checkpoint_dir, caplog):
    """The analysis keys (config.analysis) reach the analysis. Its group_regex names a group,
    not a time: times would add the time-series plots, which took most of this test's time
    and are test_job.py's (the analysis of the same records)."""
    source = tmp_path / "in"
    (source / "cell").mkdir(parents=True)
    for t in (10, 60):
        tifffile.imwrite(source / "cell" / f"img_t{t}.tif",
                         np.random.default_rng(t).integers(0, 255, (64, 80), dtype=np.uint8))
    config = get_config()
    config.input, config.output_dir = str(source), str(tmp_path / "out")
    config.checkpoint, config.analyze = str(checkpoint_dir), True
    config.pixel_size_nm = 20.0
    config.analysis.group_regex = r"_t(?P<group>\d+)"
    config.predict.update(patch_size=PATCH, stride=16, batch_size=4)
    with caplog.at_level("INFO"):
        segment.run(config, None)
    assert "2 of 2 maps: analysed before" in caplog.text  # each analysed as it was written
    analysis = tmp_path / "out" / "analysis"
    with open(analysis / "analysis.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and any("_um" in key for key in rows[0])
    assert [row["group"] for row in rows] == ["10", "60"]  # config.analysis.group_regex
    # The model's fraction uncertainty from summary.csv, beside each phase's fraction.
    summary = read_summary(tmp_path / "out" / "summary.csv")
    for row in rows:
        source_row = summary[str(source / "cell" / Path(row["relative"]).name.replace(
            "_labels.tif", ".tif"))]
        for name, field in zip(CLASS_NAMES, outputs.UNCERTAINTY_FIELDS, strict=True):
            width = float(source_row[field])
            assert np.isfinite(width) and width >= 0
            assert float(row[f"{name}_area_model_unc_pct"]) == width
    keys = list(rows[0])
    assert keys.index("NiO_area_model_unc_pct") == keys.index("NiO_area_se_pct") + 1
    assert (analysis / "report.html").is_file()
    records = sorted((analysis / "images").glob("*.json"))
    assert [r.name for r in records] == ["cell_img_t10_labels.json", "cell_img_t60_labels.json"]
    assert json.loads(records[0].read_text())["settings"]["pixel_size_nm"] == 20.0
    # Resumable: a re-run keeps the valid record, redoes the one lost (e.g. interrupted).
    kept = records[0].stat().st_mtime_ns
    records[1].unlink()
    segment.run(config, None)
    assert records[0].stat().st_mtime_ns == kept and records[1].is_file()
    with open(analysis / "analysis.csv", newline="") as f:
        assert [r["relative"] for r in csv.DictReader(f)] == [
            "cell/img_t10_labels.tif", "cell/img_t60_labels.tif"]
