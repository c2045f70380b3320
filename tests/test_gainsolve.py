"""The numpy gain solve (contimg.calibrate.gainsolve) against injected gains: pure, no CASA.

Its comparison with CASA's gaincal on the same chunk is tests/test_calibrate_reduced.py.
"""

import numpy as np
import pytest

from contimg.calibrate.gainsolve import MAX_SNR, baseline_sums, phase_step_ratios, solve_gains


def _array(n_ant, rng, n_solves=3, noise=0.0, phase_only=False):
    a1, a2 = np.triu_indices(n_ant, 1)
    amp = np.ones((n_solves, n_ant)) if phase_only else rng.uniform(0.7, 1.3, (n_solves, n_ant))
    g = amp * np.exp(1j * rng.uniform(-np.pi, np.pi, (n_solves, n_ant)))
    r = g[:, a1] * np.conj(g[:, a2])
    r = r + noise * (rng.standard_normal(r.shape) + 1j * rng.standard_normal(r.shape)) / np.sqrt(2)
    return a1, a2, g, r


def _referenced(g, ref):
    return g * np.exp(-1j * np.angle(g[..., ref : ref + 1]))


@pytest.mark.parametrize("phase_only", [False, True])
def test_noise_free_gains_are_recovered_exactly(phase_only):
    rng = np.random.default_rng(1)
    a1, a2, g, r = _array(12, rng, phase_only=phase_only)
    sol = solve_gains(r, np.ones(r.shape), a1, a2, 12, [4], phase_only=phase_only)
    np.testing.assert_allclose(sol.gains, _referenced(g, 4), atol=1e-8)
    assert not sol.flags.any()
    assert np.all(sol.refant == 4)
    assert np.all(sol.snr == MAX_SNR)


def test_noisy_gains_match_the_truth_within_the_reported_errors():
    """The solve's SNR says how close it is: the errors' rms over |g| / SNR is about 1 (0.5-2)."""
    rng = np.random.default_rng(2)
    n_ant, noise = 40, 0.3
    a1, a2, g, r = _array(n_ant, rng, n_solves=20, noise=noise)
    sol = solve_gains(r, np.full(r.shape, 1 / noise**2), a1, a2, n_ant, [0])
    err = np.abs(sol.gains - _referenced(g, 0))[:, 1:]  # the refant's own phase is fixed, not estimated
    expected = np.abs(g[:, 1:]) / sol.snr[:, 1:]
    ratio = np.sqrt(np.mean(err**2)) / np.sqrt(np.mean(expected**2))
    assert 0.5 < ratio < 2.0
    # and the textbook error of one gain: noise / sqrt(sum_j |g_j|^2) over ~n_ant - 1 baselines
    assert np.median(err) < 3 * noise / np.sqrt(n_ant - 1)


def test_weights_steer_the_solution():
    """A baseline with a wrong value and zero weight does not move the gains; with weight it does."""
    rng = np.random.default_rng(3)
    a1, a2, g, r = _array(8, rng, n_solves=1)
    r_bad = r.copy()
    r_bad[0, 0] *= 3.0
    w = np.ones(r.shape)
    w[0, 0] = 0.0
    np.testing.assert_allclose(solve_gains(r_bad, w, a1, a2, 8, [0]).gains, _referenced(g, 0), atol=1e-8)
    assert not np.allclose(solve_gains(r_bad, np.ones(r.shape), a1, a2, 8, [0]).gains, _referenced(g, 0), atol=1e-3)


def test_antenna_with_too_few_baselines_is_flagged_and_refant_falls_back():
    rng = np.random.default_rng(4)
    a1, a2, g, r = _array(8, rng, n_solves=1)
    w = np.ones(r.shape)
    w[0, (a1 == 2) | (a2 == 2)] = 0  # antenna 2: no data
    keep = np.flatnonzero((a1 == 5) | (a2 == 5))[:2]  # antenna 5: two baselines only
    w[0, ((a1 == 5) | (a2 == 5))] = 0
    w[0, keep] = 1
    sol = solve_gains(r, w, a1, a2, 8, [2, 1], min_baselines=3)
    assert sol.flags[0, 2] and sol.flags[0, 5]
    assert sol.refant[0] == 1
    ok = ~sol.flags[0]
    np.testing.assert_allclose(sol.gains[0, ok], _referenced(g, 1)[0, ok], atol=1e-8)


def test_baseline_sums_is_the_least_squares_ratio():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 6)) + 1j * rng.standard_normal((50, 6))  # model x prior gains, per channel
    w = rng.uniform(0.5, 2, (50, 6))
    v = (0.8 - 0.3j) * x + 0.01 * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    r, d = baseline_sums(w * np.conj(x) * v, w * np.abs(x) ** 2, axis=1)
    # the same ratio by numpy's least squares per row: minimise sum w |v - c x|^2
    for i in range(3):
        sw = np.sqrt(w[i])
        c, *_ = np.linalg.lstsq((sw * x[i])[:, None], sw * v[i], rcond=None)
        assert r[i] == pytest.approx(c[0], abs=1e-12)
    np.testing.assert_allclose(d, (w * np.abs(x) ** 2).sum(1))


def test_phase_step_ratios_see_drift_not_noise():
    rng = np.random.default_rng(6)
    n_t, snr = 6, 200.0
    noise = (rng.standard_normal((n_t, 50)) / snr) * 1j
    steady = np.exp(noise)
    drifting = np.exp(noise + 1j * np.linspace(0, 0.5, n_t)[:, None])
    flags, s = np.zeros((n_t, 50), bool), np.full((n_t, 50), snr)
    assert np.median(phase_step_ratios(steady, flags, s)) < 2
    assert np.median(phase_step_ratios(drifting, flags, s)) > 5


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one value per baseline"):
        solve_gains(np.ones((2, 3)), np.ones((2, 4)), [0, 0, 1], [1, 2, 2], 3, [0])
    with pytest.raises(ValueError, match="two different antennas"):
        solve_gains(np.ones(3), np.ones(3), [0, 1, 1], [1, 1, 2], 3, [0])
