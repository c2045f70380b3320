"""Pure pieces of the calibration solve: the RFI pass and the calibrator-centred time average."""

import warnings

import numpy as np
import pytest

from contimg.calibrate.calavg import (
    average_bins,
    average_in_time,
    cell_rows,
    exact_median,
    grid_index,
    on_grid,
    rotate_to,
    solution_snr_per_integration,
)
from contimg.calibrate.rfi import _nanmedian, _running_median, flag_outliers


def test_rfi_pass_flags_narrowband_and_burst_rfi_and_spares_noise():
    rng = np.random.default_rng(3)
    nt, nbl, nchan, npol = 24, 60, 48, 2
    bandpass = 1.0 + 0.2 * np.sin(np.linspace(0, 3, nchan))[None, None, :, None]
    amp = (10.0 * bandpass + rng.normal(0, 0.1, (nt, nbl, nchan, npol))).astype(np.float32)
    amp[:, 3, 10, :] += 2.0  # a narrowband line on one baseline, all times (20 sigma)
    amp[5, 7, :, :] += 1.5  # a broadband burst on another baseline (15 sigma)
    flags = np.zeros(amp.shape, bool)
    flags[:, 11] = True  # an already flagged baseline stays flagged
    out = flag_outliers(amp, flags)
    assert out[:, 3, 10, :].all() and out[5, 7, :, :].all() and out[:, 11].all()
    clean = np.ones(amp.shape, bool)
    clean[:, [3, 7, 11]] = False
    assert out[clean].mean() < 1e-3
    assert not flags[:, 3].any()  # inputs untouched


def test_rfi_pass_judges_each_baseline_on_its_own():
    """Baselines wholly flagged, partly flagged (with NaN) and unflagged, flagged together, get what each gets alone:
    no statistic may leak from one baseline to another, whichever way they are grouped."""
    rng = np.random.default_rng(8)
    nt, nbl, nchan, npol = 24, 12, 16, 2
    amp = (5.0 + rng.normal(0, 0.1, (nt, nbl, nchan, npol))).astype(np.float32)
    amp[:, 2, 4] += 3.0  # a line
    amp[9, 5] += 2.0  # a burst
    amp[:, 8] *= 40.0  # a much brighter baseline: its noise must not set the others' threshold
    amp[3, 6, 7, 0] = np.nan
    flags = np.zeros(amp.shape, bool)
    flags[:, [0, 10]] = True  # autocorrelation-like: wholly flagged
    flags[rng.random(amp.shape) < 0.02] = True  # scattered, on every baseline ...
    flags[:, [1, 3, 4, 7, 9, 11]] = False  # ... but these
    together = flag_outliers(amp, flags)
    alone = np.concatenate([flag_outliers(amp[:, [b]], flags[:, [b]]) for b in range(nbl)], axis=1)
    assert np.array_equal(together, alone)
    assert together[:, 2, 4].all() and together[9, 5].all() and together[:, [0, 10]].all()


def test_time_average_is_the_weighted_mean_per_baseline_and_ignores_flags_and_nans():
    rng = np.random.default_rng(4)
    nt, ants = 6, [(0, 1), (0, 2), (1, 2)]
    a1 = np.array([a for _ in range(nt) for a, _ in ants])
    a2 = np.array([b for _ in range(nt) for _, b in ants])
    t = np.repeat(np.arange(nt) * 12.0, len(ants))
    data = (rng.normal(size=(len(t), 4, 2)) + 1j * rng.normal(size=(len(t), 4, 2))).astype(np.complex64)
    weight = rng.uniform(0.5, 2.0, data.shape).astype(np.float32)
    flags = np.zeros(data.shape, bool)
    flags[0, 1, 0] = True
    data[4, 2, 1] = np.nan
    times, t_idx, baselines, b_idx, first = grid_index(t, a1, a2)
    assert len(times) == nt and baselines.tolist() == [list(p) for p in ants] and first.tolist() == [0, 1, 2]
    vis, wsum = average_in_time(data, weight, flags, b_idx, len(baselines))
    for b in range(3):  # explicit loop: the definition
        rows = np.flatnonzero(b_idx == b)
        for c in range(4):
            for p in range(2):
                ok = [r for r in rows if not flags[r, c, p] and np.isfinite(data[r, c, p])]
                w = weight[ok, c, p]
                assert np.isclose(wsum[b, c, p], w.sum(), rtol=1e-6)
                assert np.isclose(vis[b, c, p], np.sum(w * data[ok, c, p]) / w.sum(), atol=1e-6)
    shuffled = np.random.default_rng(5).permutation(len(t))  # rows in any order: the general path
    vis2, wsum2 = average_in_time(data[shuffled], weight[shuffled], flags[shuffled], b_idx[shuffled], len(baselines))
    assert np.allclose(vis2, vis, atol=1e-6) and np.allclose(wsum2, wsum)


def test_rotation_to_the_calibrator_stops_its_fringe():
    # a point source seen with phase centre s0 turns as exp(+2 pi i dw f / c) (MS convention);
    # rotating by the same dw leaves its flux on every row and channel
    freqs = np.linspace(1.31e9, 1.50e9, 48)
    dw = np.linspace(-80.0, 80.0, 500)
    data = (2.5 * np.exp(2j * np.pi * dw[:, None] * freqs[None, :] / 299_792_458.0))[:, :, None].repeat(2, axis=2)
    out = rotate_to(data.astype(np.complex64), dw, freqs)
    assert np.allclose(out, 2.5, atol=2e-4)


def test_rows_on_the_time_baseline_grid_are_a_view_in_the_usual_layout_and_filled_otherwise():
    nt, ants = 4, [(0, 1), (0, 2), (1, 2)]
    a1 = np.array([a for _ in range(nt) for a, _ in ants])
    a2 = np.array([b for _ in range(nt) for _, b in ants])
    t = np.repeat(np.arange(nt) * 12.0, len(ants))
    values = np.arange(len(t) * 2, dtype=np.float32).reshape(len(t), 2)
    times, t_idx, baselines, b_idx, _ = grid_index(t, a1, a2)
    cells = cell_rows(t_idx, b_idx, len(times), len(baselines))
    grid = on_grid(values, cells, -1)
    assert np.shares_memory(grid, values)  # the usual layout: a reshape
    for r in range(len(t)):  # the definition: row r sits at its own time and baseline
        assert np.array_equal(grid[int(t[r] // 12), ants.index((a1[r], a2[r]))], values[r])
    keep = np.flatnonzero(~((a1 == 0) & (a2 == 2) & (t == 24.0)))[::-1]  # one cell missing, rows reversed
    times, t_idx, baselines, b_idx, _ = grid_index(t[keep], a1[keep], a2[keep])
    grid = on_grid(values[keep], cell_rows(t_idx, b_idx, len(times), len(baselines)), -1)
    assert np.all(grid[2, 1] == -1)
    for r in keep:
        if (a1[r], a2[r], t[r]) != (0, 2, 24.0):
            assert np.array_equal(grid[int(t[r] // 12), ants.index((a1[r], a2[r]))], values[r])
    with pytest.raises(ValueError, match="distinct"):
        cell_rows(np.array([0, 0]), np.array([1, 1]), 1, 2)


def test_bin_averages_are_the_weighted_means_of_their_integrations():
    rng = np.random.default_rng(8)
    nt, nbl, nchan, npol = 7, 3, 4, 2
    data = (rng.normal(size=(nt, nbl, nchan, npol)) + 1j * rng.normal(size=(nt, nbl, nchan, npol))).astype(np.complex64)
    weight = rng.uniform(0.5, 2.0, data.shape).astype(np.float32)
    flags = rng.random(data.shape) < 0.2
    flags[:, 2, 1, 0] = True  # a channel flagged at every time: no weight, zero
    data[3, 0, 0, 1] = np.nan
    bin_of_time = np.array([0, 0, 0, 1, 1, 2, 2])
    vis, wsum = average_bins(data, weight, flags, bin_of_time, 3)
    for b in range(3):  # explicit loop: the definition
        ts = np.flatnonzero(bin_of_time == b)
        for k in np.ndindex(nbl, nchan, npol):
            ok = [t for t in ts if not flags[(t, *k)] and np.isfinite(data[(t, *k)])]
            w = np.array([weight[(t, *k)] for t in ok], float)
            d = np.array([data[(t, *k)] for t in ok])
            assert np.isclose(wsum[(b, *k)], w.sum(), rtol=1e-6)
            assert np.isclose(vis[(b, *k)], (w * d).sum() / w.sum() if w.size else 0, atol=1e-6)
    with pytest.raises(ValueError, match="non-decreasing"):
        average_bins(data, weight, flags, bin_of_time[::-1], 3)


def test_solution_snr_follows_the_radiometer_equation():
    # a 2 Jy calibrator, noise sigma per real part: one antenna's solution from one integration has
    # SNR S / (sigma sqrt 2) x sqrt((n_ant - 1) n_chan) (the textbook's, independent of the estimator)
    rng = np.random.default_rng(9)
    n_ant, nt, nchan, sigma = 12, 20, 16, 0.5
    nbl = n_ant * (n_ant - 1) // 2
    noise = rng.normal(0, sigma, (nt, nbl, nchan, 2)) + 1j * rng.normal(0, sigma, (nt, nbl, nchan, 2))
    data = (2.0 + noise).astype(np.complex64)
    flags = np.zeros(data.shape, bool)
    flags[:, 5] = True  # a flagged baseline and a missing integration leave the estimate alone
    flags[7] = True
    got = solution_snr_per_integration(data, flags, n_ant)
    want = 2.0 / (sigma * np.sqrt(2)) * np.sqrt((n_ant - 1) * nchan)
    assert abs(got / want - 1) < 0.03


@pytest.mark.parametrize("n_time", [24, 7])
def test_median_by_sorting_is_numpys_median(n_time):
    rng = np.random.default_rng(10)
    a = rng.normal(size=(n_time, 50, 6, 2)).astype(np.float32)
    assert np.array_equal(_nanmedian(a, (0,)), np.median(a, axis=0, keepdims=True))  # exactly, no NaN
    assert np.array_equal(_nanmedian(a, (2,)), np.median(a, axis=2, keepdims=True))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[:, 3] = np.nan  # a column without data: NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's "All-NaN slice"
        want = np.nanmedian(a, axis=0, keepdims=True)
    assert np.allclose(_nanmedian(a, (0,)), want, equal_nan=True, rtol=1e-6)


def test_exact_median_is_numpys_median():
    rng = np.random.default_rng(11)
    cases = [
        rng.normal(size=1_000_001).astype(np.float32),  # odd
        rng.standard_cauchy(600_000).astype(np.float32),  # even, heavy tails
        np.sort(rng.normal(size=400_000)),  # sorted: the strided sample still brackets
        np.where(np.arange(500_000) % 25 == 0, 1e6, rng.normal(size=500_000)),  # the sample misses: np.median
        rng.normal(size=1000),  # small: np.median
    ]
    for x in cases:
        assert exact_median(x) == np.median(x)


@pytest.mark.parametrize(("nchan", "width"), [(48, 7), (16, 7), (5, 5), (4, 3)])
def test_running_median_is_scipys_median_filter(nchan, width):
    from scipy.ndimage import median_filter

    spec = np.random.default_rng(12).normal(size=(20, nchan, 2)).astype(np.float32)
    assert np.array_equal(_running_median(spec, width), median_filter(spec, size=(1, width, 1), mode="nearest"))
