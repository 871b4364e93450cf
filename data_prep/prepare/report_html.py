"""The one-page HTML summary of a prepare run (the QA pictures beside it, no network).

The samples to look at first lead the table: failed, refused, with warnings, then the
prepared ones by the lower of their ranks in registration quality and label confidence
(lowest first). Every QA picture is a link to the picture itself, which opens at the size
it was written (the preview of at most QA_MAX_SIDE px that prepare makes).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socseg_jax.core import dataset_layout
from socseg_jax.core.phases import CLASS_COLORS, CLASS_NAMES
from socseg_jax.core.report_page import ACCENT, page

QA_KINDS = ("overlay", "confidence", "registration")
_STATUS_ORDER = {"failed": 0, "refused": 1}
_STYLE = """
tr.failed td{background:#fdecec} tr.refused td{background:#fff1e0} tr.warned td{background:#fffbe6}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;
 font-size:12px}
.b-ok{background:#2e7d32} .b-failed{background:#c62828} .b-refused{background:#e65100}
.num{font-weight:600;font-size:14px} .low{color:#c62828} .small{max-width:160px}
.why{color:#8a4b00;font-size:12px} .reason{color:#b71c1c;font-size:12px;word-break:break-word}
.bar{display:flex;width:110px;height:10px;border:1px solid #999;margin:3px 0}
td.qa{white-space:nowrap} a.qa img{height:96px;margin-right:4px;border:1px solid #ccc}
td.look{min-width:150px;max-width:240px}
th{text-align:left}
""" + f"a.qa:hover img{{border-color:{ACCENT}}}"


def report_html(result: Mapping[str, Any], output_dir: str | Path = ".") -> str:
    """A one-page HTML summary: the run, then one row per sample (see the module doc) with
    its status, registration, label confidence, phase fractions and QA pictures (those that
    exist in ``output_dir``/qa), each a link to the full picture."""
    esc = html.escape
    samples = ordered_samples(result["samples"])
    lowest = _lowest(result["samples"])
    truth = any(s["truth_miou"] is not None for s in samples)
    head = ["#", "Sample", "Status", "Look at", "Registration quality", "Label confidence"]
    head += ["mIoU vs truth"] * truth + ["Phases (% pore / NiO / Ni / YSZ)", "QA pictures"]
    rows = [_row(i + 1, s, lowest, truth, Path(output_dir), len(head))
            for i, s in enumerate(samples)]
    return page("prepare report", (
        "<h1>Prepare report</h1>" + _overview(result)
        + "<h2>Samples, the ones to look at first on top</h2><p class='note'>Order: failed, "
        "refused, with warnings, then by the lower of each sample's ranks in registration "
        "quality and mean label confidence (lowest first). Click a picture to open it at "
        "full size.</p><table class='grid'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    ), _STYLE)


def ordered_samples(samples: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Samples in the report's order: failed, refused, warned, then the lower of the ranks
    in registration quality and mean label confidence (lowest first), then the name."""
    ok = [s for s in samples if s["status"] not in _STATUS_ORDER]
    ranks = {}
    for key in ("registration_quality", "mean_confidence"):
        scored = sorted((s[key], s["name"]) for s in ok if s[key] is not None)
        ranks[key] = {name: i for i, (_, name) in enumerate(scored)}

    def order(s: Mapping[str, Any]) -> tuple:
        rank = min((r.get(s["name"], math.inf) for r in ranks.values()), default=math.inf)
        return (_STATUS_ORDER.get(s["status"], 2 if s["warnings"] else 3), rank, s["name"])

    return sorted(samples, key=order)


def _lowest(samples: list[Mapping[str, Any]]) -> dict[str, str]:
    """The sample with the lowest value of each measure among the prepared ones."""
    ok = [s for s in samples if s["status"] not in _STATUS_ORDER]
    out = {}
    for key in ("registration_quality", "mean_confidence"):
        scored = [(s[key], s["name"]) for s in ok if s[key] is not None]
        if len(scored) > 1:
            out[key] = min(scored)[1]
    return out


def _overview(result: Mapping[str, Any]) -> str:
    esc = html.escape
    refused = len(result.get("refused", []))
    failed = len(result["failed"]) - refused
    text = (f"{result['num_prepared']} prepared, {failed} failed, {refused} refused · "
            "patches " + ", ".join(f"{esc(k)} {v}" for k, v in result["patches"].items()))
    lines = [f"<p class='meta'>{text}</p>",
             f"<p class='meta'>dataset {esc(result['dataset_path'] or 'none written')}</p>"]
    miou = result.get("labels_truth_miou")
    if miou is not None and not math.isnan(miou):
        lines.append(f"<p class='meta'>EDS labels vs truth (simulated data): pooled mean IoU "
                     f"{miou:.4f}</p>")
    return "".join(lines)


def _row(
    index: int, s: Mapping[str, Any], lowest: dict[str, str], truth: bool, output_dir: Path,
    width: int,
) -> str:
    """One sample's row of ``width`` columns (a failed one: its reason across the row)."""
    esc = html.escape
    status = s["status"]
    kind = status if status in _STATUS_ORDER else ("warned" if s["warnings"] else "ok")
    why = [f"lowest {label} of the run" for key, label in
           (("registration_quality", "registration quality"),
            ("mean_confidence", "label confidence")) if lowest.get(key) == s["name"]]
    why_html = (f"<div class='reason'>{esc(s['reason'])}</div>" if s["reason"] else "") + "".join(
        f"<div class='why'>⚠ {esc(w)}</div>" for w in [*s["warnings"], *why])
    cells = [
        str(index),
        f"<b>{esc(s['name'])}</b><span class='small'>{esc(s['label_source'] or '')}</span>",
        f"<span class='badge b-{'ok' if kind in ('ok', 'warned') else kind}'>{esc(status)}"
        "</span>",
    ]
    if status == "failed":  # nothing else to show: the reason across the row
        return (f"<tr class='failed'>{''.join(f'<td>{c}</td>' for c in cells)}"
                f"<td colspan={width - len(cells)}>{why_html}</td></tr>")
    cells += [
        why_html,
        _registration(s, lowest.get("registration_quality") == s["name"]),
        _value(s["mean_confidence"], lowest.get("mean_confidence") == s["name"]),
    ]
    if truth:
        cells.append(_value(s["truth_miou"], False))
    cells += [_fractions(s["class_fractions"]), _pictures(s["name"], output_dir)]
    classes = {3: " class='look'", len(cells) - 1: " class='qa'"}
    return f"<tr class='{kind}'>" + "".join(
        f"<td{classes.get(i, '')}>{c}</td>" for i, c in enumerate(cells)) + "</tr>"


def _value(value: float | None, low: bool) -> str:
    if value is None:
        return "–"
    return f"<span class='num{' low' if low else ''}'>{value:.3f}</span>"


def _registration(s: Mapping[str, Any], low: bool) -> str:
    if s["registration_quality"] is None:
        return "–"
    detail = (f"shift ({s['shift_yx'][0]:.2f}, {s['shift_yx'][1]:.2f}) px, rot "
              f"{s['rotation_deg']:.2f}°" + _convention(s["metadata"]))
    return (_value(s["registration_quality"], low)
            + f"<span class='small'>{html.escape(detail)}</span>")


def _fractions(fractions: list[float]) -> str:
    """A stacked bar in the phase colours and the percentages."""
    if not fractions:
        return "–"
    bar = "".join(
        f"<span style='width:{100 * f:.1f}%;background:rgb{tuple(int(c) for c in colour)}' "
        f"title='{name} {100 * f:.1f} %'></span>"
        for f, colour, name in zip(fractions, CLASS_COLORS, CLASS_NAMES, strict=False)
    )
    text = " / ".join(f"{100 * f:.1f}" for f in fractions)
    return f"<div class='bar'>{bar}</div><span class='small'>{text}</span>"


def _pictures(name: str, output_dir: Path) -> str:
    """The sample's QA pictures that exist, each a link to itself (relative to the report)."""
    links = []
    for kind in QA_KINDS:
        if not dataset_layout.qa_path(output_dir, name, kind).is_file():
            continue
        src = html.escape(dataset_layout.qa_path(".", name, kind).as_posix())
        links.append(f"<a class='qa' href='{src}' target='_blank' title='{kind}: full size'>"
                     f"<img src='{src}' alt='{kind}'></a>")
    return "".join(links) or "–"


def _convention(metadata: Mapping[str, Any]) -> str:
    """', bar overlay (q overlay 0.95 / appended 0.71)': the data-bar convention used."""
    used = metadata.get("data_bar_convention")
    if used == "sub-area":
        return ", EDS maps of a sub-area (located)"
    if used not in ("overlay", "appended"):
        return ""
    tried = metadata.get("registration_qualities") or {}
    others = " / ".join(f"{k} {v:.3f}" for k, v in tried.items())
    return f", bar {used}" + (f" (q {others})" if len(tried) > 1 else "")
