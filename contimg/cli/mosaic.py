"""``contimg mosaic``: primary-beam-weighted mosaic of images (each with its PREFIX.pb.fits beside it)."""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser) -> None:
    """Add the options of ``contimg mosaic`` to ``parser``."""
    parser.add_argument(
        "images", nargs="+", type=Path, help="PREFIX.fits images (flat, with PREFIX.pb.fits beside), in time order"
    )
    parser.add_argument("--out", required=True, type=Path, help="mosaic FITS (STEM.noise.fits and STEM.png beside)")
    parser.add_argument("--pb-floor", type=float, default=0.1, help="primary-beam floor (default 0.1)")
    parser.add_argument(
        "--cell-arcsec",
        type=float,
        default=None,
        help="output cell (default: the coarser of the finest input cell and median BMIN / 3)",
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="folder for the accumulators (default: beside --out)"
    )
    parser.add_argument("--no-png", action="store_true", help="skip the PNG preview")


def run(args) -> int:
    """Build the mosaic and print what it wrote and skipped; 0 on success, 2 on a bad input."""
    from contimg.mosaic.build import build_mosaic
    from contimg.mosaic.inputs import read_input

    try:
        inputs = [read_input(p) for p in args.images]
        res = build_mosaic(
            inputs,
            args.out,
            pb_floor=args.pb_floor,
            cell_arcsec=args.cell_arcsec,
            scratch=args.scratch,
            png=not args.no_png,
        )
    except (FileNotFoundError, ValueError) as err:  # bad inputs: the usage status, 2, as before
        print(f"contimg mosaic: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(
        f"wrote {res.path} ({res.n_images} images, "
        f"{res.shape[1]} x {res.shape[0]} px at {res.cell_arcsec:.2f} arcsec), "
        f"noise map {res.noise_path}"
    )
    for s in res.skipped:
        print(f"skipped {s['image']}: {s['reason']}")
    return 0
