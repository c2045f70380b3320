"""Where the simulator put its RFI, as sample masks (pure numpy): the truth a flagger is measured against.

``simulate(rfi=True)`` records the interference in ``truth.json`` (``contimg.sim.rfi``): narrowband
channels by frequency, each chunk's burst integrations (each subband's own index), the dead input.
:func:`rfi_masks` turns that record into masks over one subband's rows, in any layout that gives each
row its antennas and integration index: the UVH5 file's or the converted MS's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rfi_masks"]


def rfi_masks(
    truth: dict,
    subband: int,
    freqs_hz: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    time_index: np.ndarray,
    chunk: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks (row, chan) of the injected RFI and of the dead input's samples in one subband's rows.

    Parameters
    ----------
    truth : dict
        The simulation's ``truth.json`` (made with ``rfi=True``).
    subband : int
        The subband (0..15; sb00 the highest band) the rows belong to.
    freqs_hz : np.ndarray
        The rows' channel frequencies, in their order.
    ant1, ant2 : np.ndarray
        Antenna numbers (station - 1) per row.
    time_index : np.ndarray
        The row's integration, 0-based, within this subband.
    chunk : int
        Index of the chunk in ``truth["chunks"]``.

    Returns
    -------
    (rfi, dead) : bool arrays (row, chan). ``rfi``: cross-correlation samples carrying a narrowband line
    or a burst (not the dead input's: it receives none); ``dead``: cross-correlations of the dead input
    in its subband (noise only, no sky).
    Autocorrelations are in neither.

    Raises
    ------
    ValueError
        If ``truth`` holds no RFI record or the chunk index is out of range.
    """
    if not truth.get("rfi"):
        raise ValueError("truth.json has no RFI record: the simulation was made without rfi=True")
    if not 0 <= chunk < len(truth["chunks"]):
        raise ValueError(f"chunk {chunk} out of range: the simulation has {len(truth['chunks'])} chunks")
    freqs = np.asarray(freqs_hz, float)
    ant1, ant2, time_index = np.asarray(ant1), np.asarray(ant2), np.asarray(time_index)
    cross = ant1 != ant2
    half = 0.5 * np.min(np.abs(np.diff(np.sort(freqs)))) if freqs.size > 1 else np.inf
    lines = np.zeros(freqs.size, bool)
    for line in truth["rfi"]["narrowband"]:
        if line["subband"] == subband:
            lines |= np.abs(freqs - line["freq_hz"]) < half
    burst = np.isin(time_index, truth["chunks"][chunk].get("rfi_bursts", []))
    rfi = cross[:, None] & (lines[None, :] | burst[:, None])
    dead_rec = truth["rfi"]["dead"]
    on_dead = (ant1 == dead_rec["antenna"]) | (ant2 == dead_rec["antenna"])
    dead = np.broadcast_to((cross & on_dead & (dead_rec["subband"] == subband))[:, None], rfi.shape).copy()
    return rfi & ~dead, dead  # the dead input receives no RFI either
