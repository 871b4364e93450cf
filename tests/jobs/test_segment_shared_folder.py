"""job=segment on a lab server: two runs on one folder, resumed summaries, read-only and full
file systems, file permissions."""

import contextlib
import errno
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from socseg_jax.core import atomic, run_lock
from socseg_jax.core.errors import UserError
from socseg_jax.inference import archive, archive_loop, outputs
from socseg_jax.jobs import segment
from tests.jobs.test_segment import (
    KILLED_RUN,
    PATCH,
    CountingPredictor,
    options,
    read_summary,
)

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("status", "reason", "seconds")  # what differs between a resumed and a single run


def write_images(folder: Path, count: int, shape=(40, 30)) -> list[archive.ImageJob]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.random.default_rng(i).integers(0, 255, shape, dtype=np.uint8)
        tifffile.imwrite(folder / f"img{i}.tif", image)
    return archive.discover_images(str(folder))


def warn_odd_images(monkeypatch):
    """predict_checked with shift columns: images with an odd width get a warning."""
    real = archive_loop.predict_checked

    def checked(predictor, image, opts, reference):
        maps, _ = real(predictor, image, opts, None)
        odd = image.shape[1] % 2 == 1
        return maps, {"shift_score": 9.5 if odd else 1.2, "level_gamma": 1.1,
                      "warning": "unlike the training images (test)" if odd else ""}

    monkeypatch.setattr(archive_loop, "predict_checked", checked)


def without(rows: dict[str, dict[str, str]], columns=TIMING) -> dict[str, dict[str, str]]:
    return {p: {k: v for k, v in r.items() if k not in columns} for p, r in rows.items()}


def test_resumed_summary_keeps_every_column(tmp_path, monkeypatch):
    """Images finished before an interruption come back with their warnings and scores."""
    (tmp_path / "in").mkdir()
    for i in range(5):
        tifffile.imwrite(tmp_path / "in" / f"img{i}.tif",
                         np.random.default_rng(i).integers(0, 255, (40, 30 + i), np.uint8))
    jobs = archive.discover_images(str(tmp_path / "in"))
    warn_odd_images(monkeypatch)
    single = tmp_path / "single"
    archive_loop.segment_images(CountingPredictor(), jobs, single, options())
    out = tmp_path / "out"
    real_save = outputs.save_overlay_png
    saved = []

    def dying_save(path, *args, **kwargs):
        if len(saved) == 3:
            raise KeyboardInterrupt
        saved.append(path)
        real_save(path, *args, **kwargs)

    monkeypatch.setattr(outputs, "save_overlay_png", dying_save)
    with pytest.raises(KeyboardInterrupt):
        archive_loop.segment_images(CountingPredictor(), jobs, out, options(prefetch=1))
    monkeypatch.setattr(outputs, "save_overlay_png", real_save)
    (out / "summary.csv").unlink()  # as after a SIGKILL: no summary at all
    archive_loop.segment_images(CountingPredictor(), jobs, out, options())
    resumed, expected = read_summary(out / "summary.csv"), read_summary(single / "summary.csv")
    assert [r["status"] for r in resumed.values()].count("skipped") == 3
    assert without(resumed) == without(expected)
    assert sum(bool(r["warning"]) for r in resumed.values()) == 2  # img1 and img3, as before
    assert all(r["seconds"] and r["mean_entropy"] and r["level_gamma"] for r in resumed.values())


def test_a_failed_write_removes_the_image_and_the_run_goes_on(tmp_path, monkeypatch):
    jobs = write_images(tmp_path / "in", 4)
    real_save = outputs.save_overlay_png

    def full_disk(path, *args, **kwargs):
        if "img1" in Path(path).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, *args, **kwargs)

    monkeypatch.setattr(outputs, "save_overlay_png", full_disk)
    out = tmp_path / "out"
    rows = archive_loop.segment_images(CountingPredictor(), jobs, out, options())
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "ok"]
    assert "No space left" in rows[1]["reason"]
    assert not list(out.glob("img1*")) and not list(out.glob(".*"))
    assert len(list(out.glob("*_labels.tif"))) == 3


def test_an_unwritable_summary_is_one_line(tmp_path, monkeypatch):
    jobs = write_images(tmp_path / "in", 2)
    real = outputs.write_text_atomic

    def no_room(path, text):
        if Path(path).name == "summary.csv":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    monkeypatch.setattr(outputs, "write_text_atomic", no_room)
    with pytest.raises(UserError, match="cannot write the summary .*No space left"):
        archive_loop.segment_images(CountingPredictor(), jobs, tmp_path / "out", options())


def test_an_output_folder_that_cannot_be_created(tmp_path):
    jobs = write_images(tmp_path / "in", 1)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot create the output folder"):
        archive_loop.segment_images(CountingPredictor(), jobs, tmp_path / "file" / "out",
                                    options())


@contextlib.contextmanager
def small_file_system(folder: Path, size: str, read_only: bool = False):
    """A tmpfs at ``folder`` when the machine allows mounting (True), else nothing (False)."""
    folder.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def segment_config(source: Path, out: Path, checkpoint: Path):
    from socseg_jax.configs.segment import get_config

    config = get_config()
    config.input, config.output_dir, config.checkpoint = str(source), str(out), str(checkpoint)
    config.predict.update(patch_size=PATCH, stride=16, batch_size=2)
    return config


def test_read_only_output_folder_stops_before_the_model(tmp_path, checkpoint_dir, monkeypatch):
    write_images(tmp_path / "in", 2)
    out = tmp_path / "ro"
    loaded = []
    monkeypatch.setattr(segment, "load_for_segment", lambda *a: loaded.append(a))
    with small_file_system(out, "1m", read_only=True) as mounted:
        if not mounted:  # simulated: the lock file cannot be created
            real_open = os.open

            def read_only(path, *args, **kwargs):
                if str(path).startswith(str(out)):
                    raise OSError(errno.EROFS, "Read-only file system")
                return real_open(path, *args, **kwargs)

            monkeypatch.setattr(run_lock.os, "open", read_only)
        with pytest.raises(UserError, match="cannot write in the output folder .*Read-only"):
            segment.run(segment_config(tmp_path / "in", out, checkpoint_dir), None)
        assert not loaded and not list(out.iterdir())


def test_full_output_folder_stops_before_the_model(tmp_path, checkpoint_dir, monkeypatch):
    write_images(tmp_path / "in", 2, shape=(600, 600))
    out = tmp_path / "full"
    loaded = []
    monkeypatch.setattr(segment, "load_for_segment", lambda *a: loaded.append(a))
    with small_file_system(out, "64k") as mounted:
        if not mounted:  # simulated: 4 KiB free
            monkeypatch.setattr(run_lock.shutil, "disk_usage",
                                lambda p: SimpleNamespace(total=65536, used=61440, free=4096))
        with pytest.raises(UserError, match="MiB free, less than"):
            segment.run(segment_config(tmp_path / "in", out, checkpoint_dir), None)
        assert not loaded and not list(out.iterdir())


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path, umask):
    jobs = write_images(tmp_path / "in", 1)
    old = os.umask(umask)
    try:
        out = tmp_path / f"out{umask:o}"
        archive_loop.segment_images(CountingPredictor(), jobs, out,
                                    options(save_uncertainty=True))
        atomic.write_json_atomic(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()] + [tmp_path / "report.json"]
    assert len(files) >= 6
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    jobs = write_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    with archive_loop.output_lock(out):
        with pytest.raises(UserError, match=f"in use by job=segment \\(pid {os.getpid()}"):
            run_lock._acquire(out / run_lock.LOCK_NAME, "segment", run_lock.fcntl.LOCK_EX)
        # shards of one run share the folder with each other, not with a whole run
    with archive_loop.output_lock(out, "summary-00000-of-00002.csv"):
        assert archive_loop.segment_images(CountingPredictor(), jobs[:1], out, options(),
                                           "summary-00001-of-00002.csv")
    assert not (out / run_lock.LOCK_NAME).read_text()
    rows = archive_loop.segment_images(CountingPredictor(), jobs, out, options())
    assert [r["status"] for r in rows] == ["skipped", "ok"]


def test_a_dead_run_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    jobs = write_images(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    dead = {"job": "segment", "host": "labserver", "pid": 999999, "started": "yesterday"}
    (out / run_lock.LOCK_NAME).write_text(json.dumps(dead))
    (out / ".img0_labels.k3j4h5g6.tif.tmp").write_bytes(b"half")
    with caplog.at_level("WARNING"):
        rows = archive_loop.segment_images(CountingPredictor(), jobs, out, options())
    assert rows[0]["status"] == "ok"
    assert "took over the lock of job=segment (pid 999999 on host labserver" in caplog.text
    assert not list(out.glob(".*"))  # temporaries and the lock gone


TWO_RUNS = KILLED_RUN.replace(
    "time.sleep(0.4)",
    # the first run waits (at most a minute) for the test to say the second one has ended
    "wait = Path(sys.argv[2]).parent / 'go'\n"
    "        for _ in range(600):\n"
    "            if wait.exists() or sys.argv[3:]: break\n"
    "            time.sleep(0.1)",
).replace("import sys, time", "import sys, time\nfrom pathlib import Path")


@pytest.mark.slow
def test_two_processes_on_one_output_folder(tmp_path):
    """A re-launch while a run is going is refused with one line; the first run completes
    with a correct summary, no image failing because of the other."""
    source, out = tmp_path / "in", tmp_path / "out"
    write_images(source, 6, shape=(200, 150))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", TWO_RUNS, str(source), str(out)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not (out / run_lock.LOCK_NAME).is_file() and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[1]
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-c", TWO_RUNS, str(source), str(out), "second"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    (tmp_path / "go").write_text("")
    assert second.returncode != 0 and "is in use by job=segment" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    rows = read_summary(out / "summary.csv")
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows.values()), rows
    assert "failed: " not in stderr and "No such file" not in stderr
    assert not list(out.glob(".*"))
