"""The imaging copy's arrays between reading and writing (pure numpy; no CASA).

The image job (``contimg.image.job.imaging_copy``) reads a chunk's spectral windows, calibrates and
averages them in worker processes, and holds the result as *parts* before writing them to the copy:
one :class:`CopyPart` per spectral window of the copy. Here: whether the windows can share rows and
what merging them costs, the parts made of the averaged windows, the copy's channels, its image grid
and its Briggs weights.

Row columns (``rows``) are dicts of arrays laid out as casatools' getcol returns them, the row axis
last (``UVW`` is (3, row)); data, weights and flags are (row, chan, pol), as the table stores them.
A window's rows are ``blocks[k]`` (indices into the MS's rows) for each data description ``k``;
``order`` lists the windows in ascending frequency.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from contimg.core.beam import fwhm_rad
from contimg.core.constants import C_M_S
from contimg.image import rules
from contimg.image.weighting import briggs_weighting_rows, noise_factor

__all__ = [
    "CopyPart",
    "windows_line_up",
    "merge_loss",
    "windows_as_parts",
    "binned_channels",
    "image_grid",
    "put_briggs_weights",
    "restoring_beam",
]


class CopyPart(NamedTuple):
    """One spectral window of the imaging copy, as it will be written."""

    rows: dict  # row columns, (..., row)
    data: np.ndarray  # (row, chan, pol) complex64
    weights: np.ndarray  # (row, chan, pol) float32, the summed weights (times any Briggs factor)
    flags: np.ndarray  # (row, chan, pol) bool
    freqs_hz: np.ndarray  # (chan,)


def windows_line_up(rows: dict, blocks: dict, order: list) -> bool:
    """Whether every window holds the same baselines in the same row order (as the converter writes).

    ``rows`` holds at least ANTENNA1 and ANTENNA2 of every row of the MS.
    """
    first = blocks[order[0]]
    a1, a2 = rows["ANTENNA1"][first], rows["ANTENNA2"][first]
    return all(
        blocks[k].size == first.size
        and np.array_equal(rows["ANTENNA1"][blocks[k]], a1)
        and np.array_equal(rows["ANTENNA2"][blocks[k]], a2)
        for k in order[1:]
    )


def merge_loss(rows: dict, blocks: dict, order: list, freqs_hz: list) -> float | None:
    """``contimg.image.rules.time_merge_loss`` of the windows on shared rows (at the half-power radius).

    ``rows`` holds ANTENNA1, ANTENNA2 and UVW of every row; ``freqs_hz`` the windows' mean
    frequencies in ``order``. None when there is one window, or the windows' rows do not line up
    (same baselines in the same order) and so cannot share rows.
    """
    if len(order) < 2 or not windows_line_up(rows, blocks, order):
        return None
    first = blocks[order[0]]
    cross = rows["ANTENNA1"][first] != rows["ANTENNA2"][first]
    uvw = np.stack([rows["UVW"][:, blocks[k]][:, cross] for k in order])
    return rules.time_merge_loss(uvw, np.array(freqs_hz), 0.5 * fwhm_rad(min(freqs_hz)))


def windows_as_parts(
    rows: dict,
    first_rows: dict | None,
    blocks: dict,
    order: list,
    averaged: dict,
    plans: dict,
    freqs: list,
    merged: bool,
) -> list[CopyPart]:
    """The windows, averaged in time by the workers with ``plans``, as parts of the copy.

    Parameters
    ----------
    rows : dict
        Every row's TIME and UVW at least (all of ``contimg.image.job.msread.ROW_COLUMNS`` unless
        ``merged``).
    first_rows : dict or None
        The first window's row columns, or None: they are in ``rows``.
    blocks, order : dict, list
        The windows' rows and their order (module docstring).
    averaged : dict
        Per window, its (data, weights, flags) as the workers averaged them.
    plans : dict
        Per window, the ``contimg.image.bda.TimeAveraging`` the workers applied.
    freqs : list of ndarray
        The windows' channel frequencies (Hz) after channel averaging, in ``order``.
    merged : bool
        One part holding every window's channels on the windows' mean TIME and UVW (the other row
        columns the first window's), else one part per window on its own rows.

    Returns
    -------
    list of CopyPart
    """
    if not merged:
        return [
            CopyPart(plans[k].rows({c: v[..., blocks[k]] for c, v in rows.items()}), *averaged[k], f)
            for k, f in zip(order, freqs, strict=True)
        ]
    first = blocks[order[0]]
    merged_rows = dict(first_rows) if first_rows is not None else {c: v[..., first] for c, v in rows.items()}
    merged_rows["TIME"] = merged_rows["TIME_CENTROID"] = np.mean([rows["TIME"][blocks[k]] for k in order], axis=0)
    merged_rows["UVW"] = np.mean([rows["UVW"][:, blocks[k]] for k in order], axis=0)
    merged_rows["DATA_DESC_ID"] = np.zeros(first.size, np.int32)
    data, wsum, flags = (np.concatenate([averaged[k][i] for k in order], axis=1) for i in range(3))
    return [CopyPart(plans[order[0]].rows(merged_rows), data, wsum, flags, np.concatenate(freqs))]


def binned_channels(freqs: list, widths: list, chan_bin: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window, the (frequencies, widths) in Hz of its channels after averaging ``chan_bin`` of them.

    Raises
    ------
    ValueError
        If ``chan_bin`` is not a positive divisor of every window's number of channels.
    """
    if chan_bin < 1 or any(len(f) % chan_bin for f in freqs):
        raise ValueError(
            f"chan_bin must be a positive divisor of every window's channel count "
            f"{sorted({len(f) for f in freqs})}, got {chan_bin}"
        )
    return [
        (f.reshape(-1, chan_bin).mean(axis=1), wd.reshape(-1, chan_bin).sum(axis=1))
        for f, wd in zip(freqs, widths, strict=True)
    ]


def image_grid(parts: list[CopyPart], cfg) -> tuple[float | None, int | None]:
    """(cell arcsec, size px) for the copy: its longest baseline with unflagged data, its band's edges.

    ``cfg`` is an ImagingConfig (``pixels_per_beam`` and the size rules). (None, None) when no
    cross-correlation has unflagged data: nothing to image, which the caller says.
    """
    longest, f_min, f_max = 0.0, np.inf, 0.0
    for part_rows, _, _, flags, part_freqs in parts:
        good = (part_rows["ANTENNA1"] != part_rows["ANTENNA2"]) & ~flags.all(axis=(1, 2))
        if good.any():
            longest = max(longest, float(np.linalg.norm(part_rows["UVW"][:, good], axis=0).max()))
            f_min, f_max = min(f_min, float(part_freqs.min())), max(f_max, float(part_freqs.max()))
    if longest <= 0:
        return None, None
    return rules.image_grid(longest, f_min, f_max, cfg)


def put_briggs_weights(
    parts: list[CopyPart], size_px: int, cell_arcsec: float, robust: float, threads: int = 1
) -> tuple[float, float, tuple | None]:
    """Multiply each part's weights in place by its Briggs factor on the image's uv grid.

    Both polarizations get the Stokes I factor (made from their summed weights); autocorrelations
    count for nothing in the uv cells. ``threads``: contimg.image.weighting.briggs_weighting_rows'.

    Returns
    -------
    noise_over_natural : float
        The image noise with these weights over that with natural weights (contimg.image.weighting.noise_factor).
    effective_uv_cells : float
        contimg.image.weighting.briggs_weighting's effective number of uv cells.
    gridded : tuple or None
        (u, v, weight) of the filled uv cells with their Briggs-weighted sums, for :func:`restoring_beam`
        (None when nothing has weight).
    """
    natural = []
    for part_rows, _, wsum, _, _ in parts:
        cross = part_rows["ANTENNA1"] != part_rows["ANTENNA2"]
        # autocorrelations are not imaged; a sum over the short polarization axis is slow in numpy (0.1 s here)
        natural.append(sum(wsum[..., p] for p in range(wsum.shape[2])) * cross[:, None])
    samples = [
        (part_rows["UVW"][0], part_rows["UVW"][1], part_freqs / C_M_S, w)
        for (part_rows, *_, part_freqs), w in zip(parts, natural, strict=True)
    ]
    factors, uv_cells, gridded = briggs_weighting_rows(
        samples, _uv_cell_wl(size_px, cell_arcsec), size_px, robust, threads
    )
    for (_, _, wsum, _, _), factor in zip(parts, factors, strict=True):
        wsum *= factor[:, :, None].astype(wsum.dtype)
    return noise_factor(natural, factors), uv_cells, gridded


def restoring_beam(
    parts: list[CopyPart], size_px: int, cell_arcsec: float, gridded: tuple | None = None
) -> tuple[float, float, float] | None:
    """(major FWHM arcsec, minor FWHM arcsec, position angle deg) of the copy's PSF main lobe, or None.

    The ellipse through the half-power contour of the PSF the parts' weights (as written: with any
    Briggs factors) make on the image's uv grid (contimg.image.psf_width.main_lobe_beam). None when
    the main lobe is not an ellipse there (the imager then fits its own beam). Autocorrelations
    count for nothing. ``gridded``: put_briggs_weights' filled cells, the same weights already on that
    grid (a flagged sample carries no weight in the copy), which spares a pass over every sample
    (~0.3 s of one core at full size).
    """
    from contimg.image.psf_width import main_lobe_beam

    cell_wl = _uv_cell_wl(size_px, cell_arcsec)
    if gridded is not None:
        try:
            bmaj, bmin, pa = main_lobe_beam(*gridded, cell_wl)
        except ValueError:
            return None
        return float(np.degrees(bmaj) * 3600.0), float(np.degrees(bmin) * 3600.0), pa
    w = []
    for part_rows, _, wsum, flags, _ in parts:
        cross = part_rows["ANTENNA1"] != part_rows["ANTENNA2"]
        # Stokes I: the polarizations' weights where they are not flagged
        good = sum(wsum[..., p] * ~flags[..., p] for p in range(wsum.shape[2]))
        w.append((good * cross[:, None]).ravel())
    u, v = _uv_wavelengths(parts)
    try:
        bmaj, bmin, pa = main_lobe_beam(u, v, np.concatenate(w), cell_wl)
    except ValueError:
        return None
    return float(np.degrees(bmaj) * 3600.0), float(np.degrees(bmin) * 3600.0), pa


def _uv_wavelengths(parts: list[CopyPart]) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in wavelengths of every (row, channel) sample of the parts, in their order, row-major."""
    u = [np.outer(part_rows["UVW"][0], part_freqs / C_M_S).ravel() for part_rows, *_, part_freqs in parts]
    v = [np.outer(part_rows["UVW"][1], part_freqs / C_M_S).ravel() for part_rows, *_, part_freqs in parts]
    return np.concatenate(u), np.concatenate(v)


def _uv_cell_wl(size_px: int, cell_arcsec: float) -> float:
    """The uv cell, in wavelengths, of a ``size_px`` image of ``cell_arcsec`` pixels: 1 / the image's width."""
    return 1.0 / (size_px * np.radians(cell_arcsec / 3600.0))
