"""The analyze job end to end on tiny label maps, and its bad-input lines."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from socseg_jax.configs.analyze import get_config

from socseg_jax.jobs import analyze


def _run():
    return analyze.run


def _labels(seed: int, shape=(48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.full(shape, 3, np.uint8)
    labels[:, :16] = 0
    labels[:, 16:24] = 2
    for _ in range(6):
        y, x = rng.integers(0, shape[0]), rng.integers(24, shape[1])
        labels[max(0, y - 3) : y + 3, max(24, x - 3) : x + 3] = rng.integers(0, 3)
    return labels


def _segment_folder(root: Path) -> Path:
    """A segment-like output: <rel>/<stem>_labels.tif and summary.csv with pixel sizes."""
    rows = []
    for i, t in enumerate((0, 30, 60)):
        rel = Path("cellA") / f"img_t{t}"
        labels = _labels(i)
        if i == 2:
            labels[-5:] = 255  # a masked data bar
        (root / rel.parent).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / f"{rel}_labels.tif", labels)
        rows.append({"path": f"/raw/{rel}.tif", "status": "ok", "reason": "",
                     "pixel_size_nm": 20.0, "height": 48, "width": 64})
    rows.append({"path": "/raw/cellA/bad.tif", "status": "ok", "reason": "",
                 "pixel_size_nm": 20.0, "height": 40, "width": 64})
    tifffile.imwrite(root / "cellA" / "bad_labels.tif", _labels(9))  # 48 rows, not 40
    with open(root / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_job_end_to_end(tmp_path, caplog):
    seg = _segment_folder(tmp_path / "seg")
    config = get_config()
    config.input, config.output_dir = str(seg), str(tmp_path / "out")
    config.group_regex = r"(?P<group>cell\w)/img_t(?P<time_min>\d+)"
    config.direction = "y"
    with caplog.at_level(logging.WARNING):
        result = _run()(config, None)
    assert result["num_analyzed"] == 3
    assert len(result["problems"]) == 1 and "bad_labels.tif" in result["problems"][0]
    assert "48x64 but its image is 40x64" in result["problems"][0]
    out = tmp_path / "out"
    for name in ("analysis.csv", "analysis_groups.csv", "analysis.json", "report.html"):
        assert (out / name).is_file()
    assert len(list((out / "pictures").glob("*.png"))) == 3
    assert (out / "series" / "series_01.png").is_file()
    header = (out / "analysis.csv").read_text().splitlines()[0].split(",")
    assert "tpb_density_per_um2" in header and "pore_tortuosity_y_unitless" in header
    assert "pore_local_thickness_d50_um" in header and "pore_area_pct" in header
    metrics = [h for h in header if h not in ("path", "relative", "length_unit", "group")]
    units = ("_um", "_pct", "_count", "_unitless", "_um2", "_um3", "_px", "_nm", "_min")
    assert all(any(u in h for u in units) for h in metrics), metrics
    groups = list(csv.DictReader(open(out / "analysis_groups.csv")))
    assert [g["time_min"] for g in groups] == ["0.0", "30.0", "60.0"]
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    assert not list(out.rglob("*.tmp"))
    payload = json.loads((out / "analysis.json").read_text())
    assert payload["images"][0]["length_unit"] == "um"


def test_job_bad_config_and_px_units(tmp_path, caplog):
    config = get_config()
    config.output_dir = str(tmp_path / "out")
    with pytest.raises(ValueError, match="config.input is required"):
        _run()(config, None)
    folder = tmp_path / "maps"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", _labels(0))
    tifffile.imwrite(folder / "b.tif", (_labels(1) * 85).astype(np.uint8))  # grey encoding
    tifffile.imwrite(folder / "c.tif", np.full((8, 8), 7, np.uint8))
    config.input, config.direction, config.pictures = str(folder), "x", False
    config.tortuosity = False
    with caplog.at_level(logging.WARNING):
        result = _run()(config, None)
    assert result["num_analyzed"] == 2
    assert any("c.tif: label values [7]" in p for p in result["problems"])
    assert sum("no pixel size" in r.message for r in caplog.records) == 1
    header = (tmp_path / "out" / "analysis.csv").read_text().splitlines()[0]
    assert "tpb_density_per_px2" in header
    config.direction = "z"
    with pytest.raises(ValueError, match="config.direction"):
        _run()(config, None)


def test_records_are_reused_only_while_valid(tmp_path, caplog):
    """Per-image records and pictures as test_job_end_to_end makes them; no grouping (so no
    time series, whose plots, redrawn by each of the four runs, are not what this tests and
    took most of its time; test_job_end_to_end checks them)."""
    seg = _segment_folder(tmp_path / "seg")
    config = get_config()
    config.input, config.output_dir, config.tortuosity = str(seg), str(tmp_path / "out"), False
    config.group_regex = ""
    first = _run()(config, None)
    records = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "images").glob("*")}
    assert len(records) == 3  # the bad map has no record: it is tried (and reported) again
    with caplog.at_level(logging.INFO):
        second = _run()(config, None)
    assert "3 of 4 maps: analysed before" in caplog.text
    assert second["problems"] == first["problems"]
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "images").glob("*")}
    assert after == records
    changed = seg / "cellA" / "img_t30_labels.tif"  # a newer label map is analysed again
    tifffile.imwrite(changed, np.full((48, 64), 3, np.uint8))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        third = _run()(config, None)
    assert "2 of 4 maps: analysed before" in caplog.text
    assert f"{changed}: empty phase pore, NiO, Ni (its metrics are NaN/inf)" in third["problems"]
    rows = {r["relative"]: r for r in csv.DictReader(open(tmp_path / "out" / "analysis.csv"))}
    assert float(rows["cellA/img_t30_labels.tif"]["YSZ_area_pct"]) == 100.0
    config.connectivity = 8  # other settings: every map again
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _run()(config, None)
    assert "analysed before" not in caplog.text
