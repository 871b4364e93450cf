"""The analysis report of a time series named as files name it (t000.tif ... t120.tif)."""

import base64
import csv
import html
import re

import pytest
import tifffile
from socseg_jax.configs.analyze import get_config

from data_prep import synthetic
from socseg_jax.analysis.summary import key_columns
from socseg_jax.core.report_page import ACCENT_RGB
from socseg_jax.jobs import analyze
from tests.chromium import needs_chromium, pixels_near, screenshot

TIMES = (0, 2, 5, 10, 20, 30, 120)


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    """The analyze job, default grouping, on 7 simulated 128x128 label maps t000 ... t120."""
    maps = tmp_path_factory.mktemp("maps")
    for i, t in enumerate(TIMES):
        params = synthetic.SimulationParams(shape=(128, 128), oxidation_min=t,
                                            volume_fractions=(0.3, 0.2, 0.5))
        tifffile.imwrite(maps / f"t{t:03d}.tif", synthetic.simulate_sample(params, i).phases)
    config = get_config()
    config.input, config.output_dir = str(maps), str(maps.parent / f"{maps.name}_out")
    config.pixel_size_nm, config.block_size_px = 40.0, 32  # 16 blocks: a standard error
    return maps.parent / f"{maps.name}_out", analyze.run(config, None)


def test_time_series_is_one_group_with_seven_times_and_a_series_plot(series_run):
    out, result = series_run
    assert result["num_analyzed"] == 7
    groups = list(csv.DictReader(open(out / "analysis_groups.csv")))
    assert {g["group"] for g in groups} == {"all"}
    assert [float(g["time_min"]) for g in groups] == [float(t) for t in TIMES]
    assert (out / "series" / "key_metrics.png").stat().st_size > 0
    page = html.unescape((out / "report.html").read_text())
    assert "pattern 't<n> (n in min)': 7 of 7 images, e.g. t000.tif" in page
    assert page.index("Key metrics") < page.index("Key metrics vs time") < page.index(
        "All metrics")
    assert 'alt="key metrics" src="data:image/png;base64,' in page


def test_summary_shows_the_csv_values_and_the_downloads_are_the_csv(series_run):
    out, _ = series_run
    page = (out / "report.html").read_text()
    rows = {r["relative"]: r for r in csv.DictReader(open(out / "analysis.csv"))}
    summary = page[page.index("Key metrics"): page.index("Key metrics vs time")]
    last = summary[summary.index("t120.tif"):].split("</tr>")[0]
    cells = re.findall(r"<td>([^<]*)", last)
    row = rows["t120.tif"]
    assert cells[:4] == [f"{float(row[f'{p}_area_pct']):.1f}" for p in ("pore", "NiO", "Ni", "YSZ")]
    assert f"± {float(row['NiO_area_se_pct']):.1f}" in last
    headings = [c.heading for c in key_columns([row])]
    for heading in ("Area fraction (%)", "TPB density (µm⁻²)", "Active TPB (%)", "Tortuosity"):
        assert heading in headings and heading in summary
    for name in ("analysis.csv", "analysis_groups.csv"):
        link = re.search(rf'download="{name}" href="data:text/csv;charset=utf-8;base64,([^"]+)"',
                         page)
        assert base64.b64decode(link.group(1)) == (out / name).read_bytes()


def test_images_without_a_time_are_one_group(tmp_path):
    for i, name in enumerate(("left", "middle", "right")):
        params = synthetic.SimulationParams(shape=(64, 64))
        tifffile.imwrite(tmp_path / f"{name}.tif", synthetic.simulate_sample(params, i).phases)
    config = get_config()
    config.input, config.output_dir = str(tmp_path), str(tmp_path / "out")
    config.tortuosity, config.pictures = False, False
    analyze.run(config, None)
    groups = list(csv.DictReader(open(tmp_path / "out" / "analysis_groups.csv")))
    assert len(groups) == 1 and groups[0]["images_count"] == "3"
    page = html.unescape((tmp_path / "out" / "report.html").read_text())
    assert "no time in the names of 3 of 3 images" in page
    assert "Per group and time: mean ± std" in page and "Key metrics vs time" not in page


@needs_chromium
def test_report_renders_in_chromium_screenshot(series_run):
    out, _ = series_run
    shot = screenshot(out / "report.html", "analysis_report.png")
    top = shot[:700]
    assert shot.std() > 10  # not blank
    assert pixels_near(top, ACCENT_RGB) > 5000  # the summary table's header, at the top
    assert pixels_near(shot[700:], (31, 119, 180)) > 300  # matplotlib's first line colour
