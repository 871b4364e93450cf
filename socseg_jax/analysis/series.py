"""Grouping images into series (e.g. oxidation time) and per-group statistics.

Groups come from a CSV ``path,group,time_min,...`` (a row matches an image by its full
path, its path relative to the input, or its file name or stem) or from a regular
expression with named groups searched in the image's relative path, e.g.
``(?P<group>cell\\w+)_t(?P<time_min>\\d+)``. Extra CSV columns / named groups are kept.
Images without a group get group "all"; without a time, time_min NaN.
Statistics per (group, time_min): mean, std (ddof=1; NaN for one image) and count of every
numeric metric (count = images with a finite value).
"""

from __future__ import annotations

import csv
import math
import re
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


def assign_groups(
    rows: list[dict[str, Any]], groups_csv: str = "", group_regex: str = ""
) -> None:
    """Adds ``group`` and ``time_min`` (and any other named fields) to every row in place."""
    table = read_groups_csv(groups_csv) if groups_csv else {}
    try:
        pattern = re.compile(group_regex) if group_regex else None
    except re.error as err:
        raise UserError(f"config.group_regex {group_regex!r} is not a regex: {err}") from None
    for row in rows:
        fields: dict[str, str] = {}
        if table:
            fields = {k: v for k, v in _lookup(table, row["path"], row["relative"]).items()
                      if k != "path"}
        elif pattern is not None:
            match = pattern.search(row["relative"]) or pattern.search(row["path"])
            found = match.groupdict() if match else {}
            fields = {k: v for k, v in found.items() if v is not None}
        row["group"] = fields.pop("group", "") or "all"
        try:
            row["time_min"] = float(fields.pop("time_min", "nan") or "nan")
        except ValueError:
            row["time_min"] = math.nan
        row.update(fields)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def group_statistics(
    rows: list[dict[str, Any]], skip: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """One row per (group, time_min): ``<metric>_mean``, ``_std``, ``_count``; sorted."""
    keys: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        keys.setdefault((row["group"], row["time_min"]), []).append(row)
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r)
               if k not in ("time_min", *skip) and any(_numeric(r.get(k)) for r in rows)]
    out = []
    for (group, time_min), members in sorted(
        keys.items(), key=lambda kv: (kv[0][0], math.inf if math.isnan(kv[0][1]) else kv[0][1])
    ):
        stats: dict[str, Any] = {"group": group, "time_min": time_min}
        stats["images_count"] = len(members)
        for m in metrics:
            v = np.array([float(r[m]) for r in members if _numeric(r.get(m))], float)
            v = v[np.isfinite(v)]
            stats[f"{m}_mean"] = float(v.mean()) if v.size else math.nan
            stats[f"{m}_std"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
            stats[f"{m}_count"] = int(v.size)
        out.append(stats)
    return out
