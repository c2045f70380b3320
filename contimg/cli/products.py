"""contimg products: current products (MS, calibration tables, images, mosaics) with their paths."""

from __future__ import annotations

from contimg.catalogue import queries as q
from contimg.core.settings import Layout
from contimg.ops.tables import render_table, to_json

COLUMNS = ["type", "date", "window_key", "status", "size_bytes", "path"]


def add_arguments(parser) -> None:
    """Add the options of ``contimg products`` to ``parser``."""
    parser.add_argument("--date", help="UTC date YYYY-MM-DD (default: all dates)")
    parser.add_argument("--type", choices=q.PRODUCT_TYPES, help="product type (default: all)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    """Print the current products as a table or JSON; 0."""
    with q.reading(Layout.from_env().catalogue, missing_ok=True) as con:  # no catalogue yet: no products
        rows = q.products(con, args.date, args.type)
    if args.json:
        print(to_json(rows))
    else:
        print(render_table(rows, COLUMNS, empty="no products match"))
    return 0
