"""Forced photometry of 1,000 reference sources in a full-size image, beside a per-source scipy curve_fit.

Makes a 3420 x 3420 px SIN image (3" cells, restoring beam 15" x 10" PA 30 as a full-size DSA-110 chunk's,
beam-correlated noise of 1 mJy/beam, an Airy primary beam, 1,000 point sources inside its 20 % level) and
writes ``PREFIX.pbcor.fits`` + ``PREFIX.pb.fits`` (not timed). Then times, in the same process:

- ``contimg.photometry.forced.measure_image`` (reading both files, background rms map, every fit);
- the same with the image already in memory (rms map and fits only);
- the obvious alternative: the same boxes fitted one source at a time with ``scipy.optimize.curve_fit``
  (elliptical Gaussian with the header's beam, position fixed, amplitude free), image already in memory;

and prints both, their agreement, and the pulls against the injected fluxes.

    .venv/bin/python benchmarks/photometry.py [--size 3420] [--n 1000] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import bench_dir  # noqa: E402
from contimg.core.refcat import ReferenceCatalog  # noqa: E402
from contimg.photometry.forced import forced_photometry, read_image  # noqa: E402
from tests.synthimages import random_positions, write_image  # noqa: E402

RA0, DEC0 = 180.0, 55.0
CELL_DEG = 3.0 / 3600
BEAM_DEG = (15.0 / 3600, 10.0 / 3600, 30.0)
RMS_JY = 1e-3
PB_FWHM_DEG = 2.7  # the Airy beam's FWHM at 1.405 GHz (contimg.core.beam), modelled as a Gaussian here


def curve_fit_photometry(image, header, ra, dec):
    from astropy.wcs import WCS
    from scipy.optimize import curve_fit

    wcs = WCS(header).celestial
    x, y = wcs.world_to_pixel_values(ra, dec)
    pa = np.radians(BEAM_DEG[2])
    s_maj, s_min = BEAM_DEG[0] / CELL_DEG / 2.3548, BEAM_DEG[1] / CELL_DEG / 2.3548
    half = int(np.ceil(BEAM_DEG[0] / CELL_DEG))
    out = np.full(len(ra), np.nan)
    for k, (xk, yk) in enumerate(zip(x, y, strict=True)):
        ix, iy = int(round(xk)), int(round(yk))
        box = image[iy - half : iy + half + 1, ix - half : ix + half + 1]
        yy, xx = np.mgrid[iy - half : iy + half + 1, ix - half : ix + half + 1]
        east, north = -(xx - xk), yy - yk  # RA to the left, pixel-aligned cells near the centre

        def model(_, amp, east=east, north=north):
            u = east * np.sin(pa) + north * np.cos(pa)
            v = east * np.cos(pa) - north * np.sin(pa)
            return (amp * np.exp(-0.5 * ((u / s_maj) ** 2 + (v / s_min) ** 2))).ravel()

        if np.all(np.isfinite(box)):
            out[k] = curve_fit(model, None, box.ravel(), p0=[float(box[half, half])])[0][0]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=3420)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    from contimg.photometry.forced import measure_image

    rng = np.random.default_rng(1)
    radius = 0.9 * min(args.size / 2 * CELL_DEG, 0.5 * PB_FWHM_DEG * 1.2)  # inside the image and the 20 % level
    # 5 beams apart at least: a blend is a confusion problem, not what is timed here
    ra, dec = np.array(random_positions(rng, args.n, RA0, DEC0, radius, 5 * BEAM_DEG[0])).T
    flux = np.exp(rng.uniform(np.log(0.01), np.log(1.0), args.n))
    out = bench_dir() / "photometry"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = write_image(
        out / "full",
        ra0=RA0,
        dec0=DEC0,
        npix=args.size,
        pix_deg=CELL_DEG,
        beam_deg=BEAM_DEG,
        pb_fwhm_deg=PB_FWHM_DEG,
        sources=list(zip(ra, dec, flux, strict=True)),
        rms_jy=RMS_JY,
        rng=rng,
    )
    print(f"made {args.size} x {args.size} px image with {args.n} sources in {time.perf_counter() - t0:.1f} s")
    ref = ReferenceCatalog(np.array([f"S{i:04d}" for i in range(args.n)]), ra, dec, flux, np.zeros(args.n))

    t0 = time.perf_counter()
    res = measure_image(path, ref)
    t_forced = time.perf_counter() - t0
    got = {m.source_id: m for m in res.measurements}
    idx = np.array([int(s[1:]) for s in got])
    f_forced = np.array([m.flux_jy for m in got.values()])
    pulls = (f_forced - flux[idx]) / np.array([m.err_jy for m in got.values()])

    image, pb, header = read_image(path)
    t0 = time.perf_counter()
    forced_photometry(image, pb, header, ref)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    f_cf = curve_fit_photometry(image, header, ra[idx], dec[idx])
    t_cf = time.perf_counter() - t0

    print(f"forced (contimg.photometry): {len(got)} sources in {t_forced:.2f} s ({res.n_outside} outside), files read")
    print(f"  of which rms map + fits, image in memory: {t_fit:.2f} s")
    print(f"scipy curve_fit per source:  {np.sum(np.isfinite(f_cf))} sources in {t_cf:.2f} s (image in memory)")
    diff_mjy = np.nanmax(np.abs(f_forced - f_cf)) * 1e3
    print(f"speed-up {t_cf / t_forced:.1f}x; max |forced - curve_fit| = {diff_mjy:.3f} mJy")
    print(f"pulls vs injected: mean {np.mean(pulls):+.3f}, std {np.std(pulls):.3f} over {len(pulls)} sources")
    if not args.keep:
        shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
