"""PyBDSF against Aegean + BANE on synthetic images with DSA-110's elongated beam (contimg.image.sources).

Point sources (peaks 10-200 sigma) convolved with a 45" x 11" PA 10 deg beam on 3" cells, plus white
noise convolved with the same beam and scaled to 1 mJy/beam. Prints, per finder: detections,
fraction of the truth matched within 11", S_int / S_true (median, 1.4826 MAD), position offsets,
detections more than 11" from any true source, wall seconds. One core each.

    python benchmarks/source_finders.py 512 pybdsf aegean
    python benchmarks/source_finders.py 3420 pybdsf aegean   # 300 sources; Aegean needs the `bench` extra
    DOCOV=0 python benchmarks/source_finders.py 3420 aegean  # Aegean without covariance-weighted fits
    INI_GAUSFIT=default python benchmarks/source_finders.py 3420 pybdsf  # PyBDSF's default initial Gaussians
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from scipy import signal

BMAJ, BMIN, BPA, CELL, RMS = 45.0, 11.0, 10.0, 3.0, 1e-3
MATCH_ARCSEC = BMIN


def make_image(path, n_px, n_src, seed=1):
    rng = np.random.default_rng(seed)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 55.0], [n_px / 2 + 1, n_px / 2 + 1]
    w.wcs.cdelt = [-CELL / 3600, CELL / 3600]
    sx, sy, pa = BMIN / 2.3548 / CELL, BMAJ / 2.3548 / CELL, np.radians(BPA)
    h = int(4 * sy) + 1
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]

    def beam(dx, dy):  # FITS x grows westwards: east = -dx
        east, north = -dx, dy
        major = east * np.sin(pa) + north * np.cos(pa)
        minor = east * np.cos(pa) - north * np.sin(pa)
        return np.exp(-0.5 * ((minor / sx) ** 2 + (major / sy) ** 2))

    img = signal.fftconvolve(rng.standard_normal((n_px, n_px)), beam(xx, yy), mode="same")
    img *= RMS / np.std(img)
    m = int(6 * sy)
    xs, ys = rng.uniform(m, n_px - m, n_src), rng.uniform(m, n_px - m, n_src)
    flux = RMS * 10 ** rng.uniform(1, np.log10(200), n_src)
    for x, y, f in zip(xs, ys, flux, strict=True):
        xi, yi = int(x), int(y)
        img[yi - h : yi + h + 1, xi - h : xi + h + 1] += f * beam(xx + xi - x, yy + yi - y)
    hdr = w.to_header()
    hdr["BMAJ"], hdr["BMIN"], hdr["BPA"], hdr["BUNIT"], hdr["RESTFRQ"] = (
        BMAJ / 3600,
        BMIN / 3600,
        BPA,
        "JY/BEAM",
        1.405e9,
    )
    fits.PrimaryHDU(img.astype(np.float32), hdr).writeto(path, overwrite=True)
    return w.pixel_to_world(xs, ys), flux


def aegean(path, tmp):
    from AegeanTools.BANE import filter_image
    from AegeanTools.source_finder import SourceFinder

    t = time.perf_counter()
    filter_image(path, out_base=f"{tmp}/bane", cores=1)
    t_bane = time.perf_counter() - t
    found = SourceFinder(log=logging.getLogger("aegean")).find_sources_in_image(
        path,
        bkgin=f"{tmp}/bane_bkg.fits",
        rmsin=f"{tmp}/bane_rms.fits",
        cores=1,
        progress=False,
        docov=os.environ.get("DOCOV", "1") == "1",
    )
    cols = [np.array([getattr(s, k) for s in found]) for k in ("ra", "dec", "peak_flux", "int_flux")]
    return (*cols, t_bane, time.perf_counter() - t)


def pybdsf(path, tmp):
    import bdsf

    t = time.perf_counter()
    img = bdsf.process_image(
        path,
        quiet=True,
        thresh_isl=3.0,
        thresh_pix=5.0,
        ncores=1,
        output_opts=False,
        frequency=1.405e9,
        ini_gausfit=os.environ.get("INI_GAUSFIT", "simple"),
    )
    s = img.sources
    cols = [
        np.array([x.posn_sky_centroid[0] for x in s]),
        np.array([x.posn_sky_centroid[1] for x in s]),
        np.array([x.peak_flux_max for x in s]),
        np.array([x.total_flux for x in s]),
    ]
    return (*cols, 0.0, time.perf_counter() - t)


def score(name, res, sky, flux):
    ra, dec, peak, integ, t_bane, t_total = res
    found = SkyCoord(ra * u.deg, dec * u.deg)
    idx, sep, _ = sky.match_to_catalog_sky(found)
    ok = sep.arcsec < MATCH_ARCSEC
    ratio = integ[idx[ok]] / flux[ok]
    east = ((found[idx[ok]].ra - sky[ok].ra).wrap_at(180 * u.deg) * np.cos(sky[ok].dec)).to_value(u.arcsec)
    north = (found[idx[ok]].dec - sky[ok].dec).to_value(u.arcsec)
    _, sep_back, _ = found.match_to_catalog_sky(sky)
    med = np.median(ratio)
    mad = 1.4826 * np.median(abs(ratio - med))
    far = int((sep_back.arcsec >= MATCH_ARCSEC).sum())
    print(
        f"{name}: n_found={len(ra)} matched={ok.mean():.3f} int/true={med:.3f} (MAD {mad:.3f}) "
        f'dRAcosd rms={np.std(east):.2f}" dDec rms={np.std(north):.2f}" far={far} '
        f"bane_s={t_bane:.1f} total_s={t_total:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    n_px = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/img.fits"
        sky, flux = make_image(path, n_px, 30 if n_px <= 1024 else 300)
        for finder in sys.argv[2:]:
            score(finder, {"aegean": aegean, "pybdsf": pybdsf}[finder](path, tmp), sky, flux)
