"""Pure pieces of the calibration solve: the RFI pass and the calibrator-centred time average."""

import numpy as np

from contimg.calibrate.calavg import average_in_time, grid_index, rotate_to
from contimg.calibrate.rfi import flag_outliers


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
