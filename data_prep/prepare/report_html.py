"""The one-page HTML summary of a prepare run (the QA pictures beside it, no network)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from typing import Any

from socseg_jax.core import dataset_layout


def report_html(result: Mapping[str, Any]) -> str:
    """A one-page HTML summary: per-sample status, registration, labels, QA pictures."""
    esc = html.escape

    def qa(sample: Mapping[str, Any], kind: str) -> str:
        return esc(dataset_layout.qa_path(".", sample["name"], kind).as_posix())

    rows = []
    for s in result["samples"]:
        fr = " / ".join(f"{100 * f:.1f}" for f in s["class_fractions"]) or "-"
        reg = "-"
        if s["registration_quality"] is not None:
            reg = (
                f"shift ({s['shift_yx'][0]:.2f}, {s['shift_yx'][1]:.2f}) px, "
                f"rot {s['rotation_deg']:.2f}°, q {s['registration_quality']:.3f}"
                + _convention(s["metadata"])
            )
        miou = "-" if s["truth_miou"] is None else f"{s['truth_miou']:.4f}"
        img = (
            f'<img src="{qa(s, "overlay")}" height="160">'
            f'<img src="{qa(s, "confidence")}" height="160">'
            if s["status"] == "ok"
            else ""
        )
        if s["status"] in ("ok", "refused") and s["registration_quality"] is not None:
            img += f'<img src="{qa(s, "registration")}" height="160">'

        rows.append(
            f"<tr><td>{esc(s['name'])}</td><td>{esc(s['status'])}</td>"
            f"<td>{esc(s['label_source'] or '-')}</td>"
            f"<td>{esc(s['reason'] or '; '.join(s['warnings']))}</td><td>{esc(reg)}</td>"
            f"<td>{fr}</td><td>{miou}</td>"
            f"<td>{img}</td></tr>"
        )
    miou = result.get("labels_truth_miou")
    summary = (
        f"<p>{result['num_prepared']} prepared, {len(result['failed'])} failed; patches "
        f"{esc(json.dumps(result['patches']))}; "
        f"dataset {esc(result['dataset_path'] or 'none written')}</p>"
    )
    if miou is not None and not math.isnan(miou):
        summary += f"<p>EDS labels vs truth: pooled mean IoU {miou:.4f}</p>"
    return (
        "<!doctype html><meta charset='utf-8'><title>prepare report</title>"
        "<h1>socseg_jax prepare report</h1>"
        + summary
        + "<table border=1 cellpadding=4><tr><th>sample</th><th>status</th><th>labels from</th>"
        "<th>reason or warning</th><th>registration</th><th>pore/NiO/Ni/YSZ %</th>"
        "<th>mIoU vs truth</th><th>QA</th></tr>" + "".join(rows) + "</table>"
    )


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
