"""Output of the operator commands: aligned plain-text tables for people, JSON and CSV for programs."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime

__all__ = ["format_value", "render_table", "to_json", "to_csv", "human_bytes"]


def format_value(value) -> str:
    """One cell: floats to 4 significant figures, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def human_bytes(n: int | float | None) -> str:
    """A byte count in decimal units, e.g. ``1.5 GB`` (``-`` for None)."""
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def render_table(rows: Sequence[dict], columns: Sequence[str] | None = None, *, empty: str = "(none)") -> str:
    """An aligned text table of ``rows`` (dicts) with a header; numbers right-aligned."""
    rows = list(rows)
    if not rows:
        return empty
    columns = list(columns or rows[0].keys())
    cells = [[format_value(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) or r.get(c) is None for r in rows)
        for c in columns
    ]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in cells:
        lines.append(
            "  ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def _default(obj):
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def to_json(obj) -> str:
    """JSON for programs (dates as ISO strings, NaN as null)."""

    def clean(o):
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), indent=2, default=_default)


def to_csv(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """CSV with a header row; None as an empty field."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(
            [
                "" if r.get(c) is None else (_default(r[c]) if isinstance(r[c], (datetime, date)) else r[c])
                for c in columns
            ]
        )
    return buf.getvalue()
