"""The look shared by the project's HTML reports (prepare, analyze): one page, no network."""

from __future__ import annotations

import html

ACCENT_RGB = (31, 78, 121)  # headings and table headers
ACCENT = "#{:02x}{:02x}{:02x}".format(*ACCENT_RGB)

_CSS = f"""
body{{font-family:system-ui,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:20px 28px;
 color:#1d2733;font-size:14px;line-height:1.4}}
h1{{font-size:24px;margin:0 0 4px}} h3{{font-size:15px;margin:14px 0 4px}}
h2{{font-size:18px;color:{ACCENT};margin:24px 0 8px;border-bottom:2px solid {ACCENT};
 padding-bottom:2px}}
.meta{{color:#4a5663;margin:2px 0}} .note{{color:#6b7785;font-size:12px}}
table.grid{{border-collapse:collapse;font-size:13px;margin:4px 0 6px}}
table.grid th{{background:{ACCENT};color:#fff;font-weight:600;padding:4px 8px;
 border:1px solid #fff}}
table.grid td{{padding:4px 8px;border-bottom:1px solid #dde3ea;vertical-align:top}}
table.striped tbody tr:nth-child(even) td{{background:#f2f6fa}}
.small{{display:block;color:#6b7785;font-size:11px}}
"""


def page(title: str, body: str, css: str = "") -> str:
    """A complete HTML page: the shared style, then ``css``, and ``body`` (HTML)."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}{css}</style></head><body>{body}</body></html>")
