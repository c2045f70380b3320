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


@pytest.mark.parametrize("after", [True, False])
def test_b_and_a_time_binned_g_calibrate_a_chunk_outside_their_span_to_the_true_visibilities(after):
    """A B table (one solve) and a G table with several ~60 s bins per antenna and SPW, laid out as CASA
    writes them (time-major), applied as load_gains does to a chunk after (before) their span: the
    visibilities come back as the textbook V / (g_i conj g_j) with g = B x G of the last (first) bin.

    Every bin's G differs (and the others are far from the wanted one), so folding several G rows of one
    antenna into the product, or picking another bin, misses the true visibilities by factors."""
    from contimg.image.applycal import fold_solutions, nearest_solutions

    rng = np.random.default_rng(11)
    n_spw, n_bins = 2, 4
    a1, a2 = layout()

    def phasor(amp_lo, amp_hi, shape):
        return rng.uniform(amp_lo, amp_hi, shape) * np.exp(1j * rng.uniform(-3, 3, shape))

    # CASA's layout: CPARAM (npol, nchan, row); B one row per (spw, antenna), G one per (time, spw, antenna)
    b_ant, b_spw = np.tile(np.arange(N_ANT), n_spw), np.repeat(np.arange(n_spw), N_ANT)
    b = phasor(0.7, 1.3, (N_POL, N_CHAN, b_ant.size)).astype(np.complex64)
    g_ant, g_spw = np.tile(b_ant, n_bins), np.tile(b_spw, n_bins)
    g_time = 5.0e9 + 60.0 * np.repeat(np.arange(n_bins), b_ant.size)
    g_amp = np.repeat([0.2, 3.0, 0.3, 1.0] if after else [1.0, 0.3, 3.0, 0.2], b_ant.size)
    g = (g_amp * phasor(0.9, 1.1, (N_POL, 1, g_ant.size))).astype(np.complex64)
    wanted_bin = n_bins - 1 if after else 0

    # the truth per SPW: g_ant = B(ant, chan) x G(ant) of the wanted bin, as (ant, chan, pol)
    true_gain = []
    for k in range(n_spw):
        rows_b = np.flatnonzero(b_spw == k)[np.argsort(b_ant[b_spw == k])]
        sel = (g_spw == k) & (g_time == g_time.min() + 60.0 * wanted_bin)
        rows_g = np.flatnonzero(sel)[np.argsort(g_ant[sel])]
        true_gain.append(b[:, :, rows_b].T * g[:, :, rows_g].T)
    # the chunk: DATA = g_i conj(g_j) V, for the true V of each SPW
    shape = (len(a1), N_CHAN, N_POL)
    row_weight = rng.uniform(0.5, 2.0, (len(a1), N_POL)).astype(np.float32)
    v_true = [(rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64) for _ in range(n_spw)]
    data = [gk[a1] * np.conj(gk[a2]) * v for gk, v in zip(true_gain, v_true, strict=True)]

    gains = [np.ones((N_ANT, N_CHAN, N_POL), np.complex64) for _ in range(n_spw)]
    gain_flags = [np.zeros((N_ANT, N_CHAN, N_POL), bool) for _ in range(n_spw)]
    fold_solutions(gains, gain_flags, b, np.zeros(b.shape, bool), b_ant, b_spw)
    keep = nearest_solutions(g_ant, g_spw, g_time, after=after)
    assert keep.size == b_ant.size  # one G row per antenna and SPW
    fold_solutions(gains, gain_flags, g[:, :, keep], np.zeros((N_POL, 1, keep.size), bool), g_ant[keep], g_spw[keep])

    no_flag = np.zeros(shape, bool)
    for k in range(n_spw):
        want_v, want_w = textbook(
            data[k], no_flag, row_weight[:, None, :], true_gain[k], np.zeros(true_gain[k].shape, bool), a1, a2
        )
        # the averaged true visibilities themselves, weighted by w |g_i g_j|^2 (the textbook's own check)
        w = row_weight[:, None, :] * np.abs(true_gain[k][a1] * np.conj(true_gain[k][a2])) ** 2
        v_bin = (w * v_true[k]).reshape(len(a1), N_CHAN // BIN, BIN, N_POL).sum(axis=2) / want_w
        np.testing.assert_allclose(want_v, v_bin, rtol=1e-4, atol=1e-5)
        gg, n = baseline_gains(gains[k], gain_flags[k], a1, a2)
        got_v, got_w, got_f = calibrate_and_bin(
            data[k].copy(), no_flag, BIN, row_weight=row_weight, gg=gg, n_baselines=n
        )
        np.testing.assert_allclose(got_v, want_v, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-4)
        assert not got_f.any()
