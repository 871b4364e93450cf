"""Fuzzing the readers and the jobs with seeded mutants of real files.

Byte flips, truncations, header-field edits and inserted bytes of TIFF (8/16-bit, raw and
zlib), PNG, JPEG, ilastik HDF5 and H5OINA files go through every reader, a batch of them
through `segment` and a few mutated sample folders through `prepare`. Each file must either
read or fail with one ImageReadError/SampleError line: no other exception, no hang, no
allocation above the limit, no temporary file left behind.
"""

import concurrent.futures
import csv
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import skimage.io
import tifffile
from socseg_jax.configs.sections import prepare_config
from socseg_jax.configs.segment import get_config

from data_prep import synthetic
from data_prep.prepare.run import prepare
from data_prep.readers.h5oina import read_h5oina
from data_prep.readers.images import read_grey
from data_prep.readers.label_maps import read_label_values
from data_prep.readers.sem_metadata import read_sem_metadata
from socseg_jax.core.errors import UserError
from socseg_jax.jobs import segment
from tests.jobs.test_segment import PATCH

LIMIT = 1 << 20  # max_bytes of the fuzzed reads: every base file decodes to far less
PEAK = 50 << 20  # what a refused or decoded mutant may allocate (float64 RGB included)
TIMEOUT_S = 20.0
MUTANTS_PER_BASE = 36


def base_files(root: Path) -> dict[str, Path]:
    """One real file per format, small (48x64) so that every read is fast."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    grey8 = rng.integers(0, 255, (48, 64), dtype=np.uint8)
    files = {
        "raw8.tif": lambda p: tifffile.imwrite(p, grey8),
        "zlib16.tif": lambda p: tifffile.imwrite(
            p, rng.integers(0, 65535, (48, 64), dtype=np.uint16), compression="zlib"
        ),
        "grey.png": lambda p: skimage.io.imsave(p, grey8, check_contrast=False),
        "rgb.png": lambda p: skimage.io.imsave(
            p, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), check_contrast=False
        ),
        "grey.jpg": lambda p: skimage.io.imsave(p, grey8, check_contrast=False),
        "labels.h5": lambda p: _write_ilastik(p, rng.integers(1, 5, (48, 64, 1), np.uint8)),
        "maps.h5oina": lambda p: synthetic.write_h5oina(
            p,
            {el: rng.random((12, 16)).astype(np.float32) for el in ("Ni", "O", "Zr")},
            (0.5, 0.5),
            electron_image=grey8,
            electron_step_um=0.125,
        ),
    }
    for name, write in files.items():
        write(root / name)
    return {name: root / name for name in files}


def _write_ilastik(path: Path, labels: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("exported_data", data=labels, compression="gzip")


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One seeded mutation of ``data``: (what was done, the mutant)."""
    buf = bytearray(data)
    kind = rng.choice(["flip", "truncate", "header", "insert"])
    if kind == "flip":
        for pos in rng.integers(0, len(buf), rng.integers(1, 9)):
            buf[pos] = int(rng.integers(0, 256))
    elif kind == "truncate":
        buf = buf[: int(rng.integers(1, len(buf)))]
    elif kind == "header":  # a 1-, 2- or 4-byte field near the start set to an extreme value
        width = int(rng.choice([1, 2, 4]))
        pos = int(rng.integers(0, max(1, min(len(buf), 512) - width)))
        value = int(rng.choice([0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
        buf[pos : pos + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
    else:
        pos = int(rng.integers(0, len(buf)))
        buf[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return kind, bytes(buf)


def mutants(bases: dict[str, Path], root: Path, per_base: int, seed: int) -> list[Path]:
    """``per_base`` seeded mutants of every base file, written under ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for name, path in bases.items():
        data = path.read_bytes()
        for i in range(per_base):
            kind, mutant = mutate(data, rng)
            target = root / f"{Path(name).stem}_{i:03d}_{kind}{Path(name).suffix}"
            target.write_bytes(mutant)
            out.append(target)
    return out


def bounded_call(fn: Callable, path: Path) -> tuple[object, int]:
    """(result or UserError, traced peak bytes) of fn(path), in a thread with a timeout."""
    tracemalloc.start()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        future = pool.submit(fn, path)
        try:
            result = future.result(timeout=TIMEOUT_S)
        except UserError as err:
            result = err
        except concurrent.futures.TimeoutError:
            pytest.fail(f"{fn.__name__}({path.name}) hung for more than {TIMEOUT_S} s")
        except Exception as err:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{fn.__name__}({path.name}) raised {type(err).__name__}: {err}")
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pool.shutdown(wait=False)


READERS = {
    "read_grey": lambda p: read_grey(p, LIMIT),
    "read_label_values": lambda p: read_label_values(p, palette_indices=True, max_bytes=LIMIT),
    "read_h5oina": lambda p: read_h5oina(p, max_bytes=LIMIT),
    "read_sem_metadata": read_sem_metadata,
}


def test_every_reader_survives_mutants(tmp_path):
    files = mutants(base_files(tmp_path / "base"), tmp_path / "mutants", MUTANTS_PER_BASE, 0)
    assert len(files) >= 250
    outcomes = {"ok": 0, "refused": 0}
    for path in files:
        for name, reader in READERS.items():
            result, peak = bounded_call(reader, path)
            assert peak < PEAK, f"{name}({path.name}) allocated {peak / 2**20:.0f} MiB"
            if isinstance(result, UserError):
                message = str(result)
                assert "\n" not in message and path.name in message, (name, message)
                outcomes["refused"] += 1
            else:
                outcomes["ok"] += 1
            if name == "read_sem_metadata":
                assert isinstance(result, dict)
    assert outcomes["ok"] and outcomes["refused"], outcomes
    assert not list(tmp_path.rglob("*.tmp*"))


def test_segment_lists_one_reason_per_failed_mutant(tmp_path, checkpoint_dir):  # noqa: F811
    bases = base_files(tmp_path / "base")
    images = {k: v for k, v in bases.items() if k.endswith((".tif", ".png", ".jpg"))}
    files = mutants(images, tmp_path / "archive", 10, seed=1)
    config = get_config()
    config.update(input=str(tmp_path / "archive"), output_dir=str(tmp_path / "out"),
                  checkpoint=str(checkpoint_dir), max_image_bytes=LIMIT, num_workers=1)
    config.predict.update(patch_size=PATCH, stride=PATCH, batch_size=4, blending="uniform")
    segment.run(config, None)
    with open(tmp_path / "out" / "summary.csv", newline="", encoding="utf-8") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    assert set(rows) == {str(p) for p in files}
    failed = [row for row in rows.values() if row["status"] != "ok"]
    assert failed and len(failed) < len(rows)
    for row in failed:  # the row names the file; its reason is the one line after the name
        assert row["reason"] and "\n" not in row["reason"], row
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]


def test_prepare_lists_one_reason_per_mutated_sample(tmp_path):
    raw = tmp_path / "raw"
    synthetic.write_raw_dataset(raw, 3, seed=0, shape=(128, 128), oxidation_times=(10,))
    good = raw / "sample_000_ox10"
    rng = np.random.default_rng(2)
    targets = ["sem.tif", "sem.tif", "sem.tif", "eds/Ni Ka1.tif", "eds/O Ka1.tif"]
    mutated = []
    for i, rel in enumerate(targets):
        folder = raw / f"mutant_{i}"
        shutil.copytree(good, folder)
        victim = next(folder.glob(rel.replace(" Ka1", "*")))
        for _ in range(40):  # a mutant that is refused, so the sample must be reported
            _, data = mutate(victim.read_bytes(), rng)
            victim.write_bytes(data)
            try:
                read_grey(victim, LIMIT)
            except UserError:
                break
        mutated.append(folder.name)
    settings = prepare_config()
    settings.update(patch_size=64, stride=64, val_fraction=0.34, test_fraction=0.0,
                    max_image_bytes=LIMIT, refine_labels="none")
    report = prepare(raw, tmp_path / "out", settings, seed=0)
    failed = {f["sample"]: f["reason"] for f in report["failed"]}
    assert set(mutated) <= set(failed), failed
    for name, reason in failed.items():
        assert "\n" not in reason and f"'{name}'" in reason, reason
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]
