"""Rules on calibration solutions (pure numpy; the calibrate job reads the tables with CASA).

The reference antenna to solve with, the quality figures of a solved table, and the thresholds
below which a set is registered as failed and never applied.
"""

from __future__ import annotations

import numpy as np

from contimg.calibrate.report import TableQuality

__all__ = [
    "MAX_FLAGGED_FRACTION",
    "MIN_MEDIAN_SNR",
    "CalibrationError",
    "choose_refant",
    "quality_problems",
    "solution_quality",
    "unsolved_spw_problems",
]

# Quality thresholds: a set failing any of them is registered as failed and never applied.
MAX_FLAGGED_FRACTION = 0.5  # of bandpass solutions on antennas with data
MIN_MEDIAN_SNR = 5.0


class CalibrationError(RuntimeError):
    """A calibrator chunk that cannot be solved (no data, no calibrator, no table produced)."""


def choose_refant(preferred: list[int], present: list[int]) -> int:
    """The first preferred antenna (0-based id) that has data, else the first antenna with data.

    Raises
    ------
    CalibrationError
        If no antenna has data (``present`` is empty).
    """
    for a in preferred:
        if a in present:
            return a
    if not present:
        raise CalibrationError("no antenna has unflagged cross-correlations")
    return present[0]


def solution_quality(
    gains: np.ndarray, flags: np.ndarray, snr: np.ndarray, antenna: np.ndarray, present: list[int]
) -> TableQuality:
    """Quality of one table's solutions on the antennas with data.

    Parameters
    ----------
    gains, flags, snr : np.ndarray
        A CASA table's CPARAM, FLAG and SNR columns, shape (npol, nchan, nrow).
    antenna : np.ndarray
        ANTENNA1 per row, shape (nrow,).
    present : list of int
        Antennas with unflagged cross-correlations. The table has rows for every antenna of the
        array, most of them without data: counting those would fail every set.

    Returns
    -------
    TableQuality
        Flagged fraction and median SNR over the kept rows; amplitude scatter (std / mean) and
        phase scatter (deg) of the unflagged gains, None when all are flagged.

    Raises
    ------
    ValueError
        If the arrays do not share the (npol, nchan, nrow) shape, or ``antenna`` is not (nrow,).
    """
    if not gains.shape == flags.shape == snr.shape or gains.ndim != 3:
        raise ValueError(
            f"gains, flags and snr must share one (npol, nchan, nrow) shape, got {gains.shape}, "
            f"{flags.shape}, {snr.shape}"
        )
    if antenna.shape != gains.shape[2:]:
        raise ValueError(f"antenna must be (nrow,) = {gains.shape[2:]}, got {antenna.shape}")
    rows = np.isin(antenna, present)
    gains, flags, snr, antenna = gains[:, :, rows], flags[:, :, rows], snr[:, :, rows], antenna[rows]
    good = ~flags
    amp = np.abs(gains[good])
    phase = np.degrees(np.angle(gains[good]))
    return TableQuality(
        flagged_fraction=float(flags.mean()),
        median_snr=float(np.median(snr[good])) if good.any() else 0.0,
        amp_scatter=float(np.std(amp) / np.mean(amp)) if amp.size else None,
        phase_scatter_deg=float(np.std(phase)) if phase.size else None,
        n_antennas=len(set(antenna.tolist())),
    )


def quality_problems(quality: dict[str, TableQuality]) -> list[str]:
    """Why a set fails the thresholds (empty: it passes), one line per table type and figure."""
    problems = []
    for name, q in quality.items():
        if q.flagged_fraction > MAX_FLAGGED_FRACTION:
            problems.append(
                f"{name}: {100 * q.flagged_fraction:.0f}% of solutions flagged (> {100 * MAX_FLAGGED_FRACTION:.0f}%)"
            )
        # CASA 6.7 writes SNR 0 for every multi-band delay (K) solution (measured), so a K table is
        # judged by its flags (gaincal's minsnr flags the weak ones) and never by that column
        if name != "K" and q.median_snr < MIN_MEDIAN_SNR:
            problems.append(f"{name}: median SNR {q.median_snr:.1f} < {MIN_MEDIAN_SNR}")
    return problems


def unsolved_spw_problems(
    tables: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], present: list[int]
) -> list[str]:
    """Why a set leaves a spectral window uncalibrated: one line per table that has no usable solution there.

    ``tables`` maps a table's type (B, G, ...) to its ANTENNA1, SPECTRAL_WINDOW_ID and FLAG columns
    (FLAG (npol, nchan, nrow)). The windows a set must cover are those any of the tables solved for an
    antenna with data; a window where one table has no unflagged solution for any such antenna is a
    window every image would lose (the flagged-fraction figure cannot see it: a missing row is not a
    flagged one). CASA's gaincal left one SPW out of a G table without an error (noise-free data).
    """
    solved: dict[str, set[int]] = {}
    for name, (antenna, spw, flag) in tables.items():
        usable = np.isin(antenna, present) & ~flag.reshape(-1, flag.shape[-1]).all(axis=0)
        solved[name] = set(np.asarray(spw)[usable].tolist())
    wanted = set().union(*solved.values()) if solved else set()
    problems = []
    for name, spws in solved.items():
        missing = sorted(wanted - spws)
        if missing:
            problems.append(f"{name}: no solution in SPW {', '.join(map(str, missing))} (solved in another table)")
    return problems
