"""contimg qa: per-image QA figures over a time range, as a table, CSV or JSON."""

from __future__ import annotations

from contimg.catalogue import queries as q
from contimg.core.settings import Layout
from contimg.ops.tables import render_table, to_csv, to_json


def add_arguments(parser) -> None:
    """Add the options of ``contimg qa`` to ``parser``."""
    parser.add_argument("--since", help="start (UTC, YYYY-MM-DD[THH:MM]); default: 24 h before --until")
    parser.add_argument("--until", help="end (exclusive); default: just after the newest chunk")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--json", action="store_true", help="same as --format json")


def run(args) -> int:
    """Print the QA figures of the images in the range as a table, CSV or JSON; 0."""
    with q.reading(Layout.from_env().catalogue, missing_ok=True) as con:  # no catalogue yet: no images
        lo, hi = q.resolve_range(con, args.since, args.until)
        rows = q.qa_rows(con, lo, hi)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(to_json({"since": lo, "until": hi, "images": rows}))
    elif fmt == "csv":
        print(to_csv(rows, q.QA_COLUMNS), end="")
    else:
        print(f"images {lo} .. {hi} (UTC)")
        print(
            render_table(
                rows, [c for c in q.QA_COLUMNS if c not in ("image_path", "calset")], empty="no images in this range"
            )
        )
    return 0
