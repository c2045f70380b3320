"""Resolved (elliptical Gaussian) sources as point components, for predicts that only know points (pure numpy).

The per-antenna-phasor predict (``contimg.core.predict``) factorizes a point source's fringe per
antenna; a Gaussian's taper, a function of the baseline, does not. A Gauss-Hermite grid of points
along the Gaussian's axes reproduces that taper to a chosen tolerance out to the longest baseline,
so the simulator and the calibration's field model both predict resolved sources as points.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from contimg.core.constants import C_M_S

__all__ = ["GH_MAX_NODES", "GH_TOL_JY", "GH_TOL_REL", "MAX_BASELINE_M", "gaussian_components"]

# Gauss-Hermite components: a resolved source's visibility within 0.1 mJy of its analytic one (half a full-size
# chunk's image noise) or 1e-4 of its flux, whichever is larger; each component costs a matrix product, and
# pruning the grids' outer nodes (_prune) keeps a counts sky at as many components as 1 mJy / 1e-3 needed without it
GH_TOL_JY = 1e-4
GH_TOL_REL = 1e-4
GH_MAX_NODES = 40  # per axis
MAX_BASELINE_M = 3000.0  # longer than DSA-110's longest baseline (~2.6 km)


def _gh_nodes(a_max: float, tol: float):
    """Gauss-Hermite nodes and weights (sum 1) reproducing exp(-a^2/4) for a <= a_max within ``tol``."""
    from numpy.polynomial.hermite import hermgauss

    a = np.linspace(0.0, a_max, 256)
    for n in range(1, GH_MAX_NODES + 1):
        x, w = hermgauss(n)
        w = w / np.sqrt(np.pi)
        if np.abs(np.exp(-1j * a[:, None] * x[None, :]) @ w - np.exp(-(a**2) / 4)).max() <= tol:
            break
    return x, w


def _prune(weights: np.ndarray, budget: float) -> np.ndarray:
    """Indices of the weights kept when the smallest, summing to at most ``budget``, are dropped.

    A dropped node of weight w changes the visibility by w exp(i phase), so the dropped sum bounds the
    error at every baseline. The outer nodes of a tensor-product grid carry tiny products of weights:
    dropping them halves the components of a counts sky at 1e-4 instead of adding 35 % to reach it.
    """
    order = np.argsort(weights, kind="stable")
    n_drop = int(np.searchsorted(np.cumsum(weights[order]), budget, side="right"))
    return np.sort(order[n_drop:])


def gaussian_components(
    sources,
    max_freq_hz: float,
    max_baseline_m: float = MAX_BASELINE_M,
    tol_jy: float = GH_TOL_JY,
    tol_rel: float = GH_TOL_REL,
) -> dict:
    """Point components (arrays ``ra_deg``, ``dec_deg``, ``flux_jy``, ``spectral_index``) for ``sources``.

    ``sources``: objects with ``ra_deg``, ``dec_deg`` (ICRS), ``flux_jy``, ``spectral_index``, ``maj_arcsec``,
    ``min_arcsec`` and ``pa_deg`` attributes (the simulator's ``Source``, the calibration's field sources).

    A point source is one component. A Gaussian (``maj_arcsec`` > 0; FWHM, position angle east of north)
    becomes a grid of Gauss-Hermite nodes along its axes: with sigma = FWHM / sqrt(8 ln 2) the
    visibility of the nodes, ``sum_q w_q exp(-2 pi i u sqrt(2) sigma x_q)``, is a quadrature of the
    Gaussian's ``exp(-2 pi^2 sigma^2 u^2)``, exact to ``max(tol_jy, tol_rel S)`` out to the longest
    baseline at ``max_freq_hz`` (nodes chosen per source and axis, a quarter of the tolerance each, and the
    grid's smallest products of weights dropped while they sum to under half of it). The defaults are the
    simulator's (GH_TOL_*); a model whose error budget is set by a brighter source can pass a looser one.
    """
    if tol_jy <= 0 or tol_rel <= 0:
        raise ValueError(f"the tolerances must be > 0, got tol_jy={tol_jy}, tol_rel={tol_rel}")
    u_max = max_baseline_m * max_freq_hz / C_M_S
    # every list in source order, so a source's components (and their fluxes) stay together
    ra, dec, flux, alpha, east, north = [], [], [], [], [], []
    for src in sources:
        if src.maj_arcsec <= 0:
            ra.append([src.ra_deg])
            dec.append([src.dec_deg])
            flux.append([src.flux_jy])
            alpha.append([src.spectral_index])
            east.append([0.0])
            north.append([0.0])
            continue
        tol = max(tol_jy / max(src.flux_jy, 1e-30), tol_rel)  # relative to the flux
        sig = np.radians(np.array([src.maj_arcsec, src.min_arcsec or src.maj_arcsec]) / 3600.0) / np.sqrt(8 * np.log(2))
        # a quarter of the tolerance to each axis (the product then errs by <= tol / 2), half to pruning
        (xa, wa), (xb, wb) = (_gh_nodes(2 * np.sqrt(2) * np.pi * s * u_max, tol / 4) for s in sig)
        weights = np.outer(wa, wb).ravel()
        keep = _prune(weights, tol / 2)
        pa = np.radians(src.pa_deg)
        along = np.sqrt(2) * sig[0] * np.repeat(xa, len(xb))[keep]  # rad along the major axis
        across = np.sqrt(2) * sig[1] * np.tile(xb, len(xa))[keep]
        east.append(along * np.sin(pa) + across * np.cos(pa))
        north.append(along * np.cos(pa) - across * np.sin(pa))
        ra.append(np.full(along.size, src.ra_deg))
        dec.append(np.full(along.size, src.dec_deg))
        flux.append(src.flux_jy * weights[keep])
        alpha.append(np.full(along.size, src.spectral_index))
    out = {
        key: np.concatenate(v) if v else np.zeros(0)
        for key, v in (("ra_deg", ra), ("dec_deg", dec), ("flux_jy", flux), ("spectral_index", alpha))
    }
    east, north = (np.concatenate(v) if v else np.zeros(0) for v in (east, north))
    node = (east != 0) | (north != 0)  # Gaussian nodes off their centre (points stay exactly where they are)
    if node.any():
        from astropy.coordinates import Angle

        centre = SkyCoord(out["ra_deg"][node] * u.deg, out["dec_deg"][node] * u.deg)
        e, n = east[node], north[node]
        pos = centre.directional_offset_by(Angle(np.arctan2(e, n), u.rad), Angle(np.hypot(e, n), u.rad))
        out["ra_deg"][node] = pos.ra.deg
        out["dec_deg"][node] = pos.dec.deg
    return out
