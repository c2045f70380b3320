"""Calibration applied and channels averaged for the imaging copy (contimg.image.applycal), checked
against the textbook per-sample form: V / (g_i conj g_j) with weight w |g_i g_j|^2, then a weighted
mean over each channel bin."""

import numpy as np
import pytest

from contimg.image.applycal import baseline_gains, baseline_period, calibrate_and_bin

N_ANT, N_TIME, N_CHAN, N_POL, BIN = 6, 4, 12, 2, 3


def layout():
    a1, a2 = np.triu_indices(N_ANT)  # autocorrelations too, as the converter writes them
    return np.tile(a1, N_TIME), np.tile(a2, N_TIME)


def textbook(data, flag, weight, gain, gain_flag, a1, a2):
    gg = gain[a1] * np.conj(gain[a2])
    w = weight * np.abs(gg) ** 2
    w = np.where(flag | gain_flag[a1] | gain_flag[a2] | ~np.isfinite(data), 0.0, w)
    vc = np.where(w > 0, data / np.where(gg == 0, 1, gg), 0)
    nr = len(a1)
    wb = w.reshape(nr, N_CHAN // BIN, BIN, N_POL).sum(axis=2)
    vb = (w * vc).reshape(nr, N_CHAN // BIN, BIN, N_POL).sum(axis=2)
    return np.where(wb > 0, vb / np.where(wb > 0, wb, 1), 0), wb


@pytest.fixture
def sample():
    rng = np.random.default_rng(3)
    a1, a2 = layout()
    shape = (len(a1), N_CHAN, N_POL)
    data = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    row_weight = rng.uniform(0.5, 2.0, (len(a1), N_POL)).astype(np.float32)
    gain = (
        rng.uniform(0.5, 1.5, (N_ANT, N_CHAN, N_POL)) * np.exp(1j * rng.uniform(-3, 3, (N_ANT, N_CHAN, N_POL)))
    ).astype(np.complex64)
    return a1, a2, data, row_weight, gain


def test_baseline_period_finds_the_repeating_layout_only():
    a1, a2 = layout()
    assert baseline_period(a1, a2) == len(a1) // N_TIME
    shuffled = np.random.default_rng(0).permutation(len(a1))
    assert baseline_period(a1[shuffled], a2[shuffled]) == 0


def test_unflagged_window_matches_the_textbook_and_the_general_path(sample):
    a1, a2, data, row_weight, gain = sample
    no_flag = np.zeros(data.shape, bool)
    good = np.zeros(gain.shape, bool)
    want_v, want_w = textbook(data, no_flag, row_weight[:, None, :], gain, good, a1, a2)
    gg, n = baseline_gains(gain, good, a1, a2)
    fast = calibrate_and_bin(data.copy(), no_flag, BIN, row_weight=row_weight, gg=gg, n_baselines=n)
    general = calibrate_and_bin(
        data.copy(), no_flag, BIN, weight=np.repeat(row_weight[:, None, :], N_CHAN, axis=1), gg=gg, n_baselines=n
    )
    for got_v, got_w, got_f in (fast, general):
        np.testing.assert_allclose(got_v, want_v, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(got_w, want_w, rtol=2e-5)
        assert not got_f.any()
    uncalibrated = calibrate_and_bin(data.copy(), no_flag, BIN, row_weight=row_weight)  # no tables: a plain mean
    np.testing.assert_allclose(
        uncalibrated[0], data.reshape(len(a1), N_CHAN // BIN, BIN, N_POL).mean(axis=2), rtol=2e-5, atol=1e-6
    )
    np.testing.assert_allclose(uncalibrated[1], BIN * row_weight[:, None, :].repeat(N_CHAN // BIN, axis=1), rtol=1e-6)


def test_flags_nans_and_failed_solutions_carry_no_weight(sample):
    a1, a2, data, row_weight, gain = sample
    rng = np.random.default_rng(4)
    flag = rng.random(data.shape) < 0.2
    flag[5, :BIN, 0] = True  # a whole bin flagged
    data[7, 4, 1] = np.nan
    gain_flag = np.zeros(gain.shape, bool)
    gain_flag[2, :, :] = True  # antenna 2's solution failed
    want_v, want_w = textbook(data, flag, row_weight[:, None, :], gain, gain_flag, a1, a2)
    gg, n = baseline_gains(gain, gain_flag, a1, a2)
    v, w, f = calibrate_and_bin(data.copy(), flag, BIN, row_weight=row_weight, gg=gg, n_baselines=n)
    np.testing.assert_allclose(v, want_v, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(w, want_w, rtol=2e-5, atol=1e-7)
    assert np.isfinite(v).all()
    assert f[5, 0, 0] and v[5, 0, 0] == 0
    on_2 = (a1 == 2) | (a2 == 2)
    assert f[on_2].all() and not f[~on_2].all(axis=(1, 2)).any()


def test_whole_rows_flagged_take_the_fast_path_with_the_same_answer(sample):
    """Autocorrelations and dead antennas flag whole rows: those fold into the row weights."""
    a1, a2, data, row_weight, gain = sample
    flag = np.zeros(data.shape, bool)
    flag[a1 == a2] = True  # the converter flags the autocorrelations
    flag[(a1 == 4) | (a2 == 4)] = True  # and a dead antenna
    good = np.zeros(gain.shape, bool)
    want_v, want_w = textbook(data, flag, row_weight[:, None, :], gain, good, a1, a2)
    gg, n = baseline_gains(gain, good, a1, a2)
    v, w, f = calibrate_and_bin(data.copy(), flag, BIN, row_weight=row_weight, gg=gg, n_baselines=n)
    np.testing.assert_allclose(v, want_v, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(w, want_w, rtol=2e-5, atol=1e-7)
    np.testing.assert_array_equal(f, flag.reshape(len(a1), N_CHAN // BIN, BIN, N_POL).all(axis=2))
    assert (v[flag.all(axis=(1, 2))] == 0).all()
