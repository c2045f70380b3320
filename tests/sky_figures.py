"""Issue #22's acceptance figures of an image of a simulated realistic sky, computed from the simulator's truth.

Independent of the image job: the truth is the simulator's ``sky.csv`` (intrinsic fluxes and spectral
indices) brought to what the flat image should show by the DSA-110 Airy beam (contimg.core.beam, the
model the simulator attenuates the sky with) averaged over the chunk's integrations and channels, and
every flux and position is fitted here with scipy (the restoring beam's Gaussian, amplitude and centre
free), not with the job's source finder. Used by tests/test_image_sky.py and benchmarks/image.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.stats import mad_std
from astropy.time import Time
from astropy.wcs import WCS
from scipy import ndimage
from scipy.optimize import least_squares

from contimg.core.beam import airy_power
from contimg.core.phasing import meridian_icrs
from contimg.sim.sky import read_sky_csv

BRIGHT_JY = 0.5  # "1 Jy-class": apparent (beam-attenuated) flux from this up


def apparent_fluxes(sim_dir: Path, freqs_hz: np.ndarray) -> tuple[list, np.ndarray]:
    """(sources, flux each should have in the flat multi-frequency image).

    The flux is the source's spectrum S (nu / 1.4 GHz)^alpha times the Airy power at its distance from
    the drifting pointing, averaged over the chunk's integrations and ``freqs_hz``: the image's
    frequency-averaged, time-averaged view of it.
    """
    truth = json.loads((Path(sim_dir) / "truth.json").read_text())
    sky = read_sky_csv(Path(sim_dir) / "sky.csv")
    chunk = truth["chunks"][0]
    n_t = truth["n_integrations"]
    times = Time(chunk["start"]) + (np.arange(n_t) + 0.5) * truth["integration_s"] * u.s
    track = meridian_icrs(times, truth["pointing_dec_deg"])
    src = SkyCoord([s.ra_deg for s in sky] * u.deg, [s.dec_deg for s in sky] * u.deg)
    theta = np.stack([src.separation(track[i]).rad for i in range(n_t)])  # (time, source)
    freqs = np.asarray(freqs_hz, dtype=float)
    flux = np.array([s.flux_jy for s in sky])
    alpha = np.array([s.spectral_index for s in sky])
    seen = np.zeros(len(sky))
    for f in freqs:
        seen += np.mean(airy_power(theta, f), axis=0) * flux * (f / 1.4e9) ** alpha
    return sky, seen / len(freqs)


def _beam_model(params, yy, xx, bmaj_px, bmin_px, pa_rad):
    amp, x0, y0 = params
    # position angle east of north; with RA increasing to the left, north = +y and east = -x
    dx, dy = xx - x0, yy - y0
    along = -dx * np.sin(pa_rad) + dy * np.cos(pa_rad)
    across = dx * np.cos(pa_rad) + dy * np.sin(pa_rad)
    s_maj, s_min = bmaj_px / 2.3548, bmin_px / 2.3548
    return amp * np.exp(-0.5 * ((along / s_maj) ** 2 + (across / s_min) ** 2))


def fit_point(data, x, y, bmaj_px, bmin_px, pa_deg, half=None):
    """(flux, x, y) of a point source near pixel (x, y): the restoring beam fitted (amplitude and centre)."""
    half = half or int(np.ceil(max(3.0, 0.6 * bmaj_px)))
    ix, iy = int(round(x)), int(round(y))
    ys, xs = slice(max(iy - half, 0), iy + half + 1), slice(max(ix - half, 0), ix + half + 1)
    cut = data[ys, xs]
    yy, xx = np.mgrid[ys, xs]
    pa = np.radians(pa_deg)
    start = [float(data[iy, ix]), x, y]
    res = least_squares(
        lambda p: (_beam_model(p, yy, xx, bmaj_px, bmin_px, pa) - cut).ravel(),
        start,
        x_scale=[max(abs(start[0]), 1e-6), 1.0, 1.0],
    )
    return float(res.x[0]), float(res.x[1]), float(res.x[2])


def image_rms(path) -> float:
    """Robust rms (MAD) of a FITS image's finite pixels."""
    data = fits.getdata(path)[0, 0]
    return float(mad_std(data[np.isfinite(data)]))


def _twin_on_grid(path, header, shape) -> np.ndarray:
    """The noise twin's image (``path``), which must be on the grid of ``header`` / ``shape``."""
    with fits.open(path) as hdul:
        th, twin = hdul[0].header, hdul[0].data[0, 0].astype(float)
    same = twin.shape == shape and all(
        np.isclose(th[k], header[k], rtol=0, atol=1e-9)
        for k in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2")
    )
    if not same:
        raise ValueError(f"the noise twin {path} is not on the image's grid")
    return twin


def figures(image_fits, sim_dir, freqs_hz, rms: float | None = None, edge_px: int = 20, noise_twin_fits=None) -> dict:
    """The acceptance figures of ``image_fits`` (a flat PREFIX.fits) against the truth in ``sim_dir``.

    Returns a dict: rms (Jy/beam, MAD of the image); n_isolated (point sources seen >= 10 sigma with
    no other source above 3 sigma within two beam major axes, away from the edge), fraction_good
    (within 0.2 beam -- the beam's FWHM along the offset -- and within 10 % of their flux, or 3 sigma
    below 30 sigma), median_ratio, fraction_pos / fraction_flux, median_offset_beams; n_artefacts and max_artefact_sigma
    (islands above 5 sigma with no true source above 3 sigma within 1.5 beam major axes nor one above 1 sigma
    within half a beam minor axis of the peak, farther than 10 beam major axes from every source seen above
    BRIGHT_JY).

    ``noise_twin_fits``: the same chunk simulated with no sky and the same noise (the simulator's same seed),
    imaged on the same grid. An island whose peak the twin already holds at least half of at that pixel is the
    noise's, not the imaging's: it is counted in n_noise_peaks instead of n_artefacts. (A 5-sigma threshold over
    ~10^7 pixels catches pure noise too: the 32-antenna twin alone has an island of 5.1 sigma.)
    """
    with fits.open(image_fits) as hdul:
        h, data = hdul[0].header, hdul[0].data[0, 0].astype(float)
    wcs = WCS(h).celestial
    cell = abs(h["CDELT2"]) * 3600.0
    bmaj, bmin, bpa = h["BMAJ"] * 3600.0, h["BMIN"] * 3600.0, h["BPA"]
    rms = rms if rms is not None else float(mad_std(data[np.isfinite(data)]))
    sky, seen = apparent_fluxes(sim_dir, freqs_hz)
    coords = SkyCoord([s.ra_deg for s in sky] * u.deg, [s.dec_deg for s in sky] * u.deg)
    px, py = (np.asarray(v, dtype=float) for v in wcs.world_to_pixel(coords))
    ny, nx = data.shape
    inside = (px > edge_px) & (px < nx - edge_px) & (py > edge_px) & (py < ny - edge_px)
    point = np.array([s.maj_arcsec == 0 for s in sky])
    detectable = seen >= 3 * rms
    strong = inside & point & (seen >= 10 * rms)
    rows = []
    for i in np.flatnonzero(strong):
        sep = coords[i].separation(coords[detectable]).arcsec
        if np.sum(sep < 2 * bmaj) > 1:  # itself plus a neighbour
            continue
        flux, fx, fy = fit_point(data, px[i], py[i], bmaj / cell, bmin / cell, bpa)
        fitted = wcs.pixel_to_world(fx, fy)
        offset = fitted.separation(coords[i]).arcsec
        # "0.2 beam" along the offset: the beam's FWHM in that direction (an ellipse of 0.2 BMAJ x 0.2 BMIN)
        angle = np.radians(coords[i].position_angle(fitted).deg - bpa)
        in_beams = offset * np.hypot(np.cos(angle) / bmaj, np.sin(angle) / bmin)
        snr = seen[i] / rms
        tol = max(0.1 * seen[i], 3 * rms) if snr < 30 else 0.1 * seen[i]
        rows.append((seen[i], flux, in_beams, abs(flux - seen[i]) <= tol, in_beams <= 0.2))
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    ratio = arr[:, 1] / arr[:, 0] if len(arr) else np.array([np.nan])
    # artefacts: islands above 5 sigma not explained by a true source, away from the bright ones
    islands, n_isl = ndimage.label(np.nan_to_num(data) > 5 * rms)
    peaks = ndimage.maximum_position(data, islands, index=np.arange(1, n_isl + 1)) if n_isl else []
    bright = seen >= BRIGHT_JY
    bx, by = px[bright], py[bright]
    real_x, real_y = px[detectable], py[detectable]
    # a faint source (1-3 sigma) with noise on it is still that source, not an artefact, where the island peaks on it
    faint = (seen >= rms) & ~detectable
    faint_x, faint_y = px[faint], py[faint]
    twin = _twin_on_grid(noise_twin_fits, h, data.shape) if noise_twin_fits is not None else None
    artefacts, noise_peaks = [], []
    for yy, xx in peaks:
        if not (edge_px < xx < nx - edge_px and edge_px < yy < ny - edge_px):
            continue
        if np.any(np.hypot(bx - xx, by - yy) * cell < 10 * bmaj):
            continue
        if np.any(np.hypot(real_x - xx, real_y - yy) * cell < 1.5 * bmaj):
            continue
        if np.any(np.hypot(faint_x - xx, faint_y - yy) * cell < 0.5 * bmin):
            continue
        if twin is not None and twin[yy, xx] >= 0.5 * data[yy, xx]:
            noise_peaks.append(float(data[yy, xx] / rms))
            continue
        artefacts.append(float(data[yy, xx] / rms))
    return {
        "rms": rms,
        "bmaj_arcsec": bmaj,
        "bmin_arcsec": bmin,
        "n_isolated": len(arr),
        "fraction_good": float(np.mean(arr[:, 3] * arr[:, 4])) if len(arr) else float("nan"),
        "fraction_flux": float(np.mean(arr[:, 3])) if len(arr) else float("nan"),
        "fraction_pos": float(np.mean(arr[:, 4])) if len(arr) else float("nan"),
        "median_ratio": float(np.median(ratio)),
        "median_offset_beams": float(np.median(arr[:, 2])) if len(arr) else float("nan"),
        "n_bright": int(np.sum(bright)),
        "n_artefacts": len(artefacts),
        "max_artefact_sigma": max(artefacts, default=0.0),
        "n_noise_peaks": len(noise_peaks),
        "noise_peak_sigmas": noise_peaks,
    }
