"""The mosaic's output grid: a plate-carree strip covering every input (pure: astropy).

Output grid: a plate-carree (CAR) strip at the inputs' mean dec. Image centres are unwrapped in
input (time) order, so RA runs continuously through 0/360; the reference RA is the middle of the
unwrapped span. A full day (24 h of RA) gives a strip a little longer than 360 deg: the sky at the
day's boundary appears at both ends, each copy built from the images of that end of the day.

Pixel scale: by default the coarser of the finest input cell and ``BMIN / PIXELS_PER_BEAM`` of the
median input beam (3 pixels per beam keeps Gaussian fits of point sources within a fifth of the beam in
position, and the image's cubic-spline regridding their flux within ~0.1 %; the full 3-arcsec input
resolution would make a 2 x 2.3 GB accumulator pair for a day at dec 55 for no extra information).
Restoring beam: the median BMAJ, BMIN, BPA of the inputs (the quick images of one day share their
uv coverage, so their beams differ by a few per cent).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from contimg.mosaic.inputs import MosaicInput

__all__ = ["strip_wcs", "PIXELS_PER_BEAM"]

PIXELS_PER_BEAM = 3.0  # output cell = BMIN / this (see module docstring)


def _geometry(inputs: list[MosaicInput]):
    """Per input: (header, celestial WCS, centre ra/dec, corner-and-edge ra/dec samples)."""
    out = []
    edge = np.linspace(0, 1, 9)
    for m in inputs:
        h = fits.getheader(m.image)
        w = WCS(h).celestial
        ny, nx = h["NAXIS2"], h["NAXIS1"]
        xs = np.concatenate([edge * (nx - 1), edge * (nx - 1), np.zeros(9), np.full(9, nx - 1)])
        ys = np.concatenate([np.zeros(9), np.full(9, ny - 1), edge * (ny - 1), edge * (ny - 1)])
        ra, dec = w.pixel_to_world_values(xs, ys)
        ra_c, dec_c = w.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
        out.append((h, w, float(ra_c), float(dec_c), np.asarray(ra), np.asarray(dec)))
    return out


def strip_wcs(inputs: list[MosaicInput], cell_arcsec: float | None = None, margin_deg: float = 0.0):
    """A CAR strip covering every input, RA unwrapped in input order (continuous through 0/360).

    Returns
    -------
    (WCS, (ny, nx), x_ranges) where ``x_ranges[i]`` is input i's (lo, hi) output column range.

    Raises
    ------
    ValueError
        If there are no inputs or the cell is not positive.
    """
    if not inputs:
        raise ValueError("no images to mosaic")
    geo = _geometry(inputs)
    centres = np.array([g[2] for g in geo])
    # unwrap centre RAs in input (time) order, then express each image's edges relative to its centre
    unwrapped = np.degrees(np.unwrap(np.radians(centres)))
    ra0 = float((unwrapped.min() + unwrapped.max()) / 2.0)
    dec0 = float(np.mean([g[3] for g in geo]))
    if cell_arcsec is None:
        cells = [abs(g[0]["CDELT2"]) * 3600 for g in geo]
        bmins = [g[0].get("BMIN", 0.0) * 3600 for g in geo]
        beam_cell = float(np.median(bmins)) / PIXELS_PER_BEAM if np.median(bmins) > 0 else 0.0
        cell_arcsec = max(float(np.min(cells)), beam_cell)
    if not cell_arcsec > 0:
        raise ValueError(f"mosaic cell {cell_arcsec} arcsec must be positive")
    cell = cell_arcsec / 3600.0
    cos0 = np.cos(np.radians(dec0))
    offs = []
    for g, uc in zip(geo, unwrapped, strict=True):
        offs.append((uc - ra0) + (((g[4] - g[2]) + 180.0) % 360.0 - 180.0))  # deg of RA from ra0
    allx = np.concatenate(offs)
    ally = np.concatenate([g[5] for g in geo])
    x_lo, x_hi = allx.min() - margin_deg / cos0, allx.max() + margin_deg / cos0
    y_lo, y_hi = ally.min() - margin_deg, ally.max() + margin_deg
    nx = int(np.ceil((x_hi - x_lo) * cos0 / cell)) + 1
    ny = int(np.ceil((y_hi - y_lo) / cell)) + 1
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---CAR", "DEC--CAR"]
    w.wcs.crval = [ra0 % 360.0, 0.0]
    cdelt_x = -cell / cos0  # ~cell on the sky along RA at the strip's dec
    w.wcs.cdelt = [cdelt_x, cell]
    crpix_x = 1 + x_hi * cos0 / cell
    w.wcs.crpix = [crpix_x, 1 - y_lo / cell]
    x_ranges = [((crpix_x - 1) + o.max() / cdelt_x, (crpix_x - 1) + o.min() / cdelt_x) for o in offs]
    return w, (ny, nx), x_ranges
