"""One delay per antenna and polarization over the whole band, from baseline visibilities (pure numpy; no CASA).

What CASA's ``gaincal(gaintype='K', combine='spw')`` solves on a model-divided MS: antenna i's data
carry exp(+2 pi i nu tau_i), so baseline (i, j) reads ``r_ij(nu) = g_i conj(g_j) exp(2 pi i nu (tau_i - tau_j))``.
The solve:

1. adjacent channels are summed in groups of up to ``group_hz`` (a 10 ns delay turns 0.13 rad over
   2 MHz, 8 channels of 244 kHz: no loss of coherence), then per group and polarization the antenna phases are solved
   over every baseline at once (StEFCal, ``contimg.calibrate.gainsolve.solve_gains``, phase only),
   relative to the reference antenna;
2. per antenna, a coarse delay by the peak of the weighted delay spectrum of those phases
   (``|sum_k w_k exp(i (phi_k - 2 pi nu_k tau))|`` on a grid finer than 1 / bandwidth): this unwraps
   delays of tens of ns (10 ns is 11.7 rad over the 187 MHz band);
3. a weighted straight-line fit of the residual phase against frequency, twice (the second on the
   first's residual), the weights the phases' inverse variances (SNR squared).

Over the band a delay is resolved to picoseconds on a calibrator; one SPW alone would see the
bandpass's phase ripple as a delay of several ns (``contimg.calibrate.job.solve._delay``). Why in
numpy: CASA's K on the chunk summed to one row per baseline still cost ~9 s at full size (issue #21);
this is a fraction of a second of arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contimg.calibrate.gainsolve import solve_gains

__all__ = ["DelaySolution", "solve_delays"]


@dataclass
class DelaySolution:
    """Per polarization and antenna: ``delays_ns``, ``errors_ns`` (1 sigma), ``flags``, ``snr``; ``refant``.

    ``snr``: the SNR of the antenna's band-averaged phase (the root of its summed per-group phase
    weights, over the fit's reduced chi-squared when that exceeds 1); delays of flagged antennas are 0.
    """

    delays_ns: np.ndarray  # (npol, n_ant)
    errors_ns: np.ndarray
    flags: np.ndarray
    snr: np.ndarray
    refant: int


def _grouped(r, w, freqs, group_hz):
    """Channels summed in groups up to ``group_hz`` wide in each SPW: (n_group_total, npol, n_bl) r, w; centre freqs."""
    rs, ws, fs = [], [], []
    for rk, wk, fk in zip(r, w, freqs, strict=True):
        n_chan = len(fk)
        step = float(np.abs(np.diff(fk)).min()) if n_chan > 1 else np.inf
        group = max(1, int(group_hz // step)) if step > 0 else 1
        for s in range(0, n_chan, group):
            sl = slice(s, min(s + group, n_chan))
            num = np.sum(rk[:, sl] * wk[:, sl], axis=1)  # (bl, pol)
            den = np.sum(wk[:, sl], axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                rs.append(np.where(den > 0, num / np.where(den > 0, den, 1), 0).T)
            ws.append(den.T)
            fs.append(np.mean(np.asarray(fk, np.float64)[sl]))
    return np.stack(rs), np.stack(ws), np.array(fs)


def solve_delays(
    r: list,
    w: list,
    freqs_hz: list,
    a1: np.ndarray,
    a2: np.ndarray,
    n_ant: int,
    refants: list[int],
    *,
    min_baselines: int = 3,
    min_snr: float = 3.0,
    max_delay_ns: float = 50.0,
    group_hz: float = 2e6,
) -> DelaySolution:
    """Solve one delay per antenna and polarization over all SPWs, relative to the first usable refant.

    Parameters
    ----------
    r, w : list of ndarray
        Per SPW, (n_bl, nchan, npol) model-divided visibilities and their weights (0: flagged) of
        baselines ``a1``, ``a2``.
    freqs_hz : list of ndarray
        Per SPW, the channels' frequencies (Hz).
    refants : list of int
        Reference antennas in preference order; the first one with a solution over most of the band
        gets delay 0 (every group's phases must be relative to the same antenna, so groups where it
        is flagged leave the fit).
    min_baselines, min_snr
        As CASA's ``minblperant`` and ``minsnr``: per group of channels for the phases, and on the
        antenna's band-averaged phase SNR for the delay.
    max_delay_ns : float
        The coarse search covers +-this (relative to the reference antenna).
    group_hz : float
        Channels are summed in groups at most this wide before the phases are solved.

    Raises
    ------
    ValueError
        If the SPWs' shapes disagree with each other, the baselines or their frequencies, or ``group_hz``
        is not positive.
    """
    if not (len(r) == len(w) == len(freqs_hz)) or not r:
        raise ValueError(f"{len(r)} SPWs of data, {len(w)} of weights, {len(freqs_hz)} of frequencies")
    a1, a2 = np.asarray(a1, int), np.asarray(a2, int)
    for k, (rk, wk, fk) in enumerate(zip(r, w, freqs_hz, strict=True)):
        if np.shape(rk) != np.shape(wk) or np.ndim(rk) != 3 or np.shape(rk)[:2] != (a1.size, len(fk)):
            raise ValueError(
                f"SPW {k}: r {np.shape(rk)}, w {np.shape(wk)}: (n_bl={a1.size}, nchan={len(fk)}, npol) needed"
            )
    if not group_hz > 0:
        raise ValueError(f"group_hz must be positive, not {group_hz}")
    rg, wg, nu = _grouped(r, w, freqs_hz, group_hz)  # (n_g, npol, n_bl)
    sol = solve_gains(rg, wg, a1, a2, n_ant, refants, phase_only=True, min_baselines=min_baselines, min_snr=0.0)
    npol = rg.shape[1]
    # one reference for the whole band: the preferred antenna with a solution in the most groups
    usable = [a for a in refants if 0 <= a < n_ant]
    if not usable:
        raise ValueError(f"no reference antenna among {refants} below {n_ant}")
    counts = [np.count_nonzero(sol.refant == a) for a in usable]
    ref = usable[int(np.argmax(counts))] if max(counts) else usable[0]
    phi = np.angle(sol.gains)  # (n_g, npol, n_ant)
    wt = np.where(sol.flags | (sol.refant != ref)[..., None], 0.0, sol.snr**2)  # inverse phase variances
    wt = np.where(np.isfinite(wt), wt, 0.0)

    x = 2 * np.pi * (nu - nu.mean())  # rad per s of delay, centred: offset and slope uncorrelated
    # 2: the coarse search, a grid of 1 / (8 x bandwidth): the peak is found within a fraction of its width
    span = max(float(np.ptp(nu)), 1.0)
    taus = np.arange(-max_delay_ns, max_delay_ns + 1e-9, 1e9 / (8 * span)) * 1e-9
    z = wt * np.exp(1j * phi)  # (n_g, npol, n_ant)
    spectrum = np.abs(np.einsum("gpa,gt->tpa", z, np.exp(-1j * x[:, None] * taus[None, :])))
    tau = taus[np.argmax(spectrum, axis=0)]  # (npol, n_ant)
    # 3: the straight-line fit of the residual phase, twice
    sw = wt.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(2):
            # the antenna's constant phase taken out as the mean phasor's first: wrapped at +-pi it would break the line
            turned = np.exp(1j * (phi - x[:, None, None] * tau[None]))
            res = np.angle(turned * np.exp(-1j * np.angle(np.sum(wt * turned, axis=0)))[None])
            offset = np.sum(wt * res, axis=0) / sw
            sxx = np.sum(wt * x[:, None, None] ** 2, axis=0) - np.sum(wt * x[:, None, None], axis=0) ** 2 / sw
            slope = (np.sum(wt * x[:, None, None] * res, axis=0) - offset * np.sum(wt * x[:, None, None], axis=0)) / sxx
            tau = tau + np.where(np.isfinite(slope), slope, 0)
            res = res - offset[None] - x[:, None, None] * np.where(np.isfinite(slope), slope, 0)[None]
        n_used = np.count_nonzero(wt > 0, axis=0)
        chi2 = np.sum(wt * res**2, axis=0) / np.maximum(n_used - 2, 1)
        err = np.sqrt(chi2 / sxx)  # the slope's variance, scaled by the fit's reduced chi-squared
    snr = np.sqrt(sw / np.maximum(chi2, 1))  # the band-averaged phase's SNR, its scatter about the line counted
    flags = (n_used < 3) | ~(sxx > 0) | ~np.isfinite(err) | (snr < min_snr)
    flags[:, ref] = flags[:, ref] & (n_used[:, ref] == 0)  # the reference is exact by definition
    tau = np.where(flags, 0.0, tau)
    tau[:, ref] = 0.0  # its phases are 0 by construction; the fit gives 0 up to rounding
    err = np.where(flags, 0.0, err)
    err[:, ref] = 0.0
    return DelaySolution(
        delays_ns=(tau * 1e9).reshape(npol, n_ant),
        errors_ns=(err * 1e9).reshape(npol, n_ant),
        flags=flags,
        snr=np.where(flags, 0.0, snr),
        refant=ref,
    )
