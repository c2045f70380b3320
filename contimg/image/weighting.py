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

from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["briggs_weighting", "briggs_weighting_rows", "noise_factor"]


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
    weight = np.asarray(weight, float)
    flat = [(np.ravel(u_wl), np.ravel(v_wl), np.ones(1), weight.reshape(-1, 1))]
    (factor,), cells, gridded = briggs_weighting_rows(flat, cell_wl, n, robust)
    return factor.reshape(weight.shape), cells, gridded


def briggs_weighting_rows(
    parts: list[tuple], cell_wl: float, n: int, robust: float, threads: int = 1
) -> tuple[list[np.ndarray], float, tuple | None]:
    """:func:`briggs_weighting` of samples laid out as rows and channels, without a pass over their (u, v).

    Each part is (u, v, scale, weight): sample (r, c) lies at (u[r] scale[c], v[r] scale[c]) wavelengths (u, v
    in metres and scale frequency / c, say) with natural weight weight[r, c]. All parts share one uv grid. Returns
    ([factors (R, C) of each part], effective uv cells, the weighted cells), as briggs_weighting does.

    The samples are taken a block of rows at a time, on ``threads`` threads: at full size (5e6 samples) building
    every sample's (u, v) first and then their cells took 2.6 s of one core while the other was idle.
    """
    parts = [(np.ravel(u), np.ravel(v), np.asarray(s, float) / cell_wl, np.asarray(w)) for u, v, s, w in parts]
    limit = (n - 1) // 2
    # a square grid of odd side centred on uv = 0, no larger than the samples need (all of it when
    # some fall off): the conjugate of cell k is then cell side^2 - 1 - k, so one histogram,
    # reversed, counts the conjugates. The farthest sample in cells: the largest |u| or |v| at the largest scale.
    reach = max(
        (max(np.abs(u).max(initial=0), np.abs(v).max(initial=0)) * np.abs(s).max(initial=0) for u, v, s, _ in parts),
        default=0.0,
    )
    half = int(min(limit, np.rint(reach)))
    side = 2 * half + 1
    blocks = [(i, b) for i, (u, _, s, _) in enumerate(parts) for b in _row_blocks(len(u), len(s))]

    def cells_of(block):
        i, rows = block
        u, v, s, w = parts[i]
        iu, iv = np.rint(np.multiply.outer(u[rows], s)), np.rint(np.multiply.outer(v[rows], s))
        on = (np.abs(iu) <= limit) & (np.abs(iv) <= limit)
        cell = np.where(on, (iv + half) * side + (iu + half), 0).astype(np.intp)
        return cell, on, np.where(on, w[rows], 0.0)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        indexed = list(pool.map(cells_of, blocks))
        # one histogram of every block's cells (a grid per block and their sum took 1.8 s at full size)
        own = np.bincount(
            np.concatenate([c.ravel() for c, _, _ in indexed] or [np.zeros(0, np.intp)]),
            weights=np.concatenate([w.ravel() for _, _, w in indexed] or [np.zeros(0)]),
            minlength=side * side,
        )
        grid = own + own[::-1]
        where = np.flatnonzero(grid > 0)
        filled = grid[where]  # the sums below over these cells only: most of a snapshot's grid is empty
        total = filled.sum()
        factors = [np.ones((len(u), len(s))) for u, _, s, _ in parts]
        if total <= 0:
            return factors, 0.0, None
        f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (np.sum(filled**2) / total)

        def put_factors(job):
            (i, rows), (cell, on, _) = job
            factors[i][rows] = np.where(on, 1.0 / (1.0 + grid[cell] * f2), 1.0)

        list(pool.map(put_factors, zip(blocks, indexed, strict=True)))
    weighted = filled / (1.0 + filled * f2)
    cells = ((where % side - half) * cell_wl, (where // side - half) * cell_wl, weighted)
    return factors, float(weighted.sum() ** 2 / np.sum(weighted**2)), cells


BLOCK_SAMPLES = 1 << 18  # samples per block of rows: its temporaries (a few MB each) stay in cache


def _row_blocks(n_rows: int, n_channels: int) -> list[slice]:
    """Slices of ``n_rows`` rows of ``n_channels`` samples each, about BLOCK_SAMPLES samples a slice."""
    step = max(1, BLOCK_SAMPLES // max(n_channels, 1))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def noise_factor(weight, factor) -> float:
    """Image noise with weights ``weight * factor`` over that with ``weight`` (natural weighting).

    A sample of natural weight w has variance kappa / w; the weighted mean of samples with
    weights w d has variance kappa sum(w d^2) / (sum w d)^2, the natural one kappa / sum(w).
    ``weight`` and ``factor``: two arrays of one shape, or two lists of arrays paired element by element (the
    parts of one image), summed part by part without joining them.
    """
    pairs = zip(weight, factor, strict=True) if isinstance(weight, list) else [(weight, factor)]
    sw = swd = swdd = 0.0
    for w, d in pairs:
        w, d = np.ravel(w), np.asarray(d, float).ravel()
        wd = w * d
        sw, swd, swdd = sw + float(np.sum(w, dtype=float)), swd + float(np.sum(wd)), swdd + float(np.dot(wd, d))
    return float(np.sqrt(sw * swdd) / swd) if swd > 0 else 1.0
