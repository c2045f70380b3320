"""Per-antenna complex gains from baseline visibilities by weighted least squares (pure numpy; no CASA).

The gain solve CASA's ``gaincal`` does on a point-source-divided MS: given, per baseline (i, j), the
model-divided visibility ``r_ij`` and its weight ``W_ij``, find the antenna gains minimising
``sum W_ij |r_ij - g_i conj(g_j)|^2``. Solved by StEFCal (Salvini & Wijnholds 2014): with every
other gain held, the best ``g_i`` is ``sum_j W_ij r_ij g_j / sum_j W_ij |g_j|^2``; iterating that
for all antennas at once, averaging every second step, converges in tens of steps. Many independent
solves (time bins, SPWs, polarizations) run as one batch on the leading axis.

Why in numpy: on the calibrator chunk the solves are ~100 antennas and a few thousand baselines each,
microseconds of arithmetic, while a CASA ``gaincal`` call costs tens of seconds at full size in
reading and averaging its MS (issue #21). ``tests/test_gainsolve.py`` compares the result with CASA's
``gaincal`` on the same data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_SNR", "GainSolution", "baseline_sums", "phase_step_ratios", "solve_gains"]

# Noise-free data fit exactly (chi-squared 0): a finite ceiling keeps the SNR a number the tables'
# float32 column and the drift test (noise = 1 / SNR) can use.
MAX_SNR = 1e6


class GainSolution:
    """Solved gains of a batch of independent solves.

    Attributes
    ----------
    gains : ndarray
        (..., n_ant) complex; 1 where flagged. The reference antenna's phase is zero.
    flags : ndarray
        (..., n_ant) bool: no solution (too few baselines, SNR below the minimum, or no data).
    snr : ndarray
        (..., n_ant) float: |g| over its standard error, the error scaled by the fit's reduced chi-squared.
    refant : ndarray
        (...,) int: the antenna whose phase was set to zero in each solve (-1: none unflagged).
    """

    def __init__(self, gains, flags, snr, refant):
        self.gains, self.flags, self.snr, self.refant = gains, flags, snr, refant


def baseline_sums(num: np.ndarray, den: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Model-divided visibility and its weight over ``axis`` (e.g. channels): ``sum num / sum den``, ``sum den``.

    ``num = w conj(X) V`` and ``den = w |X|^2`` per sample for data V, weight w and the expected
    visibility without the gains X (model times any prior calibration): the least-squares ratio V / X
    over the samples summed is ``sum num / sum den``, with weight ``sum den``.
    """
    n = np.sum(num, axis=axis, dtype=np.complex128)
    d = np.sum(den, axis=axis, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(d > 0, n / np.where(d > 0, d, 1), 0)
    return r, d


def _matrices(r, w, a1, a2, n_ant):
    """Hermitian (..., n_ant, n_ant) matrices of the baseline values and weights (zero diagonal)."""
    lead = r.shape[:-1]
    R = np.zeros(lead + (n_ant, n_ant), np.complex128)
    W = np.zeros(lead + (n_ant, n_ant), np.float64)
    R[..., a1, a2] = r
    R[..., a2, a1] = np.conj(r)
    W[..., a1, a2] = w
    W[..., a2, a1] = w
    return R, W


def solve_gains(
    r: np.ndarray,
    w: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    n_ant: int,
    refants: list[int],
    *,
    phase_only: bool = False,
    min_baselines: int = 3,
    min_snr: float = 0.0,
    max_iter: int = 300,
    tol: float = 1e-10,
) -> GainSolution:
    """Solve ``r_ij = g_i conj(g_j)`` for the gains, batch over the leading axes.

    Parameters
    ----------
    r, w : ndarray
        (..., n_bl) model-divided visibilities and weights (0: flagged) of baselines ``a1``, ``a2``
        (antenna numbers < ``n_ant``, a1 != a2).
    refants : list of int
        Reference antennas in preference order: in each solve the first unflagged one gets phase 0.
    phase_only : bool
        Gains of unit amplitude (CASA's ``calmode='p'``).
    min_baselines : int
        An antenna with fewer unflagged baselines is flagged (CASA's ``minblperant``); its baselines
        leave the solve, repeatedly, until every remaining antenna has enough.
    min_snr : float
        Solutions below this SNR are flagged (CASA's ``minsnr``).

    Raises
    ------
    ValueError
        If the shapes disagree or a baseline joins an antenna to itself or one outside ``n_ant``.
    """
    r, w = np.asarray(r), np.asarray(w, np.float64)
    a1, a2 = np.asarray(a1, int), np.asarray(a2, int)
    if r.shape != w.shape or r.shape[-1] != a1.size or a1.shape != a2.shape:
        raise ValueError(f"r {r.shape}, w {w.shape}, a1 {a1.shape}, a2 {a2.shape}: one value per baseline needed")
    if a1.size and (np.any(a1 == a2) or min(a1.min(), a2.min()) < 0 or max(a1.max(), a2.max()) >= n_ant):
        raise ValueError(f"baselines must join two different antennas among {n_ant}")
    w = np.where(np.isfinite(r) & (w > 0), w, 0.0)
    R, W = _matrices(np.where(w > 0, r, 0), w, a1, a2, n_ant)
    while True:  # drop antennas with too few baselines, and their baselines, until none is left short
        short = np.count_nonzero(W > 0, axis=-1) < min_baselines  # (..., n_ant)
        drop = short & (np.count_nonzero(W > 0, axis=-1) > 0)
        if not drop.any():
            break
        W = np.where(short[..., :, None] | short[..., None, :], 0.0, W)
    flags = np.count_nonzero(W > 0, axis=-1) < min_baselines
    WR = W * R
    g = np.where(flags, 0, 1).astype(np.complex128)
    for it in range(max_iter):
        num = np.einsum("...ij,...j->...i", WR, g)
        den = np.einsum("...ij,...j->...i", W, np.abs(g) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            new = np.where(den > 0, num / np.where(den > 0, den, 1), 0)
        if phase_only:
            amp = np.abs(new)
            new = np.where(amp > 0, new / np.where(amp > 0, amp, 1), 0)
        if it % 2 == 1:  # StEFCal's averaging of every second step keeps the iteration from oscillating
            new = 0.5 * (new + g)
            if phase_only:
                amp = np.abs(new)
                new = np.where(amp > 0, new / np.where(amp > 0, amp, 1), 0)
        change = np.max(np.abs(new - g)) if g.size else 0.0
        g = new
        if change < tol:
            break
    g = np.where(flags, 0, g)
    # standard errors: the Gauss-Newton curvature sum_j W_ij |g_j|^2 of each gain, its variance scaled by the
    # reduced chi-squared of the fit (the weights' absolute scale is then irrelevant, as in CASA)
    model = g[..., :, None] * np.conj(g[..., None, :])
    resid = np.sum(W * np.abs(R - model) ** 2, axis=(-2, -1)) / 2  # each baseline counted twice
    n_bl = np.count_nonzero(W > 0, axis=(-2, -1)) / 2
    n_par = np.count_nonzero(~flags, axis=-1) * (1 if phase_only else 2) / 2  # complex data, real parameters
    chi2 = resid / np.maximum(n_bl - n_par, 1)
    curvature = np.einsum("...ij,...j->...i", W, np.abs(g) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.sqrt(chi2[..., None] / curvature)
        snr = np.minimum(np.where(err > 0, np.abs(g) / err, MAX_SNR), MAX_SNR)
    snr = np.where(flags, 0.0, snr)
    flags = flags | (snr < min_snr)
    # reference: the first preferred antenna unflagged in each solve gets phase 0
    ref = np.full(g.shape[:-1], -1, int)
    for a in reversed([a for a in refants if 0 <= a < n_ant]):
        ref = np.where(~flags[..., a], a, ref)
    g_ref = np.take_along_axis(g, np.maximum(ref, 0)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rot = np.where((ref >= 0) & (np.abs(g_ref) > 0), np.conj(g_ref) / np.abs(g_ref), 1)
    g = np.where(flags, 1, g * rot[..., None])
    return GainSolution(g, flags, np.where(flags, 0.0, snr), ref)


def phase_step_ratios(gains: np.ndarray, flags: np.ndarray, snr: np.ndarray) -> np.ndarray:
    """How far time-variable gains' phases move between solutions, in units of their noise, per series.

    ``gains``, ``flags``, ``snr``: (n_time, ...) with time first. Per series (every other index)
    with 3 or more unflagged solutions: the rms of the phase differences between consecutive
    solutions over sqrt(2) x the noise of one (1 / SNR, radians). About 1 for steady gains and noise
    alone; more as they drift (the solve takes the median over every series).
    """
    n_t = gains.shape[0]
    g = gains.reshape(n_t, -1)
    s = snr.reshape(n_t, -1)
    f = flags.reshape(n_t, -1) | ~(s > 0) | ~np.isfinite(s)
    ratios = []
    for k in range(g.shape[1]):
        ok = ~f[:, k]
        if ok.sum() < 3:
            continue
        dphi = np.diff(np.unwrap(np.angle(g[ok, k])))
        noise = np.sqrt(2) / np.median(s[ok, k])
        ratios.append(np.sqrt(np.mean(dphi**2)) / noise)
    return np.array(ratios, float)
