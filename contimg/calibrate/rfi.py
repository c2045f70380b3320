"""RFI pass on calibrator-centred visibilities (pure numpy): robust outliers in time and frequency.

On a calibrator phased to the centre, each baseline's amplitude is smooth in time (the beam
drifts slowly) and in frequency (the bandpass). Per baseline, channel and polarization we take
the median over time as the smooth model, estimate the noise by the MAD of the residuals over the
whole time-frequency plane of that baseline, and flag samples beyond ``threshold`` sigma; a line
present at all times is found in the median spectrum against its running median across channels;
then,
like CASA's tfcrop ``extendflags``, a channel (time) of a baseline with more than ``grow`` of its
samples flagged is flagged whole. Narrowband RFI and short broadband bursts are caught; Gaussian
noise loses about 6e-7 of its samples at 5 sigma.

The image job runs the same pass on each target chunk's rows (``flag_rows``) before calibrating
and averaging them: there the amplitude of a baseline also beats with the field's sources, which
only widens its MAD (fewer flags, never more), and the RFI, tens to hundreds of Jy against a field
of mJy sources, still stands out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["baselines_per_time", "flag_outliers", "flag_rows"]

MIN_CHANNELS_FOR_LINES = 8  # fewer channels cannot tell a line from the bandpass (simulated 4-channel SPWs)


def flag_outliers(amp: np.ndarray, flags: np.ndarray, threshold: float = 5.0, grow: float = 0.5) -> np.ndarray:
    """New flags (same shape) for amplitudes ``amp`` (ntime, nbl, nchan, npol) already flagged by ``flags``.

    Missing samples may be given as NaN. Returns ``flags | outliers``; the inputs are not modified.
    """
    # Every statistic is a baseline's own, so baselines are flagged in groups by their flags: wholly flagged
    # ones (a chunk's autocorrelations, 2 % of its rows) stay so, and the unflagged ones take the median's
    # fast path, with no NaN-filled copy (a full-size subband in ~0.45 s instead of 0.7 s)
    flagged = flags.any(axis=(0, 2, 3))
    whole = flags.all(axis=(0, 2, 3))
    groups = [g for g in (~flagged, flagged & ~whole) if g.any()]
    if len(groups) == 1 and not whole.any():
        return _flag_outliers(amp, flags, threshold, grow)
    out = np.ones(flags.shape, bool)
    for g in groups:
        out[:, g] = _flag_outliers(amp[:, g], flags[:, g], threshold, grow)
    return out


def _flag_outliers(amp: np.ndarray, flags: np.ndarray, threshold: float, grow: float) -> np.ndarray:
    """flag_outliers of baselines that are all unflagged, or none wholly flagged."""
    a = np.where(flags, np.nan, amp) if flags.any() else amp
    a = a.astype(np.float32, copy=False)
    with np.errstate(all="ignore"):
        smooth = _nanmedian(a, axes=(0,))  # per (bl, chan, pol), keepdims
        resid = np.subtract(a, smooth)
        np.abs(resid, out=resid)  # in place: one pass less over the samples
        # per (bl, pol): resid is centred by construction; the median over channels of the median over
        # time of |resid| is as robust as one median over both and 3x cheaper (no transpose)
        sigma = 1.4826 * _nanmedian(_nanmedian(resid, axes=(0,)), axes=(2,))
        out = resid > threshold * np.where(sigma > 0, sigma, np.inf)
        out |= flags
        del resid
        # a line present at every time hides in the time median: compare each baseline's median
        # spectrum with its running median across channels, flag channels that stand out
        nchan = a.shape[2]
        if nchan >= MIN_CHANNELS_FOR_LINES:
            width = min(7, nchan - (1 - nchan % 2))  # odd, at most the band
            spec = np.nan_to_num(smooth[0], nan=0.0)  # (bl, chan, pol)
            dev = spec - _running_median(spec, width)
            n_t = np.maximum(np.sum(~flags, axis=0), 1)  # the median's own noise shrinks with time
            noise = np.where(sigma[0] > 0, sigma[0], np.inf) * 1.2533 / np.sqrt(n_t)
            # on a bright calibrator the bandpass ripple between channels dwarfs that noise: a line must
            # also stand out from the baseline's own channel-to-channel scatter
            scatter = 1.4826 * np.median(np.abs(dev), axis=1, keepdims=True)
            line = np.abs(dev) > threshold * np.maximum(noise, scatter)
            # an edge channel is its own running median ("nearest" repeats it: a a a | a b c d), so a line
            # there hides; judge it by the straight line fitted to its 4 inner neighbours instead (a mirrored
            # window would flag the bandpass's slope): c0 - (c1 + c2 / 2 - c4 / 2), against the same
            # extrapolation's scatter over the whole band (a field's sources beat across channels) and noise
            cleaned = np.where(line, spec - dev, spec)  # lines found inside the band must not bend the fit
            for edge, step in ((0, 1), (nchan - 1, -1)):
                c = cleaned[:, ::step]  # the edge first
                resid = c[:, :-4] - (c[:, 1:-3] + 0.5 * c[:, 2:-2] - 0.5 * c[:, 4:])
                spread = 1.4826 * np.median(np.abs(resid), axis=1)
                lim = threshold * np.maximum(np.sqrt(2.5) * noise[:, edge], spread)
                line[:, edge] = np.abs(resid[:, 0]) > lim
            out |= line[None]
    out |= ~np.isfinite(amp)
    # fractions flagged as the mean of the bools gives them (a float64 count / n), without its float copy:
    # a channel of a baseline mostly flagged is flagged all the time; an integration, in all channels
    out |= np.count_nonzero(out, axis=0, keepdims=True) / out.shape[0] > grow
    out |= _count_along_channels(out) / out.shape[2] > grow
    return out


def _count_along_channels(flags: np.ndarray) -> np.ndarray:
    """The True samples of ``flags`` (time, bl, chan, pol) per (time, bl, pol), channels kept as an axis of 1.

    Summed channel by channel: numpy's count over this middle axis took 3x as long (58 ms against 19 ms
    for a full-size subband).
    """
    planes = np.moveaxis(flags, 2, 0).view(np.uint8)
    count = planes[0].astype(np.int32)
    for plane in planes[1:]:
        count += plane
    return count[:, :, None, :]


def baselines_per_time(a1: np.ndarray, a2: np.ndarray) -> int:
    """How many rows one integration holds in rows laid out time-major, the same baselines each time.

    Raises
    ------
    ValueError
        If the rows do not repeat one baseline order for every integration.
    """
    a1, a2 = np.asarray(a1), np.asarray(a2)
    n = a1.size
    again = np.flatnonzero((a1[1:] == a1[0]) & (a2[1:] == a2[0]))
    nbl = int(again[0]) + 1 if again.size else n
    if (
        n == 0
        or n % nbl
        or not (
            np.array_equal(a1.reshape(-1, nbl), np.broadcast_to(a1[:nbl], (n // nbl, nbl)))
            and np.array_equal(a2.reshape(-1, nbl), np.broadcast_to(a2[:nbl], (n // nbl, nbl)))
        )
    ):
        raise ValueError(f"{n} rows are not integrations of one repeated baseline order (first repeat at {nbl})")
    return nbl


def flag_rows(
    data: np.ndarray, flags: np.ndarray, n_baselines: int, threshold: float = 5.0, grow: float = 0.5
) -> np.ndarray:
    """``flag_outliers`` on rows (row, chan, pol) laid out time-major with ``n_baselines`` rows per integration.

    Returns the new flags, same shape as ``flags``; the inputs are not modified.
    """
    nr, nchan, npol = data.shape
    if flags.shape != data.shape or n_baselines <= 0 or nr % n_baselines:
        raise ValueError(f"data {data.shape} and flags {flags.shape}: not whole integrations of {n_baselines} rows")
    grid = (nr // n_baselines, n_baselines, nchan, npol)
    out = flag_outliers(np.abs(data).reshape(grid), flags.reshape(grid), threshold, grow)
    return out.reshape(data.shape)


def _nanmedian(a: np.ndarray, axes: tuple) -> np.ndarray:
    """Median over ``axes`` ignoring NaN, keepdims; by one sort (numpy's nanmedian is ~100x slower here).

    Sorting along the reduced axis (24 integrations, 48 channels) is 3x faster than np.median's
    partition there, and gives its values exactly (the mean of the two middle ones, in the input's type).
    """
    other = [k for k in range(a.ndim) if k not in axes]
    moved = np.transpose(a, list(axes) + other)
    flat = moved.reshape((-1,) + moved.shape[len(axes) :])
    shape = [1 if k in axes else a.shape[k] for k in range(a.ndim)]
    srt = np.sort(flat, axis=0)  # NaN sort last
    m = len(srt)
    if m and not np.isnan(srt[-1]).any():  # the usual case on a calibrator: no NaN anywhere
        return (0.5 * (srt[(m - 1) // 2] + srt[m // 2])).reshape(shape)
    n = np.sum(~np.isnan(flat), axis=0)
    lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(srt, np.maximum(n // 2, 0)[None], axis=0)[0]
    med = np.where(n > 0, 0.5 * (lo + hi), np.nan)
    return med.reshape(shape)


def _running_median(spec: np.ndarray, width: int) -> np.ndarray:
    """Median over ``width`` (odd) neighbouring channels (axis 1), the edge channels repeated beyond the band.

    scipy.ndimage's ``median_filter(size=(1, width, 1), mode="nearest")``, exactly (the middle of the
    sorted window), as fast, without scipy's import (0.3 s of each averaging worker's start).
    """
    half = width // 2
    padded = np.pad(spec, ((0, 0), (half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)  # (bl, chan, pol, width)
    return np.sort(windows, axis=-1)[..., half]
