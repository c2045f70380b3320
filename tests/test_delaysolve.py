"""The numpy multi-band delay solve against injected delays on synthetic visibilities (no CASA).

Textbook data: V_ij(nu) = g_i conj(g_j) exp(2 pi i nu (tau_i - tau_j)) + n, complex Gaussian noise
with E|n|^2 = sigma^2, over the DSA-110 band (16 SPWs x 48 channels of 244.140625 kHz counted down
from 1498.643188 MHz). The expected error is the Cramer-Rao bound of a straight-line phase fit: per
channel antenna i's phase has variance sigma^2 / (2 |g_i|^2 sum_j |g_j|^2) (its N - 1 baselines), so
its delay var(tau_i) = that / ((2 pi)^2 sum_k (nu_k - mean nu)^2), and a delay relative to the
reference antenna adds the reference's variance.
"""

from __future__ import annotations

import numpy as np
import pytest

from contimg.calibrate.delaysolve import solve_delays

N_ANT, N_SPW, N_CHAN = 24, 16, 48
F0_HZ, DF_HZ = 1498.643188e6, 244140.625


def _freqs():
    return [F0_HZ - DF_HZ * (N_CHAN * k + np.arange(N_CHAN)) for k in range(N_SPW)]


def _simulate(tau_ns, gains, sigma, seed=1):
    """Per SPW, (n_bl, nchan, 2) visibilities and unit weights of every baseline; a1, a2."""
    rng = np.random.default_rng(seed)
    a1, a2 = np.triu_indices(N_ANT, 1)
    r, w = [], []
    for f in _freqs():
        d = np.exp(2j * np.pi * f[None, :, None] * 1e-9 * tau_ns.T[:, None, :])  # (ant, chan, pol)
        x = gains.T[:, None, :] * d
        v = x[a1] * np.conj(x[a2])
        noise = sigma / np.sqrt(2) * (rng.standard_normal(v.shape) + 1j * rng.standard_normal(v.shape))
        r.append(v + noise)
        w.append(np.ones(v.shape))
    return r, w, a1, a2


def _crb_ns(gains, sigma, ref):
    """1-sigma Cramer-Rao bound of each antenna's delay relative to ``ref``, (2, n_ant) ns."""
    nu = np.concatenate(_freqs())
    s_xx = (2 * np.pi) ** 2 * np.sum((nu - nu.mean()) ** 2)
    amp2 = np.abs(gains) ** 2  # (2, n_ant)
    var_phase = sigma**2 / (2 * amp2 * (amp2.sum(axis=1, keepdims=True) - amp2))
    var = var_phase / s_xx
    return np.sqrt(var + var[:, [ref]]) * 1e9


@pytest.fixture
def truth():
    rng = np.random.default_rng(7)
    tau = rng.uniform(-10, 10, (2, N_ANT))
    tau[:, 0] = -9.5
    tau[:, 1] = 9.8  # 19.3 ns from the reference antenna: 23 rad over the band, unwrapped by the coarse search
    gains = rng.uniform(0.8, 1.2, (2, N_ANT)) * np.exp(1j * rng.uniform(-np.pi, np.pi, (2, N_ANT)))
    return tau, gains


def test_injected_delays_recovered_within_the_cramer_rao_bound(truth):
    tau, gains = truth
    sigma = 3.0  # per baseline and channel: SNR ~ 1/3
    r, w, a1, a2 = _simulate(tau, gains, sigma)
    sol = solve_delays(r, w, _freqs(), a1, a2, N_ANT, [0, 1])
    assert sol.refant == 0
    assert not sol.flags.any()
    want = tau - tau[:, [0]]
    crb = _crb_ns(gains, sigma, 0)
    z = ((sol.delays_ns - want) / np.where(crb > 0, crb, 1))[:, 1:]
    print("delay error rms (ns)", np.sqrt(np.mean((sol.delays_ns - want) ** 2)), "z rms", np.sqrt(np.mean(z**2)))
    assert np.sqrt(np.mean(z**2)) < 1.5  # efficient: the bound's size, not several times it
    assert np.max(np.abs(z)) < 5
    assert np.all(sol.delays_ns[:, 0] == 0)
    # its own error estimate agrees with the bound (the fit's chi-squared scaling, not a fixed guess)
    ratio = np.median(sol.errors_ns[:, 1:] / crb[:, 1:])
    assert 0.6 < ratio < 1.6


def test_dead_antenna_and_flagged_spw_and_dead_refant(truth):
    tau, gains = truth
    r, w, a1, a2 = _simulate(tau, gains, 1.0, seed=2)
    for k in range(N_SPW):
        w[k][(a1 == 0) | (a2 == 0)] = 0  # the preferred reference antenna is dead
        w[k][(a1 == 5) | (a2 == 5)] = 0  # and antenna 5
    w[3][(a1 == 7) | (a2 == 7)] = 0  # antenna 7 misses one SPW
    w[9][..., 1] = 0  # one SPW's second polarization is flagged everywhere
    sol = solve_delays(r, w, _freqs(), a1, a2, N_ANT, [0, 2, 1])
    assert sol.refant == 2
    assert sol.flags[:, [0, 5]].all() and np.all(sol.delays_ns[:, [0, 5]] == 0)
    ok = np.setdiff1d(np.arange(N_ANT), [0, 5])
    assert not sol.flags[:, ok].any()
    err = sol.delays_ns[:, ok] - (tau - tau[:, [2]])[:, ok]
    assert np.max(np.abs(err)) < 5 * np.max(_crb_ns(gains, 1.0, 2)) * np.sqrt(N_SPW / (N_SPW - 1))


def test_bad_shapes_say_what_they_met():
    a1, a2 = np.triu_indices(4, 1)
    r = [np.ones((len(a1), 5, 2), complex)]
    with pytest.raises(ValueError, match="SPW 0"):
        solve_delays(r, [np.ones((len(a1), 4, 2))], [np.arange(5.0)], a1, a2, 4, [0])
    with pytest.raises(ValueError, match="SPWs"):
        solve_delays(r, [], [np.arange(5.0)], a1, a2, 4, [0])
