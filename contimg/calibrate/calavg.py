"""Calibrator-centred time averaging of one spectral window (pure numpy; no CASA).

A bandpass or gain solve with ``solint=inf`` on a point calibrator needs, per baseline and
channel, the time average of the visibilities phased to the calibrator. Doing it here, in one
pass over DATA, replaces CASA's ``phaseshift`` + ``mstransform`` (two full rewrites of the MS,
3-4 min at full size) and lets the RFI pass (``contimg.calibrate.rfi``) see the full time-frequency plane.

Conventions are the Measurement Set's (docs/conventions.md): a point source at direction s seen
with the phase centre at s0 has ``V = S exp(+2 pi i (w_s - w_s0) / lambda)``, where ``w_d`` is the
w coordinate (antenna1 - antenna2) for phase centre d. Rotating by ``exp(-2 pi i dw / lambda)``,
``dw = w_cal - w_0``, puts the calibrator at the centre, where its visibility no longer turns.
"""

from __future__ import annotations

import numpy as np

from contimg.core.constants import C_M_S

__all__ = [
    "MIN_SOLUTION_SNR",
    "rotation",
    "rotate_to",
    "grid_index",
    "cell_rows",
    "on_grid",
    "average_in_time",
    "average_bins",
    "solution_snr_per_integration",
    "exact_median",
    "time_bins",
    "sigma_from_weight",
]


def rotation(dw_m: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """``exp(-2 pi i dw f / c)`` as complex64 (nrow, nchan).

    For evenly spaced channels (every DSA-110 subband) the phase steps by the same amount from
    channel to channel, so one exp per row and a running product replace nrow x nchan exps
    (4x faster; the running product in float64 drifts by < 1e-13 rad over 48 channels).
    """
    freqs_hz = np.asarray(freqs_hz, dtype=np.float64)
    k = -2.0 * np.pi / C_M_S
    steps = np.diff(freqs_hz)
    if len(freqs_hz) > 2 and np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        rot = np.empty((len(dw_m), len(freqs_hz)), np.complex128)
        rot[:, 0] = np.exp(1j * k * dw_m * freqs_hz[0])
        rot[:, 1:] = np.exp(1j * k * dw_m * steps[0])[:, None]
        np.cumprod(rot, axis=1, out=rot)
        return rot.astype(np.complex64)
    return np.exp(1j * k * dw_m[:, None] * freqs_hz[None, :]).astype(np.complex64)


def rotate_to(data: np.ndarray, dw_m: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """``data`` (nrow, nchan, npol) rotated by ``exp(-2 pi i dw f / c)`` (in place; returned)."""
    data *= rotation(dw_m, freqs_hz)[:, :, None]
    return data


def grid_index(time_s: np.ndarray, ant1: np.ndarray, ant2: np.ndarray):
    """Map MS rows onto a (time, baseline) grid.

    Returns
    -------
    tuple
        (unique times, time index per row, baselines (nbl, 2), baseline index per row, first row of
        each baseline).
    """
    times, t_idx = np.unique(time_s, return_inverse=True)
    baselines, first, b_idx = np.unique(np.stack([ant1, ant2], axis=1), axis=0, return_index=True, return_inverse=True)
    return times, t_idx.ravel(), baselines, b_idx.ravel(), first


def cell_rows(t_idx: np.ndarray, b_idx: np.ndarray, n_t: int, n_bl: int) -> np.ndarray:
    """The row of each (time, baseline) cell, (n_t, n_bl) int, -1 where no row holds it.

    Raises
    ------
    ValueError
        If two rows hold the same time and baseline (a data description must hold each once).
    """
    cells = np.full((n_t, n_bl), -1, np.int64)
    cells[t_idx, b_idx] = np.arange(len(t_idx))
    if np.count_nonzero(cells >= 0) != len(t_idx):
        raise ValueError(f"{len(t_idx)} rows hold only {np.count_nonzero(cells >= 0)} distinct (time, baseline) cells")
    return cells


def on_grid(values: np.ndarray, cells: np.ndarray, fill) -> np.ndarray:
    """Per-row ``values`` (nrow, ...) laid on the (time, baseline) grid of ``cells`` (``cell_rows``).

    In the usual layout (rows time-major, every baseline at every time in ``grid_index``'s order) the
    grid is ``values`` reshaped: a view, no copy. Otherwise a new array, ``fill`` where no row is.
    """
    if cells.size == len(values) and np.array_equal(cells.ravel(), np.arange(cells.size)):
        return values.reshape(cells.shape + values.shape[1:])
    out = np.full(cells.shape + values.shape[1:], fill, values.dtype)
    have = cells >= 0
    out[have] = values[cells[have]]
    return out


def average_in_time(
    data: np.ndarray, weight: np.ndarray, flags: np.ndarray, b_idx: np.ndarray, n_baselines: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted time average per baseline: (vis, summed weight), both (n_baselines, nchan, npol).

    Flagged or non-finite samples carry no weight. Rows are grouped by baseline with one stable
    sort and summed segment by segment (``np.add.reduceat``), all channels at once.
    """
    nrow, nchan, npol = data.shape
    w = np.where(flags | ~np.isfinite(data), np.float32(0), weight).astype(np.float32, copy=False)
    n_t = nrow // max(n_baselines, 1)
    if n_t * n_baselines == nrow and np.array_equal(b_idx, np.tile(np.arange(n_baselines), n_t)):
        # the usual layout (time-major, every baseline at every time): a plain sum over the time axis
        wd = np.where(w > 0, data, 0) * w
        wsum = w.reshape(n_t, n_baselines, nchan, npol).sum(axis=0, dtype=np.float64)
        acc = wd.reshape(n_t, n_baselines, nchan, npol).sum(axis=0, dtype=np.complex128)
        with np.errstate(invalid="ignore", divide="ignore"):
            vis = np.where(wsum > 0, acc / wsum, 0)
        return vis.astype(np.complex64), wsum.astype(np.float32)
    order = np.argsort(b_idx, kind="stable")
    sorted_b = b_idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1]])
    present = sorted_b[starts]
    d = data[order]
    w = w[order]
    d[w == 0] = 0
    wsum = np.zeros((n_baselines, nchan, npol), np.float64)
    acc = np.zeros((n_baselines, nchan, npol), np.complex128)
    wsum[present] = np.add.reduceat(w, starts, axis=0, dtype=np.float64)
    acc[present] = np.add.reduceat(d * w, starts, axis=0, dtype=np.complex128)
    with np.errstate(invalid="ignore", divide="ignore"):
        vis = np.where(wsum > 0, acc / wsum, 0)
    return vis.astype(np.complex64), wsum.astype(np.float32)


def average_bins(
    data: np.ndarray, weight: np.ndarray, flags: np.ndarray, bin_of_time: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted time average of a (time, baseline, chan, pol) grid in time bins: (vis, summed weight).

    Both (n_bins, baseline, chan, pol), complex64 and float32; the sums run in float64 (complex128),
    integration by integration. Flagged or non-finite samples carry no weight. ``bin_of_time``: the
    bin of each time, non-decreasing (bins are runs of consecutive integrations, ``time_bins``).
    """
    if np.any(np.diff(bin_of_time) < 0) or len(bin_of_time) != data.shape[0]:
        raise ValueError("bin_of_time must give each time of the grid a bin, in non-decreasing order")
    w = np.where(flags | ~np.isfinite(data), np.float32(0), weight).astype(np.float32, copy=False)
    wd = np.where(w > 0, data, 0) * w
    starts = np.searchsorted(bin_of_time, np.arange(n_bins + 1))
    shape = (n_bins,) + data.shape[1:]
    wsum, acc = np.zeros(shape, np.float64), np.zeros(shape, np.complex128)
    for b in range(n_bins):
        if starts[b] < starts[b + 1]:  # summed along the time axis, one integration after the other
            wsum[b] = w[starts[b] : starts[b + 1]].sum(axis=0, dtype=np.float64)
            acc[b] = wd[starts[b] : starts[b + 1]].sum(axis=0, dtype=np.complex128)
    with np.errstate(invalid="ignore", divide="ignore"):
        vis = np.where(wsum > 0, acc / wsum, 0)
    return vis.astype(np.complex64), wsum.astype(np.float32)


# A gain solution's amplitude error is about 1 / its SNR and its phase error 57 deg / SNR: 100 keeps
# them near 1 % and 0.6 deg, half the 2 % / 2 deg the set must reach at mid-chunk. Bins are lengthened
# beyond solint_s until a solution gets there.
MIN_SOLUTION_SNR = 100.0


def solution_snr_per_integration(data: np.ndarray, flags: np.ndarray, n_ant: int) -> float:
    """Expected SNR of one antenna's gain from one integration of one SPW and polarization.

    ``data`` and ``flags``: the SPW's (time, baseline, chan, pol) grid phased to the calibrator
    (cells without a row flagged). Signal: the median amplitude of the chunk-averaged visibilities
    (the calibrator dominates them). Noise per real part: from differences of consecutive
    integrations of a baseline (1.4826 MAD / sqrt 2), which a gain drifting over minutes barely
    changes. An antenna's solution combines its n_ant - 1 baselines and the SPW's channels.
    """
    valid = ~flags & ~np.isnan(data)
    n = np.count_nonzero(valid, axis=0)
    mean = data.sum(axis=0, where=valid)  # np.nanmean's sum, without its zero-filled copy (10x faster)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN where a cell never has data
        np.true_divide(mean, n, out=mean, casting="unsafe")  # in the data's precision, as np.nanmean
    both = valid[1:] & valid[:-1]
    diff = (data[1:].real - data[:-1].real)[both]
    if diff.size < 10 or not np.any(n):
        return 0.0
    sigma = 1.4826 * float(exact_median(np.abs(diff - exact_median(diff)))) / np.sqrt(2)
    signal = float(np.median(np.abs(mean[n > 0])))
    if sigma <= 0:
        return np.inf
    return signal / (sigma * np.sqrt(2)) * np.sqrt(max(n_ant - 1, 1) * data.shape[2])


def exact_median(x: np.ndarray) -> np.floating:
    """np.median of a 1-D array, the same value, ~3x faster on millions of values.

    The middle order statistics are bracketed by those of a strided sample (2e4 values, +-4 sigma of
    their sampling scatter); only the values inside the bracket (~1 %) are partitioned. When the
    bracket misses (a sample unlike the whole), np.median itself.
    """
    n = x.size
    if n < 200_000:
        return np.median(x)
    s = np.sort(x[:: n // 20_000])
    m, lo_rank, hi_rank = len(s), (n - 1) // 2, n // 2
    spread = int(4 * np.sqrt(m)) + 1
    lo, hi = s[max(m // 2 - spread, 0)], s[min(m // 2 + spread, m - 1)]
    below = int(np.count_nonzero(x < lo))
    inside = x[(x >= lo) & (x <= hi)]
    if not (below <= lo_rank and hi_rank < below + inside.size) or np.isnan(hi):
        return np.median(x)
    k = [lo_rank - below, hi_rank - below]
    inside.partition(k)
    return (inside[k[0]] + inside[k[1]]) / 2  # np.median's mean of the two, in the array's type


def time_bins(
    n_times: int, interval_s: float, solint_s: float | None, snr_per_integration: float = np.inf
) -> np.ndarray:
    """The time bin of each of ``n_times`` consecutive integrations.

    As many equal bins as fit ``solint_s`` (at least one; None: one bin, the whole chunk), each long
    enough for a solution SNR of ``MIN_SOLUTION_SNR`` at ``snr_per_integration``; the integrations
    split as evenly as they go.
    """
    if solint_s is None or n_times <= 1:
        return np.zeros(n_times, int)
    n_for_snr = (MIN_SOLUTION_SNR / snr_per_integration) ** 2 if snr_per_integration > 0 else np.inf
    n_bins = int(np.clip(min(round(n_times * interval_s / solint_s), n_times / max(n_for_snr, 1e-9)), 1, n_times))
    return np.concatenate([np.full(len(c), i) for i, c in enumerate(np.array_split(np.arange(n_times), n_bins))])


def sigma_from_weight(weight: np.ndarray) -> np.ndarray:
    """MS SIGMA for a WEIGHT: 1/sqrt(weight), 0 where the weight is 0 (fully flagged)."""
    return np.where(weight > 0, 1.0 / np.sqrt(np.maximum(weight, 1e-30)), 0.0)
