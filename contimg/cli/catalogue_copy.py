"""contimg catalogue-copy: copy the SQLite catalogue into PostgreSQL, once, when moving to cluster mode.

Then set ``CONTIMG_CATALOGUE_URL`` to the same URL for every process. The SQLite file is only read.
"""

from __future__ import annotations

from pathlib import Path

from contimg.catalogue.copy import copy_sqlite_to_postgres
from contimg.catalogue.db import redact
from contimg.core.config import read
from contimg.core.settings import Layout
from contimg.ops.tables import render_table, to_json


def add_arguments(parser) -> None:
    """Add the options of ``contimg catalogue-copy`` to ``parser``."""
    parser.add_argument("--to", required=True, help="the PostgreSQL database, postgresql://[user@]host[:port]/dbname")
    parser.add_argument(
        "--from", dest="source", type=Path, help="the SQLite catalogue (default: STATE/catalogue.sqlite3)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    """Copy every table; print the rows copied per table; 0."""
    url = read("CONTIMG_CATALOGUE_URL", {"CONTIMG_CATALOGUE_URL": args.to})  # the setting's own check of a URL
    source = args.source if args.source is not None else Layout.from_env().catalogue
    counts = copy_sqlite_to_postgres(source, url)
    if args.json:
        print(to_json({"from": str(source), "to": redact(url), "rows": counts}))
    else:
        rows = [{"table": t, "rows": n} for t, n in counts.items()]
        print(render_table(rows, ["table", "rows"], empty="no tables"))
        print(f"copied {sum(counts.values())} rows from {source} to {redact(url)}")
    return 0
