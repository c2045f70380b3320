"""HTML for the pages: one layout, small helpers, all text escaped, no external URL (CSS inline, no JS).

Values from the catalogue pass through :func:`e` (or a helper that calls it) before they reach the page.
"""

from __future__ import annotations

import html
import math
from urllib.parse import quote

__all__ = ["e", "page", "table", "fmt", "mjy", "link", "state_colour", "STATE_COLOURS", "legend", "night_strip"]

STATE_COLOURS = {
    "ok": "#2e9e44",  # imaged, QA passed
    "flagged": "#f0a020",  # imaged, QA failed (kept out of the mosaic)
    "failed": "#d13b3b",
    "incomplete": "#8e5bbf",  # too few subbands to convert
    "in flight": "#3b7dd8",  # requested, grouped, converted, calibrated
    "no data": "#e6e6e6",
}
IN_FLIGHT = ("requested", "grouped", "converted", "calibrated")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafafa}
header{background:#1d2733;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#cfe3ff;text-decoration:none}header b{font-size:1.1em}
main{padding:1em 1.5em;max-width:1400px}
h1{font-size:1.4em;margin:.3em 0}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;background:#fff}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.wall{display:flex;flex-wrap:wrap;gap:.6em}
.wall figure{margin:0;background:#fff;border:1px solid #ddd;padding:.3em;width:180px}
.wall img{width:180px;height:180px;display:block}
.wall figcaption{font-size:.75em;line-height:1.3}
.badge{display:inline-block;padding:0 .4em;border-radius:.3em;color:#fff;font-size:.8em}
.muted{color:#6a737d}.cols{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.legend span{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin:0 .3em 0 .8em}
nav.days a{margin-right:.8em}
code{font-size:.85em;word-break:break-all}
"""


def e(value) -> str:
    """Escaped text of any value (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def fmt(value, spec: str = ".4g") -> str:
    """A number formatted (escaped text), '-' for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return e(format(value, spec))
    return e(value)


def mjy(value_jy) -> str:
    """A flux in Jy written in mJy with three significant figures; ``-`` for None."""
    return "-" if value_jy is None else fmt(value_jy * 1e3, ".3g")


def link(href: str | None, text, *, title: str | None = None) -> str:
    """An <a> to a local URL (the href is escaped too); plain text when there is no href."""
    if not href:
        return e(text)
    t = f' title="{e(title)}"' if title else ""
    return f'<a href="{e(href)}"{t}>{e(text)}</a>'


def chunk_href(window: str) -> str:
    return "/chunk/" + quote(window, safe="-:T")


def state_colour(state: str | None, image_status: str | None) -> tuple[str, str]:
    """(legend label, colour) of a window from its chunk state and its current image's status."""
    if image_status in ("ok", "flagged"):
        return image_status, STATE_COLOURS[image_status]
    if state in ("failed", "incomplete"):
        return state, STATE_COLOURS[state]
    if state in IN_FLIGHT or state == "imaged":
        return "in flight", STATE_COLOURS["in flight"]
    return "no data", STATE_COLOURS["no data"]


def legend() -> str:
    """The colour key of the chunk states used by the night page's strip."""
    return (
        '<div class="legend">'
        + "".join(f'<span style="background:{c}"></span>{e(k)}' for k, c in STATE_COLOURS.items())
        + "</div>"
    )


def table(rows: list[dict], columns: list[tuple[str, str]], *, empty: str = "none", raw: set[str] = frozenset()) -> str:
    """An HTML table of ``rows`` with (key, heading) ``columns``.

    Cells are escaped unless their key is in ``raw`` (cells the caller built from escaped parts, e.g. links).
    """
    if not rows:
        return f'<p class="muted">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for _, h in columns)
    body = []
    for r in rows:
        cells = []
        for key, _ in columns:
            v = r.get(key)
            if key in raw:
                cells.append(f"<td>{'' if v is None else v}</td>")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{fmt(v)}</td>')
            else:
                cells.append(f"<td>{'-' if v is None else e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def night_strip(date: str, windows: dict[str, dict], day_windows: list[str]) -> str:
    """Inline SVG: the day's 288 windows left to right, each coloured by state and linked to its chunk."""
    cells = []
    for i, w in enumerate(day_windows):
        info = windows.get(w)
        label, colour = state_colour(info and info.get("state"), info and info.get("image_status"))
        rect = f'<rect x="{i}" y="0" width="1" height="10" fill="{colour}"><title>{e(w)}: {e(label)}</title></rect>'
        cells.append(f'<a href="{e(chunk_href(w))}">{rect}</a>' if info else rect)
    ticks = "".join(
        f'<line x1="{h * 12}" y1="10" x2="{h * 12}" y2="12" stroke="#555" stroke-width="0.15"/>'
        f'<text x="{h * 12 + 0.3}" y="15.5" font-size="3.2" fill="#555">{h:02d}h</text>'
        for h in range(0, 24, 2)
    )
    return (
        f'<svg class="strip" viewBox="0 0 288 16" width="100%" role="img" '
        f'aria-label="windows of {e(date)} by state">'
        f"{''.join(cells)}{ticks}</svg>{legend()}"
    )


def page(title: str, body: str) -> str:
    """A whole page: header with the site's links, then ``body`` (already escaped HTML)."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} - contimg</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f'<body><header><b>contimg</b><a href="/">newest night</a><a href="/calibration">calibration</a>'
        f'<a href="/docs">API</a></header><main><h1>{e(title)}</h1>{body}</main></body></html>'
    )
