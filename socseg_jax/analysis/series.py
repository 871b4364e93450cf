"""Grouping images into series (e.g. oxidation time) and per-group statistics.

Groups come from a CSV ``path,group,time_min,...`` (a row matches an image by its full
path, its path relative to the input, or its file name or stem), from a regular expression
with named groups searched in the image's relative path, e.g.
``(?P<group>cell\\w+)_t(?P<time_min>\\d+)`` (extra CSV columns / named groups are kept), or,
with ``group_regex="auto"`` (the default), from the common ways file names give a time
(``TIME_PATTERNS``: ``t000``, ``_t10``, ``10min``, ``20 min``, ``2h``, ``ox30``, ...).
Images without a group get group "all"; without a time, time_min NaN.
Statistics per (group, time_min), images without a time being one value: mean, std (ddof=1;
NaN for one image) and count of every numeric metric (count = images with a finite value).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from socseg_jax.core.errors import UserError


def read_groups_csv(path: str) -> dict[str, dict[str, str]]:
    """Rows of a groups CSV keyed by its ``path`` column; ValueError if it has none."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise UserError(f"groups_csv {path}: needs a 'path' column (path,group,time_min,...)")
        return {row["path"].strip(): row for row in reader}


def _lookup(table: dict[str, dict[str, str]], path: str, relative: str) -> dict[str, str]:
    p = Path(path)
    for key in (path, relative, p.name, p.stem, p.stem.removesuffix("_labels")):
        if key in table:
            return table[key]
    by_name = {Path(k).name: v for k, v in table.items()}
    by_name |= {Path(k).stem: v for k, v in table.items()}
    return by_name.get(p.name) or by_name.get(p.stem.removesuffix("_labels")) or {}


AUTO = "auto"
_NUMBER = r"(\d+(?:\.\d+)?)"


@dataclass(frozen=True)
class TimePattern:
    """One way a file name gives a time: ``regex`` (case-insensitive, its first group the
    number) searched in the relative path without extension, the number x ``minutes``."""

    name: str
    regex: str
    minutes: float = 1.0


# Tried in this order; the first that matches an image gives its time. A bare number after
# t / ox / time is taken as minutes.
TIME_PATTERNS: tuple[TimePattern, ...] = (
    TimePattern("<n> min", rf"(?<![0-9.]){_NUMBER}[ _-]?(?:min|mins|minutes?)(?![a-z])"),
    TimePattern("<n> h (x 60)", rf"(?<![0-9.]){_NUMBER}[ _-]?(?:h|hr|hrs|hours?)(?![a-z])",
                60.0),
    TimePattern("ox<n> (n in min)",
                rf"(?<![a-z])ox(?:idation|idised|idized)?[ _-]?{_NUMBER}(?![0-9])"),
    TimePattern("time<n> (n in min)", rf"(?<![a-z])time[ _-]?{_NUMBER}(?![0-9])"),
    TimePattern("t<n> (n in min)", rf"(?<![a-z0-9])t[ _-]?{_NUMBER}(?![0-9])"),
)


def time_from_name(relative: str) -> tuple[float, TimePattern] | None:
    """Minutes and the TIME_PATTERNS entry that found them in a path, or None."""
    text = str(Path(relative).with_suffix(""))
    for pattern in TIME_PATTERNS:
        match = re.search(pattern.regex, text, re.IGNORECASE)
        if match:
            return float(match.group(1)) * pattern.minutes, pattern
    return None


def assign_groups(
    rows: list[dict[str, Any]], groups_csv: str = "", group_regex: str = AUTO
) -> list[str]:
    """Adds ``group`` and ``time_min`` (and any other named fields) to every row in place.
    Returns lines for the report saying where the groups and times came from."""
    table = read_groups_csv(groups_csv) if groups_csv else {}
    if table:
        matched = 0
        for row in rows:
            fields = {k: v for k, v in _lookup(table, row["path"], row["relative"]).items()
                      if k != "path"}
            matched += bool(fields)
            _set_fields(row, fields)
        return [f"groups and times from {groups_csv}: {matched} of {len(rows)} images listed"]
    if group_regex == AUTO:
        return _times_from_names(rows)
    try:
        pattern = re.compile(group_regex) if group_regex else None
    except re.error as err:
        raise UserError(f"config.group_regex {group_regex!r} is not a regex: {err}") from None
    matched = 0
    for row in rows:
        match = pattern and (pattern.search(row["relative"]) or pattern.search(row["path"]))
        found = match.groupdict() if match else {}
        matched += bool(match)
        _set_fields(row, {k: v for k, v in found.items() if v is not None})
    if pattern is None:
        return ["no grouping (group_regex and groups_csv empty)"]
    return [f"groups and times from group_regex {group_regex}: "
            f"{matched} of {len(rows)} images matched"]


def _times_from_names(rows: list[dict[str, Any]]) -> list[str]:
    """time_min from TIME_PATTERNS, group "all"; one line per pattern used."""
    used: dict[str, list[str]] = {}
    for row in rows:
        found = time_from_name(row["relative"])
        _set_fields(row, {"time_min": str(found[0])} if found else {})
        label = f"'{found[1].name}'" if found else ""
        used.setdefault(label, []).append(Path(row["relative"]).name)
    lines = []
    for label, names in used.items():
        example = f", e.g. {names[0]}" if names else ""
        if label:
            lines.append(f"time (min) from the file names, pattern {label}: "
                         f"{len(names)} of {len(rows)} images{example}")
        else:
            lines.append(f"no time in the names of {len(names)} of {len(rows)} images{example} "
                         "(set group_regex or groups_csv)")
    return lines


def _set_fields(row: dict[str, Any], fields: dict[str, str]) -> None:
    """``group`` ("all" when missing), ``time_min`` (NaN when missing) and the other fields."""
    fields = dict(fields)
    row["group"] = fields.pop("group", "") or "all"
    try:
        row["time_min"] = float(fields.pop("time_min", "nan") or "nan")
    except ValueError:
        row["time_min"] = math.nan
    row.update(fields)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def time_key(value: float) -> float:
    """Sort / group key of a time: NaN (no time) is one value, after every time."""
    return math.inf if math.isnan(value) else value


def group_statistics(
    rows: list[dict[str, Any]], skip: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """One row per (group, time_min): ``<metric>_mean``, ``_std``, ``_count``; sorted."""
    keys: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        keys.setdefault((row["group"], time_key(row["time_min"])), []).append(row)
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r)
               if k not in ("time_min", *skip) and any(_numeric(r.get(k)) for r in rows)]
    out = []
    for (group, _), members in sorted(keys.items()):
        stats: dict[str, Any] = {"group": group, "time_min": members[0]["time_min"]}
        stats["images_count"] = len(members)
        for m in metrics:
            v = np.array([float(r[m]) for r in members if _numeric(r.get(m))], float)
            v = v[np.isfinite(v)]
            stats[f"{m}_mean"] = float(v.mean()) if v.size else math.nan
            stats[f"{m}_std"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
            stats[f"{m}_count"] = int(v.size)
        out.append(stats)
    return out
