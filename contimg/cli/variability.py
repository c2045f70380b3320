"""``contimg variability``: daily light curves from a photometry table, and the variability search."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    """The command's arguments."""
    parser.add_argument("table", type=Path, help="light-curve CSV written by contimg photometry")
    parser.add_argument("--out", required=True, type=Path, help="CSV: one row per source with its statistics")
    parser.add_argument("--daily-out", type=Path, default=None, help="also write the daily points (normalised)")
    parser.add_argument("--days", type=int, default=None, help="only the last N days with data (default: all)")
    parser.add_argument(
        "--sources",
        type=Path,
        default=None,
        help="reference catalogue CSV: with a compact column, only compact sources set the flux scale",
    )


def run(args) -> int:
    """Run the command; its exit status (errors raise: the ``contimg`` main turns them into one line)."""
    from dataclasses import fields

    from contimg.core.refcat import read_reference_catalog
    from contimg.photometry.daily import DailyPoint
    from contimg.photometry.lightcurves import (
        VARIABILITY_COLUMNS,
        analyse,
        read_measurements,
        variability_rows,
        write_csv,
    )
    from contimg.photometry.reference import compact_ids

    if args.days is not None and args.days < 1:
        raise ValueError(f"--days must be a whole number of days >= 1, got {args.days}")
    if not args.table.is_file():
        raise FileNotFoundError(f"no such photometry table: {args.table}")
    eligible = compact_ids(read_reference_catalog(args.sources)) if args.sources else None
    points, factors, results = analyse(read_measurements(args.table), last_days=args.days, eligible_refs=eligible)
    write_csv(args.out, variability_rows(results), VARIABILITY_COLUMNS)
    if args.daily_out:
        write_csv(args.daily_out, [p.as_dict() for p in points], [f.name for f in fields(DailyPoint)])
    flagged = [r for r in results if r.variable]
    normalised = sum(1 for f, _ in factors.values() if f == f)
    print(
        f"wrote {args.out}: {len(results)} sources over {len(factors)} days ({normalised} flux-scale normalised), "
        f"{len(flagged)} variable: " + (", ".join(f"{r.source_id} ({r.rule})" for r in flagged) or "none")
    )
    return 0
