"""Briggs (robust) imaging weights computed on the imaging copy (pure numpy; no CASA).

The imaging copy carries the imaging weights in WEIGHT_SPECTRUM and both imagers then weight it
naturally. Two reasons: WSClean's own Briggs weighting is not invariant to how the samples of a
uv cell are split into rows (averaging short baselines in time moved its beam minor axis 12.4" ->
14.6" on a full-size chunk, while natural and uniform weighting were unchanged), and `tclean` and
WSClean then weight the same visibilities identically for the same ``robust``. Briggs (1995): with
W_k the summed natural weight in uv cell k (each sample and its conjugate counted), a sample's weight becomes
w / (1 + W_k f^2), f^2 = (5 10^-R)^2 / (sum_k W_k^2 / sum_k W_k).
"""

from __future__ import annotations

import numpy as np

__all__ = ["briggs_weighting", "noise_factor"]


def briggs_weighting(
    u_wl: np.ndarray, v_wl: np.ndarray, weight: np.ndarray, cell_wl: float, n: int, robust: float
) -> tuple[np.ndarray, float, tuple | None]:
    """(factors, effective number of uv cells, the weighted cells).

    Factors: 1 / (1 + W_k f^2), by which each sample's natural ``weight`` is multiplied (same shape).
    ``u_wl``, ``v_wl``: sample coordinates in wavelengths; ``cell_wl``: the uv cell (1 / image
    width in radians); ``n``: cells per side (the image's pixels per side). Samples off the grid
    (beyond (n - 1) // 2 cells from its centre, where their conjugates would fall off it) get factor
    1 and count for nothing, as do samples of weight 0 (flagged).

    Effective uv cells: (sum_k W'_k)^2 / sum_k W'_k^2 over the cells' Briggs-weighted sums
    W'_k = W_k / (1 + W_k f^2), sample and conjugate: how many independent uv samples the image
    has. The PSF's rms over the image is 1 / sqrt of it (Parseval), so its sidelobes fall as it
    grows (a drift-scan snapshot of 96 antennas: ~8e4; of 24: ~3e3).

    The weighted cells: (u, v, W'), the filled cells' centres in wavelengths and their Briggs-weighted sums
    W'_k, sample and conjugate counted (both halves of the plane), or None when nothing has weight: the
    weighted samples as gridded, from which the PSF's main lobe is found (contimg.image.psf_width) without a
    second pass over the samples.
    """
    u_wl, v_wl, weight = (np.asarray(a, float).ravel() for a in (u_wl, v_wl, weight))
    iu, iv = np.rint(u_wl / cell_wl), np.rint(v_wl / cell_wl)
    limit = (n - 1) // 2
    on = (np.abs(iu) <= limit) & (np.abs(iv) <= limit)
    # a square grid of odd side centred on uv = 0, no larger than the samples need (all of it when
    # some fall off): the conjugate of cell k is then cell side^2 - 1 - k, so one histogram,
    # reversed, counts the conjugates
    half = int(min(limit, max(np.abs(iu).max(initial=0), np.abs(iv).max(initial=0))))
    side = 2 * half + 1
    cell = np.where(on, (iv + half) * side + (iu + half), 0).astype(np.intp)
    own = np.bincount(cell, weights=np.where(on, weight, 0.0), minlength=side * side)
    grid = own + own[::-1]
    where = np.flatnonzero(grid > 0)
    filled = grid[where]  # the sums below over these cells only: most of a snapshot's grid is empty
    total = filled.sum()
    if total <= 0:
        return np.ones_like(weight), 0.0, None
    f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (np.sum(filled**2) / total)
    factor = np.where(on, 1.0 / (1.0 + grid[cell] * f2), 1.0)
    weighted = filled / (1.0 + filled * f2)
    cells = ((where % side - half) * cell_wl, (where // side - half) * cell_wl, weighted)
    return factor, float(weighted.sum() ** 2 / np.sum(weighted**2)), cells


def noise_factor(weight: np.ndarray, factor: np.ndarray) -> float:
    """Image noise with weights ``weight * factor`` over that with ``weight`` (natural weighting).

    A sample of natural weight w has variance kappa / w; the weighted mean of samples with
    weights w d has variance kappa sum(w d^2) / (sum w d)^2, the natural one kappa / sum(w).
    """
    w = np.asarray(weight, float).ravel()
    d = np.asarray(factor, float).ravel()
    wd = np.sum(w * d)
    return float(np.sqrt(np.sum(w) * np.sum(w * d * d)) / wd) if wd > 0 else 1.0
