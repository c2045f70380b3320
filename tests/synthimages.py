"""Synthetic restored images for the photometry tests, built without the code under test.

A point source of flux S is S times the restoring beam (peak 1, Jy/beam) centred on it; the beam is evaluated
on the sky, in the tangent plane of the source (the exact gnomonic offsets of each pixel's direction), not on
the pixel grid. Noise: white noise convolved with a Gaussian kernel whose autocorrelation is the restoring
beam (kernel covariance = half the beam's), scaled to the wanted rms -- the noise of a restored image is
correlated over the beam. The primary beam is a circular Gaussian on the pointing centre; the files follow
the image job's layout: ``PREFIX.pbcor.fits`` (4 axes, NaN below the beam's 10 %) and ``PREFIX.pb.fits``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.signal import fftconvolve

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))
PB_BLANK = 0.1  # the image job blanks the pbcor image below this beam level (CONTIMG_PB_FLOOR default)


def make_wcs(ra0: float, dec0: float, npix: int, pix_deg: float) -> WCS:
    w = WCS(naxis=4)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    w.wcs.crval = [ra0, dec0, 1.405e9, 1.0]
    w.wcs.crpix = [npix / 2 + 1, npix / 2 + 1, 1, 1]
    w.wcs.cdelt = [-pix_deg, pix_deg, 1.875e8, 1.0]
    w.wcs.cunit = ["deg", "deg", "Hz", ""]
    return w


def sky_beam(ra_pix, dec_pix, ra_s, dec_s, bmaj, bmin, bpa):
    """The beam (peak 1) of a source at (ra_s, dec_s) at pixel directions: gnomonic offsets at the source."""
    a, d = np.radians(ra_pix), np.radians(dec_pix)
    a0, d0 = np.radians(ra_s), np.radians(dec_s)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    east = np.degrees(np.cos(d) * np.sin(a - a0) / cosc)
    north = np.degrees((np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc)
    pa = np.radians(bpa)
    u = east * np.sin(pa) + north * np.cos(pa)
    v = east * np.cos(pa) - north * np.sin(pa)
    return np.exp(-0.5 * ((u / (bmaj * FWHM_TO_SIGMA)) ** 2 + (v / (bmin * FWHM_TO_SIGMA)) ** 2))


def correlated_noise(rng, shape, rms, bmaj_px, bmin_px, bpa_deg):
    """Gaussian noise of pixel rms ``rms`` whose autocorrelation is the beam (axes in pixels, RA to the left)."""
    pa = np.radians(bpa_deg)
    # pixel x grows to the west (RA to the left): east = -x, north = y
    maj = np.array([-np.sin(pa), np.cos(pa)])
    mnr = np.array([-np.cos(pa), -np.sin(pa)])
    s_maj, s_min = bmaj_px * FWHM_TO_SIGMA, bmin_px * FWHM_TO_SIGMA
    cov = 0.5 * (s_maj**2 * np.outer(maj, maj) + s_min**2 * np.outer(mnr, mnr))  # kernel: half the beam
    inv = np.linalg.inv(cov)
    h = int(np.ceil(4 * s_maj))
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    kern = np.exp(-0.5 * (inv[0, 0] * xx**2 + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy**2))
    white = rng.normal(size=(shape[0] + 2 * h, shape[1] + 2 * h))
    noise = fftconvolve(white, kern, mode="valid")
    return rms * noise / np.sqrt(np.sum(kern**2))


def write_image(
    prefix,
    *,
    ra0,
    dec0,
    npix,
    pix_deg,
    beam_deg,
    pb_fwhm_deg,
    sources,
    rms_jy,
    rng,
    window="2026-01-25T00:00",
):
    """Write PREFIX.pbcor.fits and PREFIX.pb.fits; ``sources`` is [(ra, dec, flux_jy)]. Returns the pbcor path."""
    bmaj, bmin, bpa = beam_deg
    w = make_wcs(ra0, dec0, npix, pix_deg)
    yy, xx = np.mgrid[0:npix, 0:npix]
    ra, dec = w.celestial.pixel_to_world_values(xx, yy)
    sky = np.zeros((npix, npix))
    h = int(np.ceil(4 * bmaj / pix_deg))  # the beam is below 1e-19 of its peak 4 FWHM away
    for ra_s, dec_s, flux in sources:
        xs, ys = w.celestial.world_to_pixel_values(ra_s, dec_s)
        x0, y0 = int(round(float(xs))), int(round(float(ys)))
        sl = (slice(max(y0 - h, 0), max(y0 + h + 1, 0)), slice(max(x0 - h, 0), max(x0 + h + 1, 0)))
        sky[sl] += flux * sky_beam(ra[sl], dec[sl], ra_s, dec_s, bmaj, bmin, bpa)
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    theta = np.degrees(np.arccos(np.clip(np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a - a0), -1, 1)))
    pb = np.exp(-0.5 * (theta / (pb_fwhm_deg * FWHM_TO_SIGMA)) ** 2)
    noise = correlated_noise(rng, (npix, npix), rms_jy, bmaj / pix_deg, bmin / pix_deg, bpa)
    pbcor = np.where(pb >= PB_BLANK, sky + noise / pb, np.nan)
    hdr = w.to_header()
    hdr["BMAJ"], hdr["BMIN"], hdr["BPA"] = bmaj, bmin, bpa
    hdr["BUNIT"] = "JY/BEAM"
    hdr["DATE-OBS"] = window + ":00.000"
    hdr["WINDOW"] = window
    prefix = Path(prefix)
    fits.PrimaryHDU(pbcor[None, None].astype(np.float32), hdr).writeto(f"{prefix}.pbcor.fits", overwrite=True)
    fits.PrimaryHDU(pb[None, None].astype(np.float32), hdr).writeto(f"{prefix}.pb.fits", overwrite=True)
    return Path(f"{prefix}.pbcor.fits")


def random_positions(rng, n, ra0, dec0, radius_deg, min_sep_deg):
    """``n`` positions within ``radius_deg`` of the centre, at least ``min_sep_deg`` apart (small-field)."""
    out = []
    while len(out) < n:
        dx, dy = rng.uniform(-radius_deg, radius_deg, 2)
        if dx * dx + dy * dy > radius_deg**2:
            continue
        ra, dec = ra0 + dx / np.cos(np.radians(dec0 + dy)), dec0 + dy
        if all(np.hypot((ra - r) * np.cos(np.radians(dec)), dec - q) >= min_sep_deg for r, q in out):
            out.append((ra, dec))
    return out
