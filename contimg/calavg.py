"""Calibrator-centred time averaging of one spectral window (pure numpy; no CASA).

A bandpass or gain solve with ``solint=inf`` on a point calibrator needs, per baseline and
channel, the time average of the visibilities phased to the calibrator. Doing it here, in one
pass over DATA, replaces CASA's ``phaseshift`` + ``mstransform`` (two full rewrites of the MS,
3-4 min at full size) and lets the RFI pass (``contimg.rfi``) see the full time-frequency plane.

Conventions are the Measurement Set's (docs/conventions.md): a point source at direction s seen
with the phase centre at s0 has ``V = S exp(+2 pi i (w_s - w_s0) / lambda)``, where ``w_d`` is the
w coordinate (antenna1 - antenna2) for phase centre d. Rotating by ``exp(-2 pi i dw / lambda)``,
``dw = w_cal - w_0``, puts the calibrator at the centre, where its visibility no longer turns.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rotate_to", "grid_index", "average_in_time"]

C_M_S = 299_792_458.0


def rotate_to(data: np.ndarray, dw_m: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """``data`` (nrow, nchan, npol) rotated by ``exp(-2 pi i dw f / c)`` (in place; returned)."""
    phase = (-2.0 * np.pi / C_M_S) * dw_m[:, None] * np.asarray(freqs_hz)[None, :]
    data *= np.exp(1j * phase).astype(data.dtype)[:, :, None]
    return data


def grid_index(time_s: np.ndarray, ant1: np.ndarray, ant2: np.ndarray):
    """Rows -> grid: (unique times, time index per row, baselines (nbl, 2), baseline index per row,
    first row of each baseline)."""
    times, t_idx = np.unique(time_s, return_inverse=True)
    baselines, first, b_idx = np.unique(np.stack([ant1, ant2], axis=1), axis=0, return_index=True,
                                        return_inverse=True)
    return times, t_idx.ravel(), baselines, b_idx.ravel(), first


def average_in_time(data: np.ndarray, weight: np.ndarray, flags: np.ndarray, b_idx: np.ndarray,
                    n_baselines: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted time average per baseline: (vis, summed weight), both (n_baselines, nchan, npol).

    Flagged or non-finite samples carry no weight.
    """
    w = np.where(flags | ~np.isfinite(data), 0.0, weight).astype(np.float64)
    nrow, nchan, npol = data.shape
    flat_w = w.reshape(nrow, -1)
    flat_d = np.where(w > 0, data, 0).reshape(nrow, -1)
    wsum = np.zeros((n_baselines, nchan * npol))
    re = np.zeros_like(wsum)
    im = np.zeros_like(wsum)
    for k in range(nchan * npol):  # bincount per channel-pol: fast, and no (nrow x nbl) matrix
        wsum[:, k] = np.bincount(b_idx, flat_w[:, k], minlength=n_baselines)
        re[:, k] = np.bincount(b_idx, flat_w[:, k] * flat_d[:, k].real, minlength=n_baselines)
        im[:, k] = np.bincount(b_idx, flat_w[:, k] * flat_d[:, k].imag, minlength=n_baselines)
    with np.errstate(invalid="ignore", divide="ignore"):
        vis = np.where(wsum > 0, (re + 1j * im) / wsum, 0)
    return vis.reshape(n_baselines, nchan, npol).astype(np.complex64), wsum.reshape(n_baselines, nchan, npol).astype(np.float32)
