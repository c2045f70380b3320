"""The spectral layout of a chunk: which channel labels a subband file may carry, and the MS's SPWs.

Files are accepted on their band, not on an exact grid: the correlator labels a channel with the
mean of its raw channels' labels (``contimg.core.instrument.subband_freqs_hz``), but older
simulated files and other writers label channel centres, 15 kHz apart. Whatever a file says is
what the MS carries (SPECTRAL_WINDOW CHAN_FREQ = the file's ``freq_array``, ascending).
"""

from __future__ import annotations

import numpy as np

from contimg.core.instrument import N_SUBBANDS, SUBBAND_WIDTH_HZ, subband_freqs_hz

__all__ = [
    "CHANNEL_SPACING_RTOL",
    "SUBBAND_CENTRE_TOL_CHANNELS",
    "SUBBAND_WIDTH_RTOL",
    "BandError",
    "check_subband_labels",
    "ms_spectral_layout",
]

# A file's labels belong to subband sb when their mean is within half a channel of the subband's
# centre: the two labelling conventions in use differ by half a raw channel (15 kHz), a sixteenth
# of a production channel, while the neighbouring subband is 11.7 MHz (48 channels) away.
SUBBAND_CENTRE_TOL_CHANNELS = 0.5
# The channels together span one subband (11.71875 MHz) to 1 %: the width a writer records is
# exact, so 1 % only absorbs float32 headers; a file holding 47 or 49 channels' worth is refused.
SUBBAND_WIDTH_RTOL = 0.01
# Adjacent labels are one channel width apart to 1 % (a regular grid, any direction).
CHANNEL_SPACING_RTOL = 0.01


class BandError(ValueError):
    """A file's spectral header does not describe one subband; ``field`` names the header item."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_subband_labels(freqs_hz: np.ndarray, widths_hz: np.ndarray, subband: int) -> None:
    """Check that channel labels and widths describe subband ``subband`` (any channel order).

    Parameters
    ----------
    freqs_hz : numpy.ndarray
        Shape (Nfreqs,), the file's channel labels, Hz.
    widths_hz : numpy.ndarray
        Shape (Nfreqs,), the channel widths, Hz (a sign is ignored: some writers store the
        direction of the channel axis in it).
    subband : int
        The subband the file's name says, 0..15.

    Raises
    ------
    BandError
        ``field`` "freq_array": labels not finite, not strictly monotonic, not evenly spaced by the
        channel width, or centred off the subband; ``field`` "channel_width": widths not positive
        or not adding up to one subband.
    """
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    widths_hz = np.abs(np.asarray(widths_hz, dtype=float))
    n = len(freqs_hz)
    if n == 0 or not np.all(np.isfinite(freqs_hz)):
        raise BandError("freq_array", f"{n} labels, all must be finite and there must be at least one")
    if widths_hz.shape != freqs_hz.shape or not np.all(np.isfinite(widths_hz)) or np.any(widths_hz <= 0):
        raise BandError("channel_width", f"widths {widths_hz[:4]}... must be positive, one per channel ({n})")
    span_hz = float(widths_hz.sum())
    if abs(span_hz - SUBBAND_WIDTH_HZ) > SUBBAND_WIDTH_RTOL * SUBBAND_WIDTH_HZ:
        raise BandError(
            "channel_width",
            f"{n} channels x {np.median(widths_hz):.3f} Hz = {span_hz:.1f} Hz, not one "
            f"subband ({SUBBAND_WIDTH_HZ:.1f} Hz to {SUBBAND_WIDTH_RTOL:.0%})",
        )
    if n > 1:
        step = np.diff(freqs_hz)
        if not (np.all(step > 0) or np.all(step < 0)):
            raise BandError("freq_array", "labels are not strictly monotonic")
        spacing_err = np.abs(np.abs(step) - widths_hz[1:])
        if np.any(spacing_err > CHANNEL_SPACING_RTOL * widths_hz[1:]):
            raise BandError(
                "freq_array",
                f"labels step by {np.abs(step).min():.3f}-{np.abs(step).max():.3f} Hz, not "
                f"by the channel width ({np.median(widths_hz):.3f} Hz)",
            )
    centre_hz = float(subband_freqs_hz(subband, 1)[0])  # the mean of all the subband's raw labels
    offset_hz = float(freqs_hz.mean()) - centre_hz
    if abs(offset_hz) > SUBBAND_CENTRE_TOL_CHANNELS * float(np.median(widths_hz)):
        raise BandError(
            "freq_array",
            f"labels {freqs_hz.min() / 1e6:.6f}-{freqs_hz.max() / 1e6:.6f} MHz are centred "
            f"{offset_hz / 1e3:+.3f} kHz from subband {subband} ({centre_hz / 1e6:.6f} MHz; "
            f"allowed: half a channel)",
        )


def ms_spectral_layout(labels: dict, n_chan: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MS's 16 SPWs: channel frequencies, widths and SPW of each channel, all ascending.

    SPW ``k`` holds subband ``15 - k``. A present subband carries its file's own labels and
    widths, reordered ascending; a missing one (its SPW is written fully flagged) the correlator's
    labels for ``n_chan`` channels.

    Parameters
    ----------
    labels : dict
        subband -> (freqs_hz, widths_hz), each shape (n_chan,), in file order.
    n_chan : int
        Channels per subband.

    Returns
    -------
    tuple of numpy.ndarray
        ``freqs_hz``, ``widths_hz`` and ``spw`` (int), each of shape (16 * n_chan,).

    Raises
    ------
    ValueError
        If a subband's labels do not have ``n_chan`` channels, or the SPWs so made overlap.
    """
    freqs, widths = [], []
    for k in range(N_SUBBANDS):
        sb = N_SUBBANDS - 1 - k
        if sb in labels:
            f, w = (np.asarray(a, dtype=float) for a in labels[sb])
            w = np.abs(np.broadcast_to(w, f.shape))
        else:
            f = subband_freqs_hz(sb, n_chan)
            w = np.full(n_chan, SUBBAND_WIDTH_HZ / n_chan)
        if len(f) != n_chan:
            raise ValueError(f"subband {sb}: {len(f)} channels, expected {n_chan}")
        order = np.argsort(f)
        freqs.append(f[order])
        widths.append(w[order])
    freqs_hz = np.concatenate(freqs)
    if np.any(np.diff(freqs_hz) <= 0):
        k = int(np.argmax(np.diff(freqs_hz) <= 0)) // n_chan
        raise ValueError(f"subbands {N_SUBBANDS - 1 - k} and {N_SUBBANDS - 2 - k} overlap in frequency")
    return freqs_hz, np.concatenate(widths), np.repeat(np.arange(N_SUBBANDS), n_chan)
