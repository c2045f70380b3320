"""Time and peak memory of the nightly mosaic over a full day of production-size images.

Makes N synthetic tiles (default 288 = a day of 5-minute windows, 4096 x 4096 px at 3 arcsec,
SIN, dec 55, one every 1.25 deg of RA, white noise plus a point source in each overlap) on scratch
disk (not timed), then runs ``contimg mosaic`` over them as a child process and prints its wall time
and peak RSS. Every tile's primary beam is the same Airy pattern in pixel space, so the tiles share
one ``.pb.fits`` file through hard links (saves 18 GB of disk; the engine reads each one in full).

    .venv/bin/python benchmarks/mosaic.py [--n 288] [--size 4096] [--cell-arcsec 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import bench_dir, run_measured  # noqa: E402
from contimg.core.beam import airy_power  # noqa: E402

DEC_DEG = 55.0
FREQ_HZ = 1.405e9
BEAM_ARCSEC = 12.0  # ~lambda/B_max of the 2.6 km array at 1.4 GHz, 4 px of 3 arcsec
RMS_JY = 1e-3


def tile_header(ra_deg: float, n: int, cell_arcsec: float, window: str) -> fits.Header:
    w = WCS(naxis=4)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    w.wcs.crval = [ra_deg % 360.0, DEC_DEG, FREQ_HZ, 1]
    w.wcs.crpix = [n / 2 + 1, n / 2 + 1, 1, 1]
    w.wcs.cdelt = [-cell_arcsec / 3600, cell_arcsec / 3600, 1.875e8, 1]
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = BEAM_ARCSEC / 3600
    h["BPA"] = 0.0
    h["BUNIT"] = "JY/BEAM"
    h["QARMS"] = RMS_JY
    h["WINDOW"] = window
    return h


def make_tiles(folder: Path, n_tiles: int, n: int, cell_arcsec: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r_rad = np.radians(np.hypot(xx - n / 2, yy - n / 2) * cell_arcsec / 3600)  # small-angle offset from the centre
    pb = airy_power(r_rad, FREQ_HZ).astype(np.float32)
    pb_master = folder / "pb-master.fits"
    fits.PrimaryHDU(pb[None, None], tile_header(0.0, n, cell_arcsec, "")).writeto(pb_master, overwrite=True)
    rng = np.random.default_rng(1)
    step_deg = 360.0 / 288  # 5 minutes of RA
    sig = BEAM_ARCSEC / cell_arcsec / 2.3548
    paths = []
    for i in range(n_tiles):
        window = f"2026-01-25T{(5 * i) // 60:02d}:{(5 * i) % 60:02d}"
        p = folder / f"t{i:03d}.fits"
        img = rng.standard_normal((n, n), dtype=np.float32) * RMS_JY
        # a 50 mJy source half a step east: lands in the overlap with the next tile
        x = n / 2 - (step_deg / 2) * np.cos(np.radians(DEC_DEG)) * 3600 / cell_arcsec
        y0, x0 = int(n / 2), int(x)
        cut = np.s_[y0 - 20 : y0 + 20, x0 - 20 : x0 + 20]
        img[cut] += 0.05 * pb[cut] * np.exp(-0.5 * ((xx[cut] - x) ** 2 + (yy[cut] - n / 2) ** 2) / sig**2)
        fits.PrimaryHDU(img[None, None], tile_header(i * step_deg, n, cell_arcsec, window)).writeto(p, overwrite=True)
        pbp = folder / f"t{i:03d}.pb.fits"
        if pbp.exists():
            pbp.unlink()
        os.link(pb_master, pbp)
        paths.append(p)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=288)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--cell-arcsec", type=float, default=3.0)
    ap.add_argument("--keep", action="store_true", help="keep the tiles and products")
    args = ap.parse_args()
    root = bench_dir() / "mosaic"
    tiles_dir = root / f"tiles-{args.size}"
    t0 = time.perf_counter()
    tiles = make_tiles(tiles_dir, args.n, args.size, args.cell_arcsec)
    print(
        f"made {len(tiles)} tiles of {args.size}^2 px at {args.cell_arcsec} arcsec in {time.perf_counter() - t0:.0f} s "
        f"(not timed)",
        flush=True,
    )
    out = root / "day.fits"
    argv = [sys.executable, "-m", "contimg.cli", "mosaic", *map(str, tiles), "--out", str(out)]
    wall, rss_mb, status = run_measured(
        argv, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    )
    h = fits.getheader(out) if status == 0 else {}
    print(
        f"mosaic of {args.n} images ({args.size}^2 px): wall {wall:.1f} s ({wall / args.n:.2f} s/image), "
        f"peak RSS {rss_mb:.0f} MB, exit {status}"
    )
    if status == 0:
        print(
            f"output {h['NAXIS1']} x {h['NAXIS2']} px at {abs(h['CDELT2']) * 3600:.2f} arcsec, "
            f"{out.stat().st_size / 1e9:.2f} GB"
        )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
