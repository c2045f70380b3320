"""Calibration applied and channels averaged, one spectral window at a time (pure numpy; no CASA).

The imaging copy (contimg.image.job) divides the data by the tables' gain products and
averages ``chan_bin`` adjacent channels with weights, as CASA's ``applycal`` (``calwt=True``) then
``mstransform`` would: a sample V with weight w becomes V / gg with weight w |gg|^2, gg = g_i conj(g_j).
Arrays are (row, chan, pol), as python-casacore reads them.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "delay_gains",
    "nearest_solutions",
    "fold_solutions",
    "baseline_period",
    "baseline_gains",
    "channel_sum",
    "calibrate_and_bin",
]


def fold_solutions(
    gains: list[np.ndarray],
    flags: list[np.ndarray],
    cparam: np.ndarray,
    flag: np.ndarray,
    antenna: np.ndarray,
    spw: np.ndarray,
) -> None:
    """Multiply one table's solutions into the running per-SPW gain products, in place.

    Parameters
    ----------
    gains, flags : list of ndarray
        Per SPW, the product of the tables folded so far (n_ant, nchan, 2) complex and its flags
        (n_ant, nchan, 2) bool; start from ones and False.
    cparam, flag : ndarray
        The table's CPARAM and FLAG as casatools reads them, (npol, nchan or 1, row): a B table
        solves every channel, a G table one value for the SPW. One solved polarization applies to both.
    antenna, spw : ndarray
        The table's ANTENNA1 and SPECTRAL_WINDOW_ID per row: one solution per antenna and SPW.

    An antenna the table does not solve in an SPW stays uncalibrated there, so it is flagged.

    Raises
    ------
    ValueError
        If ``antenna`` or ``spw`` does not give one value per row of ``cparam`` or names an antenna or
        SPW outside ``gains``.
    """
    n_rows = cparam.shape[-1]
    if len(antenna) != n_rows or len(spw) != n_rows or flag.shape != cparam.shape:
        raise ValueError(
            f"a table of {n_rows} solution rows needs as many antennas and SPWs and a FLAG of "
            f"CPARAM's shape {cparam.shape}: got {len(antenna)}, {len(spw)} and {flag.shape}"
        )
    n_ant = gains[0].shape[0] if gains else 0
    if n_rows and (antenna.min() < 0 or antenna.max() >= n_ant or spw.min() < 0 or spw.max() >= len(gains)):
        raise ValueError(
            f"solutions for antennas {antenna.min()}..{antenna.max()} and SPWs {spw.min()}..{spw.max()}: "
            f"the MS has {n_ant} antennas and {len(gains)} SPWs"
        )
    solved = [np.zeros(n_ant, bool) for _ in gains]
    for row in range(n_rows):
        a, k = int(antenna[row]), int(spw[row])
        g = cparam[:, :, row].T  # (nchan or 1, npol)
        f = flag[:, :, row].T
        if g.shape[-1] == 1:  # one polarization solved: applies to both
            g, f = np.repeat(g, 2, axis=-1), np.repeat(f, 2, axis=-1)
        gains[k][a] *= g
        flags[k][a] |= f
        solved[k][a] = True
    for k in range(len(gains)):
        flags[k][~solved[k]] = True


def delay_gains(delays_ns: np.ndarray, freqs_hz: np.ndarray, ref_freq_hz: float) -> np.ndarray:
    """A K table's delays as complex gains: exp(+2 pi i tau (nu - nu_ref)), CASA's K Jones.

    ``delays_ns`` (npol, nrow) from FPARAM; returns (npol, nchan, nrow) complex64, the layout
    ``fold_solutions`` takes. The sign is CASA's: data that carry exp(+2 pi i tau_i nu) on antenna i
    (DATA(i, j) = g_i conj(g_j) V) solve to +tau_i (tests/test_calibrate_real.py), and applycal
    divides it out (tests/test_calibrate_real.py).
    """
    dnu = np.asarray(freqs_hz, np.float64) - ref_freq_hz
    phase = 2 * np.pi * 1e-9 * np.asarray(delays_ns, np.float64)[:, None, :] * dnu[None, :, None]
    return np.exp(1j * phase).astype(np.complex64)


def nearest_solutions(antenna: np.ndarray, spw: np.ndarray, times: np.ndarray, *, after: bool) -> np.ndarray:
    """Rows of a table's unflagged-or-not solutions to apply to a chunk outside their time span.

    Per (antenna, SPW), the last solution when the chunk is ``after`` them, else the first: what CASA's
    ``interp='linear'`` applies beyond a table's ends (it does not extrapolate). Returns row indices.
    """
    order = np.lexsort((times if after else -times, spw, antenna))  # within a pair, the wanted row last
    a, k = antenna[order], spw[order]
    last = np.r_[(a[1:] != a[:-1]) | (k[1:] != k[:-1]), True]
    return np.sort(order[last])


def baseline_period(a1: np.ndarray, a2: np.ndarray) -> int:
    """The baseline period n of the rows, or 0 if they have none.

    n is returned when the rows are the same n baselines in the same order at every time (the
    converter's layout), else 0.
    """
    repeats = np.flatnonzero((a1 == a1[0]) & (a2 == a2[0]))
    n = int(repeats[1]) if repeats.size > 1 else len(a1)
    if n == 0 or len(a1) % n:
        return 0
    k = len(a1) // n
    return n if np.array_equal(a1, np.tile(a1[:n], k)) and np.array_equal(a2, np.tile(a2[:n], k)) else 0


def baseline_gains(gain: np.ndarray, gain_flag: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, int]:
    """(gg, n): the gain products g_a1 conj(g_a2) (n, chan, pol) of the first n rows.

    n is the baseline period (the rows repeat the same baselines, so one product per baseline serves
    every time) or all rows. A failed or non-finite solution gives 0, which flags what it touches.
    """
    n = baseline_period(a1, a2) or len(a1)
    gg = gain[a1[:n]] * np.conj(gain[a2[:n]])
    gg[gain_flag[a1[:n]] | gain_flag[a2[:n]] | ~np.isfinite(gg)] = 0
    return gg, n


def channel_sum(a: np.ndarray, chan_bin: int) -> np.ndarray:
    """Sums of ``chan_bin`` adjacent channels of ``a`` (row, chan, pol), as one matrix product.

    numpy's sum over a short middle axis took 0.22 s a subband, the product 0.02 s.
    """
    nr, nchan, npol = a.shape
    nb = nchan // chan_bin
    k = np.arange(nchan * npol)  # (chan, pol) flattened, pol fastest
    summing = np.zeros((nchan * npol, nb * npol), a.dtype)
    summing[k, (k // npol // chan_bin) * npol + k % npol] = 1
    return (a.reshape(nr, nchan * npol) @ summing).reshape(nr, nb, npol)


def calibrate_and_bin(
    data: np.ndarray,
    flag: np.ndarray,
    chan_bin: int,
    row_weight: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    gg: np.ndarray | None = None,
    n_baselines: int | None = None,
):
    """``data`` calibrated by the gain products ``gg`` and averaged over ``chan_bin`` channels with weights.

    Returns (vis, weight, flag), each (row, chan / chan_bin, pol); ``gg`` comes from baseline_gains
    (None = no calibration).

    Weights are ``weight`` (row, chan, pol) or ``row_weight`` (row, pol). Flagged or non-finite
    samples carry no weight; a bin with none left is flagged and 0. ``data`` is overwritten.
    V / gg with weight w |gg|^2 averages to sum w V conj(gg) / sum w |gg|^2: no division per sample.
    """
    nr, nchan, npol = data.shape
    nbl = n_baselines or nr
    finite = np.isfinite(data)
    all_finite = bool(finite.all())
    if weight is None and all_finite:
        if not flag.any():
            return _bin_unflagged(data, row_weight, chan_bin, gg, nbl)
        flagged_per_row = flag.reshape(nr, -1).view(np.uint8).sum(axis=1, dtype=np.int32)
        whole = flagged_per_row == nchan * npol
        if np.all(whole | (flagged_per_row == 0)):  # only whole rows flagged (autocorrelations, dead antennas)
            return _bin_unflagged(data, row_weight * ~whole[:, None], chan_bin, gg, nbl)
    if weight is None:
        weight = np.broadcast_to(row_weight[:, None, :], data.shape)
    weight = weight * (~flag & finite)  # a new array: the caller's weights stay
    if not all_finite:
        data[~finite] = 0  # 0 x NaN is NaN: clear what the zero weight cannot
    data *= weight
    if gg is not None:
        data.reshape(nr // nbl, nbl, nchan, npol)[...] *= np.conj(gg)
        weight.reshape(nr // nbl, nbl, nchan, npol)[...] *= gg.real**2 + gg.imag**2
    wsum, acc = channel_sum(weight, chan_bin), channel_sum(data, chan_bin)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(wsum > 0, acc / wsum, 0).astype(np.complex64)
    return avg, wsum, wsum <= 0


def _bin_unflagged(data: np.ndarray, row_weight: np.ndarray, chan_bin: int, gg, nbl: int):
    """``calibrate_and_bin`` for the converter's output, without a full-resolution weight array.

    The input has nothing non-finite, no flags but on whole rows (their weight is 0), and one weight
    per row and polarization: the converter's output, whose autocorrelations are flagged. The
    weights factor out of the channel sums, so no full-resolution weight array is made (a full-size
    subband in 0.08 s instead of 0.2 s): the average is sum V conj(gg) / sum |gg|^2, its weight
    w sum |gg|^2.
    """
    nr, nchan, npol = data.shape
    if gg is None:
        gg2 = np.ones((1, nchan, npol), np.float32)
    else:
        data.reshape(nr // nbl, nbl, nchan, npol)[...] *= np.conj(gg)
        gg2 = (gg.real**2 + gg.imag**2).astype(np.float32)
    per_bl = channel_sum(gg2, chan_bin)  # (baseline or 1, bin, pol)
    shape = (nr // per_bl.shape[0], per_bl.shape[0], per_bl.shape[1], npol)
    wsum = (row_weight.astype(np.float32).reshape(shape[0], shape[1], 1, npol) * per_bl).reshape(nr, -1, npol)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = (channel_sum(data, chan_bin).reshape(shape) / per_bl).reshape(nr, -1, npol)
    avg[wsum <= 0] = 0
    return avg.astype(np.complex64, copy=False), wsum, wsum <= 0
