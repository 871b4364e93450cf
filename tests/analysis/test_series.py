"""Times from file names (series.TIME_PATTERNS) and the per-group statistics."""

import math

import pytest

from socseg_jax.analysis import series


@pytest.mark.parametrize("name, minutes, pattern", [
    ("t000.tif", 0, "t<n>"),
    ("t120.tif", 120, "t<n>"),
    ("cellA/img_t30_labels.tif", 30, "t<n>"),
    ("T010.TIF", 10, "t<n>"),
    ("sample 20 min.tif", 20, "<n> min"),
    ("Ni_10min_a.tif", 10, "<n> min"),
    ("10 minutes/area1.tif", 10, "<n> min"),
    ("run_1.5h.tif", 90, "<n> h"),
    ("ox2h.tif", 120, "<n> h"),
    ("sample_000_ox10.tif", 10, "ox<n>"),
    ("time_5.tif", 5, "time<n>"),
])
def test_times_from_common_names(name, minutes, pattern):
    found, used = series.time_from_name(name)
    assert found == minutes and used.name.startswith(pattern)


@pytest.mark.parametrize("name", ["abc.tif", "test_1hz.tif", "Test3.tif", "cat10.tif"])
def test_no_time_in_other_names(name):
    assert series.time_from_name(name) is None


def test_missing_times_are_one_group_and_sorted_last():
    rows = [{"path": f"/d/{n}", "relative": n, "area_pct": v}
            for n, v in (("b.tif", 1.0), ("t5.tif", 2.0), ("a.tif", 3.0), ("t1.tif", 4.0))]
    notes = series.assign_groups(rows)
    assert any("'t<n> (n in min)': 2 of 4 images" in n for n in notes)
    assert any("no time in the names of 2 of 4 images" in n for n in notes)
    groups = series.group_statistics(rows, skip=("relative",))
    assert [g["time_min"] for g in groups[:2]] == [1.0, 5.0] and math.isnan(groups[2]["time_min"])
    assert len(groups) == 3 and groups[2]["images_count"] == 2
    assert groups[2]["area_pct_mean"] == 2.0
    assert groups[2]["area_pct_std"] == pytest.approx(math.sqrt(2))


def test_a_regex_replaces_the_patterns():
    rows = [{"path": "/d/cellB_t7.tif", "relative": "cellB_t7.tif"}]
    notes = series.assign_groups(rows, group_regex=r"(?P<group>cell\w)_")
    assert rows[0]["group"] == "cellB" and math.isnan(rows[0]["time_min"])
    assert "1 of 1 images matched" in notes[0]
    series.assign_groups(rows, group_regex="")
    assert rows[0]["group"] == "all" and math.isnan(rows[0]["time_min"])
