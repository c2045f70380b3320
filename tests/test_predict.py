"""The per-antenna-phasor predict (contimg.core.predict) against the textbook sum over sources, baseline by baseline."""

import numpy as np
import pytest

from contimg.core.predict import phasor, point_visibilities

C = 299_792_458.0


def textbook(path_m, k, weights, ant1, ant2):
    """V_b(f) = sum_s w_fs exp(i k_f (path[a2, s] - path[a1, s])), one complex exponential per term."""
    out = np.zeros((len(ant1), len(k)), complex)
    for b, (i, j) in enumerate(zip(ant1, ant2, strict=True)):
        for f, kf in enumerate(k):
            out[b, f] = np.sum(weights[f] * np.exp(1j * kf * (path_m[j] - path_m[i])))
    return out


def geometry(rng, n_ant=12, n_src=40):
    # antennas over 2.6 km, sources over +-6 deg: paths of up to ~270 m, thousands of radians of phase
    xyz = rng.uniform(-1300, 1300, (n_ant, 3))
    lmn = rng.uniform(-0.1, 0.1, (n_src, 3))
    return xyz @ lmn.T


@pytest.mark.parametrize("even", [True, False])
def test_matches_the_sum_over_sources_for_any_baseline_order(even):
    rng = np.random.default_rng(5)
    path = geometry(rng)
    freqs = 1.4e9 + 244_140.625 * np.arange(48) if even else np.sort(rng.uniform(1.31e9, 1.5e9, 17))
    k = 2 * np.pi * freqs / C
    w = rng.uniform(0, 2, (len(k), path.shape[1]))
    a1, a2 = np.triu_indices(path.shape[0])  # autocorrelations included
    a1, a2 = np.concatenate([a1, a2[:7]]), np.concatenate([a2, a1[:7]])  # and a few with ant1 > ant2
    got = point_visibilities(path, k, w, a1, a2)
    want = textbook(path, k, w, a1, a2)
    assert got.dtype == np.complex64
    # complex64 phasors stepped over 47 channels: a few 1e-6 of the total flux
    assert np.max(np.abs(got - want)) < 2e-5 * w.sum(axis=1).max()


def test_sources_of_zero_weight_in_some_channels_add_nothing_there():
    rng = np.random.default_rng(6)
    path = geometry(rng, n_src=30)
    k = 2 * np.pi * (1.4e9 + 244_140.625 * np.arange(12)) / C
    w = rng.uniform(0, 2, (len(k), path.shape[1]))
    w[rng.random(w.shape) < 0.4] = 0.0  # a source in some channels only
    w[3] = 0.0  # and a channel with none
    a1, a2 = np.triu_indices(path.shape[0], 1)
    got = point_visibilities(path, k, w, a1, a2)
    assert not got[:, 3].any()
    assert np.max(np.abs(got - textbook(path, k, w, a1, a2))) < 2e-5 * w.sum(axis=1).max()


def test_phasor_is_exp_i_phase_for_large_phases():
    phase = np.random.default_rng(1).uniform(-5e4, 5e4, 1000)
    assert np.max(np.abs(phasor(phase) - np.exp(1j * phase))) < 5e-7


def test_refuses_negative_weights_and_misshapen_ones():
    path = np.zeros((3, 2))
    k = np.array([30.0, 31.0])
    with pytest.raises(ValueError, match=">= 0"):
        point_visibilities(path, k, np.array([[1.0, -1.0], [1.0, 1.0]]), [0], [1])
    with pytest.raises(ValueError, match="channels, sources"):
        point_visibilities(path, k, np.ones((2, 3)), [0], [1])
