"""``contimg mosaic``: primary-beam-weighted mosaic of images (each with its PREFIX.pb.fits beside it)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="PREFIX.fits images (flat, with PREFIX.pb.fits beside)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--pb-floor", type=float, default=0.1)
    parser.add_argument("--cell-arcsec", type=float, default=None, help="default: the finest input cell")


def run(args) -> int:
    from contimg.mosaic import build_mosaic, read_input

    res = build_mosaic([read_input(p) for p in args.images], args.out, pb_floor=args.pb_floor, cell_arcsec=args.cell_arcsec)
    print(f"wrote {res.path} ({res.n_images} images, {res.shape[1]} x {res.shape[0]} px), noise map {res.noise_path}")
    return 0
