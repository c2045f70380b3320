"""Bandpass QA (pure numpy): flagged fractions, smoothness and per-antenna outliers of a solved B table.

A bandpass is smooth across a subband's channels (the analogue filters), so the second difference
of its amplitude and phase from channel to channel is the solve's noise (sqrt(6) / SNR per channel for
white noise) plus whatever is wrong: RFI left in the data, a dead input solved on noise, a loose
connector. Each (antenna, spectral window) cell gets three figures -- its flagged fraction, the rms of
the second difference of the amplitude relative to its median amplitude, and the rms of the second
difference of the phase (deg) -- and each antenna the same over its whole band. An antenna or a cell
is an outlier when one of its figures lies more than ``OUTLIER_Z`` robust standard deviations (1.4826
x the median absolute deviation, with a floor so an array of identical antennas does not call a
hair's difference an outlier) above the array's median.

A set fails the QA when more than ``MAX_OUTLIER_ANTENNA_FRACTION`` of its antennas are outliers or
the array's typical bandpass is rough (``MAX_MEDIAN_AMP_ROUGHNESS``, ``MAX_MEDIAN_PHASE_ROUGHNESS_DEG``):
then the solve itself is broken, not one antenna. A few outlier antennas or cells are listed (report,
plot) for the operator; the solutions CASA could not trust (a dead input solves below ``minsnr``) it has
already flagged, and a flagged solution flags the data it would calibrate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_MEDIAN_AMP_ROUGHNESS",
    "MAX_MEDIAN_PHASE_ROUGHNESS_DEG",
    "MAX_OUTLIER_ANTENNA_FRACTION",
    "OUTLIER_Z",
    "BandpassQA",
    "bandpass_cube",
    "bandpass_qa",
    "cell_figures",
    "robust_z",
]

OUTLIER_Z = 5.0  # robust sigmas above the array's median
# floors of the robust scale: a flagged fraction 0.05 (1 channel in 20) and 10 % of the array's median
# roughness (the scatter of an rms over ~90 second differences of noise) are ordinary, never outliers
FLAG_SCALE_FLOOR = 0.05
ROUGHNESS_SCALE_FLOOR = 0.1
ROUGHNESS_ABS_FLOOR = (1e-3, 0.05)  # amplitude (relative), phase (deg): noise-free solutions are not all outliers
MAX_OUTLIER_ANTENNA_FRACTION = 0.2
# the array's median roughness: complex noise of per-channel SNR s gives sqrt(3) / s in amplitude (its radial
# half) and sqrt(3) / s rad in phase, so 0.3 is an SNR of ~6, near where the set's median SNR threshold
# (contimg.calibrate.solutions.MIN_MEDIAN_SNR, 5) fails it anyway; 17 deg of phase is the same 0.3 rad.
# The simulator's 1.5-cycle ripple per subband reads 0.12 (and 10 deg) at 4 channels per subband.
MAX_MEDIAN_AMP_ROUGHNESS = 0.3
MAX_MEDIAN_PHASE_ROUGHNESS_DEG = 17.0


@dataclass(frozen=True)
class BandpassQA:
    """The verdict on one bandpass table: figures per antenna and overall, outliers, problems."""

    flagged_fraction: float  # of the solutions on the antennas with data
    median_amp_roughness: float | None  # array median of the antennas' figures; None if none could be computed
    median_phase_roughness_deg: float | None
    antennas: list[int]  # 0-based ids judged (the antennas with data)
    antenna_flagged_fraction: list[float]
    antenna_amp_roughness: list[float | None]
    antenna_phase_roughness_deg: list[float | None]
    outlier_antennas: list[int]
    outlier_cells: list[list[int]]  # [antenna, spw] whose own figures are outliers
    problems: list[str]  # why the set fails the QA; empty when it passes

    @property
    def ok(self) -> bool:
        """True when the set passes the bandpass QA."""
        return not self.problems


def bandpass_cube(
    gains: np.ndarray, flags: np.ndarray, antenna: np.ndarray, spw: np.ndarray, antennas: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """A CASA B table's rows as cubes (antenna, spw, pol, chan) over ``antennas``.

    Parameters
    ----------
    gains, flags : np.ndarray
        CPARAM and FLAG, (npol, nchan, nrow) as casatools reads them.
    antenna, spw : np.ndarray
        ANTENNA1 and SPECTRAL_WINDOW_ID per row.
    antennas : list of int
        The antennas to keep, in this order.

    Returns
    -------
    (gains, flags) : each (len(antennas), nspw, npol, nchan); a cell with no row is flagged. Several rows
    of one cell (several solution times) keep the last.

    Raises
    ------
    ValueError
        If the shapes disagree.
    """
    gains, flags = np.asarray(gains), np.asarray(flags, bool)
    antenna, spw = np.asarray(antenna), np.asarray(spw)
    if gains.shape != flags.shape or gains.ndim != 3 or not antenna.shape == spw.shape == (gains.shape[2],):
        raise ValueError(
            f"gains and flags must be (npol, nchan, nrow) and antenna, spw (nrow,): got {gains.shape}, "
            f"{flags.shape}, {antenna.shape}, {spw.shape}"
        )
    npol, nchan, _ = gains.shape
    nspw = int(spw.max()) + 1 if spw.size else 0
    g = np.ones((len(antennas), nspw, npol, nchan), complex)
    f = np.ones(g.shape, bool)
    index = {a: k for k, a in enumerate(antennas)}
    for row, (a, s) in enumerate(zip(antenna.tolist(), spw.tolist(), strict=True)):
        if a in index:
            g[index[a], s] = gains[:, :, row]
            f[index[a], s] = flags[:, :, row]
    return g, f


def cell_figures(gains: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flagged fraction, amplitude and phase roughness of each cell of ``gains`` (..., pol, chan).

    Roughness is the rms over both polarizations of the second difference across channels, taken only
    where three neighbouring channels are unflagged: of |g| divided by the cell's median |g|, and of the
    phase (deg; the angle of g[k+1] g[k-1] conj(g[k])^2, so no unwrapping). NaN where no such triple exists.
    """
    flags = np.asarray(flags, bool) | ~np.isfinite(gains)
    frac = flags.mean(axis=(-2, -1))
    g = np.where(flags, 0, gains)
    ok = ~flags[..., 2:] & ~flags[..., 1:-1] & ~flags[..., :-2]
    amp = np.abs(g)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a wholly flagged cell: NaN, as meant
        med = np.nanmedian(np.where(flags, np.nan, amp), axis=(-2, -1))
        d2a = (amp[..., 2:] - 2 * amp[..., 1:-1] + amp[..., :-2]) / med[..., None, None]
        d2p = np.degrees(np.angle(g[..., 2:] * g[..., :-2] * np.conj(g[..., 1:-1]) ** 2))
        n = ok.sum(axis=(-2, -1))
        amp_r = np.sqrt(np.where(ok, d2a**2, 0).sum(axis=(-2, -1)) / n)
        ph_r = np.sqrt(np.where(ok, d2p**2, 0).sum(axis=(-2, -1)) / n)
    bad = (n == 0) | ~np.isfinite(med) | (med <= 0)
    return frac, np.where(bad, np.nan, amp_r), np.where(n == 0, np.nan, ph_r)


def robust_z(values: np.ndarray, rel_floor: float = 0.0, abs_floor: float = 0.0) -> np.ndarray:
    """(x - median) / scale of the finite ``values``; scale = max(1.4826 MAD, rel_floor |median|, abs_floor).

    NaN stays NaN; with no finite value every z is NaN.
    """
    x = np.asarray(values, float)
    good = x[np.isfinite(x)]
    if good.size == 0:
        return np.full(x.shape, np.nan)
    med = np.median(good)
    scale = max(1.4826 * np.median(np.abs(good - med)), rel_floor * abs(med), abs_floor)
    if scale <= 0:
        scale = np.finfo(float).tiny  # every value equal to the median: only a different one is an outlier
    return (x - med) / scale


def _outliers(frac: np.ndarray, amp_r: np.ndarray, ph_r: np.ndarray) -> np.ndarray:
    """True where any figure is an outlier against the others of the same array (one-sided: worse only)."""
    with np.errstate(invalid="ignore"):
        z = [
            robust_z(frac, abs_floor=FLAG_SCALE_FLOOR),
            robust_z(amp_r, ROUGHNESS_SCALE_FLOOR, ROUGHNESS_ABS_FLOOR[0]),
            robust_z(ph_r, ROUGHNESS_SCALE_FLOOR, ROUGHNESS_ABS_FLOOR[1]),
        ]
        return np.any([np.nan_to_num(v, nan=0.0) > OUTLIER_Z for v in z], axis=0)


def bandpass_qa(gains: np.ndarray, flags: np.ndarray, antennas: list[int]) -> BandpassQA:
    """The QA verdict on bandpass cubes (antenna, spw, pol, chan) of the antennas ``antennas`` (with data).

    Raises
    ------
    ValueError
        If gains and flags differ in shape, are not 4-D, or the first axis is not ``len(antennas)``.
    """
    gains, flags = np.asarray(gains), np.asarray(flags, bool)
    if gains.shape != flags.shape or gains.ndim != 4 or gains.shape[0] != len(antennas):
        raise ValueError(
            f"gains and flags must be (antenna, spw, pol, chan) with {len(antennas)} antennas: "
            f"got {gains.shape} and {flags.shape}"
        )
    n_ant, n_spw = gains.shape[:2]
    cell = cell_figures(gains, flags)  # (antenna, spw) each
    # an antenna's whole band: its cells side by side along the channel axis (second differences never
    # straddle two spectral windows: the channel triples are taken inside each cell)
    whole = _antenna_figures(gains, flags)
    ant_out = _outliers(*whole) if n_ant else np.zeros(0, bool)
    cell_out = _outliers(*(c.ravel() for c in cell)).reshape(n_ant, n_spw) if n_ant else np.zeros((0, n_spw), bool)
    med_amp = float(np.nanmedian(whole[1])) if np.isfinite(whole[1]).any() else None
    med_ph = float(np.nanmedian(whole[2])) if np.isfinite(whole[2]).any() else None
    problems = []
    if n_ant and ant_out.sum() > MAX_OUTLIER_ANTENNA_FRACTION * n_ant:
        problems.append(
            f"bandpass: {int(ant_out.sum())} of {n_ant} antennas are outliers "
            f"(> {100 * MAX_OUTLIER_ANTENNA_FRACTION:.0f}%): {[antennas[k] for k in np.flatnonzero(ant_out)]}"
        )
    if med_amp is not None and med_amp > MAX_MEDIAN_AMP_ROUGHNESS:
        problems.append(f"bandpass: median amplitude roughness {med_amp:.3f} > {MAX_MEDIAN_AMP_ROUGHNESS}")
    if med_ph is not None and med_ph > MAX_MEDIAN_PHASE_ROUGHNESS_DEG:
        problems.append(f"bandpass: median phase roughness {med_ph:.1f} deg > {MAX_MEDIAN_PHASE_ROUGHNESS_DEG}")

    def _opt(v):
        return None if not np.isfinite(v) else float(v)

    return BandpassQA(
        flagged_fraction=float(flags.mean()) if flags.size else 1.0,
        median_amp_roughness=med_amp,
        median_phase_roughness_deg=med_ph,
        antennas=[int(a) for a in antennas],
        antenna_flagged_fraction=[float(v) for v in whole[0]],
        antenna_amp_roughness=[_opt(v) for v in whole[1]],
        antenna_phase_roughness_deg=[_opt(v) for v in whole[2]],
        outlier_antennas=[int(antennas[k]) for k in np.flatnonzero(ant_out)],
        outlier_cells=[[int(antennas[a]), int(s)] for a, s in zip(*np.nonzero(cell_out), strict=True)],
        problems=problems,
    )


def _antenna_figures(gains: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per antenna over all its cells: flagged fraction, and the rms of its cells' roughness (finite ones)."""
    frac, amp_r, ph_r = cell_figures(gains, flags)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an antenna with no finite cell: NaN, as meant
        whole_amp = np.sqrt(np.nanmean(amp_r**2, axis=1))
        whole_ph = np.sqrt(np.nanmean(ph_r**2, axis=1))
    return flags.mean(axis=(1, 2, 3)), whole_amp, whole_ph
