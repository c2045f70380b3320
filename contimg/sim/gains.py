"""Instrumental gains beyond the static bandpass: cable delays and slow gain drifts.

Both are seeded per (seed, station, polarization), so separate ``simulate`` calls with the same seed
see the same antennas, whatever their start time or antenna count.

Sign (docs/conventions.md): gains are CASA's (MS ``DATA(i, j) = g_i conj(g_j) V``) and a delay tau
(ns) is CASA's K parameter: ``g(nu) = exp(+2 pi i nu tau)``. In the UVH5 file a baseline (i, j)
therefore carries the phase ``-2 pi nu (tau_i - tau_j)``.

The drift is a Gaussian-process-like random function of absolute time: a sum of sinusoids with
random phases whose periods are drawn log-uniformly, a slow band (hours: between chunks, a smooth
random walk, amplitudes growing with period) and a fast band (tens of minutes: tens of degrees and a
few % within a 5-minute chunk). It is a pure function of the seed and the time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = [
    "DRIFT_EPOCH_MJD",
    "cable_delays_ns",
    "delay_gains",
    "drift_factors",
    "truth_gains",
]

DELAY_TAG = 0xDE1A7  # seed-sequence tags: independent streams, the main generator's draws unchanged
DRIFT_TAG = 0xD81F7
N_STATIONS = 117
DRIFT_EPOCH_MJD = 60000.0  # drift time origin (s counted from it keep float64 phases exact)
N_TERMS = 6  # sinusoids per band
# (period range s, phase rms deg, log-amplitude rms) per band
DRIFT_BANDS = (
    ((3600.0, 12 * 3600.0), 60.0, 0.05),  # slow: hours, a target chunk hours later has other gains
    ((600.0, 3600.0), 20.0, 0.02),  # fast: within a chunk, tens of degrees, a few %
)


def cable_delays_ns(seed: int, station_numbers, max_delay_ns: float) -> np.ndarray:
    """Per-antenna, per-polarization delays (A, 2) in ns, uniform in +-``max_delay_ns``.

    Drawn for all 117 stations from ``(seed, DELAY_TAG)`` and picked by station number.
    """
    rng = np.random.default_rng([seed, DELAY_TAG])
    all_delays = rng.uniform(-max_delay_ns, max_delay_ns, (N_STATIONS, 2))
    return all_delays[np.asarray(station_numbers) - 1]


def delay_gains(delays_ns: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Complex gains (A, 2, F) of the delays, ``exp(+2 pi i nu tau)`` (CASA's K sign)."""
    return np.exp(2j * np.pi * np.asarray(delays_ns)[:, :, None] * 1e-9 * np.asarray(freqs_hz)[None, None, :])


def _drift_terms(seed: int, station: int, pol: int):
    """Periods (s), phases and amplitudes of the drift's sinusoids for one station and pol."""
    rng = np.random.default_rng([seed, DRIFT_TAG, int(station), int(pol)])
    periods, ph_amp, la_amp, ph0, la0 = [], [], [], [], []
    for (p_lo, p_hi), phase_rms_deg, logamp_rms in DRIFT_BANDS:
        p = np.exp(rng.uniform(np.log(p_lo), np.log(p_hi), N_TERMS))
        w = p / np.sqrt(np.sum(p**2) / 2.0)  # amplitudes ~ period (a random walk's 1/f^2 power); rms 1
        periods.append(p)
        ph_amp.append(np.radians(phase_rms_deg) * w)
        la_amp.append(logamp_rms * w)
        ph0.append(rng.uniform(0, 2 * np.pi, N_TERMS))
        la0.append(rng.uniform(0, 2 * np.pi, N_TERMS))
    return tuple(np.concatenate(x) for x in (periods, ph_amp, la_amp, ph0, la0))


def drift_factors(seed: int, station_numbers, times_mjd) -> np.ndarray:
    """Drift factors (T, A, 2) complex: ``exp(log-amplitude + i phase)`` at each time (MJD, UTC)."""
    t = (np.asarray(times_mjd, dtype=float) - DRIFT_EPOCH_MJD) * 86400.0
    stations = np.asarray(station_numbers)
    out = np.empty((len(t), len(stations), 2), dtype=np.complex128)
    for a, st in enumerate(stations):
        for p in range(2):
            periods, ph_amp, la_amp, ph0, la0 = _drift_terms(seed, st, p)
            arg = 2 * np.pi * t[:, None] / periods[None, :]
            phase = np.cos(arg + ph0) @ ph_amp
            logamp = np.cos(arg + la0) @ la_amp
            out[:, a, p] = np.exp(logamp + 1j * phase)
    return out


def truth_gains(truth, antenna: int, pol: int, time_mjd) -> np.ndarray:
    """The injected gain of ``antenna`` (antenna number, station - 1) and ``pol`` (0 X, 1 Y) at ``time_mjd``.

    Parameters
    ----------
    truth : path
        ``truth.json`` or the folder holding it (and ``truth_gains.npz``).
    antenna : int
        Antenna number as in the UVH5 files and the MS (station number - 1).
    pol : int
        0 for X, 1 for Y.
    time_mjd : float or array
        UTC times (MJD).

    Returns
    -------
    numpy.ndarray
        Complex gains (T, F) over the ascending frequencies of ``truth_gains.npz`` (``freq_hz``), in
        CASA's convention (MS ``DATA(i, j) = g_i conj(g_j) V``): the static gains (bandpass and delay)
        times the drift at each time (1 when the simulation had no drift).
    """
    path = Path(truth)
    folder = path if path.is_dir() else path.parent
    meta = json.loads((folder / "truth.json").read_text())
    npz = np.load(folder / meta["gains_file"])
    k = list(npz["antenna_numbers"]).index(antenna + 1)
    static = npz["gains"][k, pol]  # (F,)
    times = np.atleast_1d(np.asarray(time_mjd, dtype=float))
    if meta.get("drift"):
        d = drift_factors(meta["seed"], [antenna + 1], times)[:, 0, pol]
    else:
        d = np.ones(len(times))
    return d[:, None] * static[None, :]
