"""Outputs of the analyze job: CSV tables, JSON and one self-contained HTML page.

The page leads with the answer: the key metrics (summary.py) per group and per image, then
the key metrics vs time, the downloads (the CSV tables embedded), problems, the full tables,
every metric vs time and the per-image pictures. Pictures and CSV are embedded, so the page
works alone. Every file is written to a temporary name and renamed (socseg_jax.core.atomic).
"""

from __future__ import annotations

import base64
import csv
import html
import io as _io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from socseg_jax.analysis.series import time_key
from socseg_jax.analysis.summary import AXIS_NOTE, KeyColumn, by_heading, key_columns, number
from socseg_jax.core.atomic import write_json_atomic, write_text_atomic
from socseg_jax.core.report_page import ACCENT, page

_STYLE = f"""
.notes{{margin:4px 0 0 0;padding-left:20px;color:#4a5663}}
.alert{{background:#fff4e0;border-left:5px solid #e08a00;padding:6px 12px;margin:10px 0}}
table.key th{{text-align:center}}
table.key td{{text-align:right;white-space:nowrap;padding:3px 8px}}
table.key td.name{{text-align:left;white-space:normal;max-width:260px;word-break:break-all}}
a.dl{{display:inline-block;background:{ACCENT};color:#fff;padding:6px 12px;border-radius:4px;
 text-decoration:none;margin:0 8px 6px 0}}
details{{margin:8px 0}} summary{{cursor:pointer;font-weight:600;color:{ACCENT}}}
.scroll{{overflow:auto;max-height:70vh;border:1px solid #dde3ea}}
table.full{{border-collapse:collapse;font-size:12px}}
table.full th{{position:sticky;top:0;background:#e8eef5;padding:3px 6px;white-space:nowrap}}
table.full td{{padding:2px 6px;border-top:1px solid #eee;white-space:nowrap}}
img.plot{{max-width:100%;height:auto}}
figure{{margin:10px 0}} figcaption{{color:#4a5663;font-size:12px}}
"""


def csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV of ``rows`` with the union of their keys as header (first-seen order)."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, csv_text(rows))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return str(float(value))  # "inf" / "nan": JSON has no such numbers
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return _json_safe(obj)

    write_json_atomic(path, clean(payload))


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _img(data: bytes, width: int, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<img class="plot" width="{width}" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{b64}">')


def _download(name: str, rows: list[dict[str, Any]], what: str) -> str:
    """A link that saves ``rows`` as ``name`` (the CSV embedded, so the page works alone)."""
    b64 = base64.b64encode(csv_text(rows).encode("utf-8")).decode("ascii")
    return (f'<a class="dl" download="{name}" href="data:text/csv;charset=utf-8;base64,{b64}">'
            f"{name}</a> <span class='note'>{html.escape(what)}</span><br>")


def _full_table(rows: list[dict[str, Any]]) -> str:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(f)}</th>" for f in fields)

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float | np.floating) else html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(f, ''))}</td>" for f in fields) + "</tr>"
                   for r in rows)
    return f"<div class='scroll'><table class='full'><tr>{head}</tr>{body}</table></div>"


def _key_table(
    rows: list[dict[str, Any]], columns: list[KeyColumn], labels: list[tuple[str, str]],
    spread: str,
) -> str:
    """Key metrics table: the ``labels`` columns (heading, row key) first, then a value per
    key column with its ``spread`` ('se': its standard-error column; 'std': group rows'
    ``_mean`` / ``_std``) in small type below it."""
    groups = by_heading(columns)
    top = "".join(f"<th rowspan=2>{html.escape(h)}</th>" for h, _ in labels)
    top += "".join(
        f"<th rowspan=2>{html.escape(h)}</th>" if len(m) == 1 and not m[0].name
        else f"<th colspan={len(m)}>{html.escape(h)}</th>" for h, m in groups.items()
    )
    sub = "".join(f"<th>{html.escape(c.name)}</th>" for m in groups.values() for c in m
                  if len(m) > 1 or c.name)
    body = []
    for row in rows:
        cells = [f"<td class='name'>{html.escape(_label(row.get(k)))}</td>" for _, k in labels]
        for c in columns:
            if spread == "std":
                value, pm = row.get(f"{c.column}_mean"), row.get(f"{c.column}_std")
            else:
                value, pm = row.get(c.column), row.get(c.se) if c.se else None
            small = number(pm, c.fmt) if pm is not None else "–"
            extra = f"<span class='small'>± {small}</span>" if small != "–" else ""
            cells.append(f"<td>{number(value, c.fmt)}{extra}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='grid key striped'><thead><tr>{top}</tr><tr>{sub}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _label(value: Any) -> str:
    """A name, group or time as text (a time without decimals when whole; – when none)."""
    if isinstance(value, float | np.floating):
        return number(value, ".0f" if float(value).is_integer() else ".3g")
    return "–" if value is None else str(value)


def _overview(rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> str:
    """'7 label maps · pixel size 40 nm · 1 group, 7 times'."""
    sizes = [float(r.get("pixel_size_nm", math.nan)) for r in rows]
    known = sorted({s for s in sizes if math.isfinite(s)})
    pixel = (f"pixel size {known[0]:g} nm" if len(known) == 1
             else f"pixel sizes {known[0]:g} – {known[-1]:g} nm" if known else "")
    unknown = sum(not math.isfinite(s) for s in sizes)
    if unknown:
        pixel += f"{' (' if known else ''}{unknown} without a pixel size: lengths in px"
        pixel += ")" if known else ""
    names = {g["group"] for g in groups}
    times = {g["time_min"] for g in groups if math.isfinite(g["time_min"])}

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'s' * (n != 1)}"

    return (f"{count(len(rows), 'label map')} · {pixel} · {count(len(names), 'group')}, "
            f"{count(len(times), 'time')}")


def html_report(
    rows: list[dict[str, Any]], groups: list[dict[str, Any]], problems: list[str],
    thumbnails: dict[str, bytes], plots: dict[str, bytes], notes: Sequence[str] = (),
) -> str:
    """One self-contained page (see the module doc). ``plots``: ``key`` (key metrics vs
    time) and ``series_NN`` (every metric vs time); ``notes``: where groups and times came
    from (series.assign_groups)."""
    esc = html.escape
    columns = key_columns(rows)
    multi = len({g["group"] for g in groups}) > 1
    timed = any(math.isfinite(g["time_min"]) for g in groups)
    labels = [("Group", "group")] * multi + [("Time (min)", "time_min")] * timed
    ordered = sorted(rows, key=lambda r: (str(r["group"]), time_key(r["time_min"]),
                                          str(r["relative"])))
    parts = ["<h1>Microstructure analysis</h1>",
             f"<p class='meta'>{esc(_overview(rows, groups))}</p>",
             "<ul class='notes'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"]
    if problems:
        parts.append(f"<div class='alert'>{len(problems)} problem{'s' * (len(problems) > 1)}"
                     ": <a href='#problems'>see below</a></div>")
    parts.append("<h2 id='summary'>Key metrics</h2>")
    if any(g["images_count"] > 1 for g in groups):
        parts += ["<h3>Per group and time: mean ± std over its images</h3>",
                  _key_table(groups, columns, [*labels, ("Images", "images_count")], "std")]
    parts += ["<h3>Per image: value ± standard error (area fractions)</h3>"
              if any(c.se for c in columns) else "<h3>Per image</h3>",
              _key_table(ordered, columns, [("Image", "relative"), *labels], "se"),
              f"<p class='note'>Tortuosity, active TPB: {esc(AXIS_NOTE)}. ∞: the phase does "
              "not connect the two borders. –: no value (e.g. an empty phase).</p>"]
    if "key" in plots:
        parts += ["<h2>Key metrics vs time</h2>", _img(plots["key"], 1200, "key metrics")]
    parts += ["<h2>Downloads</h2>",
              _download("analysis.csv", rows, f"every metric per image ({len(rows)} rows)"),
              _download("analysis_groups.csv", groups,
                        "mean, std and count of every metric per group and time"),
              "<p class='note'>The same files lie beside this page, with analysis.json.</p>"]
    if problems:
        parts.append("<h2 id='problems'>Problems</h2><ul>" + "".join(
            f"<li>{esc(p)}</li>" for p in problems) + "</ul>")
    parts += ["<h2>All metrics</h2>",
              f"<details><summary>Per image ({len(rows)} rows)</summary>"
              f"{_full_table(ordered)}</details>",
              f"<details><summary>Per group and time ({len(groups)} rows)</summary>"
              f"{_full_table(groups)}</details>"]
    series = [d for n, d in plots.items() if n != "key"]
    if series:
        parts.append("<details><summary>Every metric vs time</summary>" + "".join(
            _img(d, 1000, "series") for d in series) + "</details>")
    if thumbnails:
        parts.append("<h2>Pictures</h2><p class='note'>Labels with active (white) and inactive "
                     "(red) TPB points; local thickness.</p>" + "".join(
            f"<figure>{_img(d, 900, n)}<figcaption>{esc(n)}</figcaption></figure>"
            for n, d in thumbnails.items()))
    return page("socseg analysis", "".join(parts), _STYLE)
