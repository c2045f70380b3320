"""``contimg photometry``: forced photometry of reference sources in primary-beam-corrected images."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    """The command's arguments."""
    parser.add_argument("images", nargs="+", type=Path, help="PREFIX.pbcor.fits images (PREFIX.pb.fits beside each)")
    parser.add_argument(
        "--sources",
        type=Path,
        default=None,
        help="reference catalogue (CSV ra_deg,dec_deg,flux_jy[,spectral_index] or a VizieR table); "
        "default CONTIMG_REFERENCE_CATALOG",
    )
    parser.add_argument("--out", required=True, type=Path, help="light-curve CSV: one row per source and image")


def run(args) -> int:
    """Run the command; its exit status (errors raise: the ``contimg`` main turns them into one line)."""
    from contimg.core.config import read
    from contimg.core.refcat import read_reference_catalog
    from contimg.photometry.lightcurves import MEASUREMENT_COLUMNS, measure_images, write_csv

    ref_path = args.sources or read("CONTIMG_REFERENCE_CATALOG")
    if ref_path is None:
        raise ValueError("no reference catalogue: give --sources REF.csv or set CONTIMG_REFERENCE_CATALOG")
    sources = read_reference_catalog(ref_path)
    rows = measure_images(args.images, sources)
    write_csv(args.out, rows, MEASUREMENT_COLUMNS)
    print(
        f"wrote {args.out}: {len(rows)} measurements of {len(sources)} reference sources in {len(args.images)} images"
    )
    return 0
