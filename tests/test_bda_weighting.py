"""Per-baseline time averaging and Briggs weights of the imaging copy (pure numpy, no CASA).

Each check compares with an independent computation: a numerical average of the visibility phase,
a direct Fourier sum at the source, a Monte Carlo of the weighted noise.
"""

import numpy as np
import pytest

from contimg.image.bda import plan_time_averaging
from contimg.image.rules import baseline_time_bins, time_smearing_loss
from contimg.image.weighting import briggs_weighting, noise_factor
from tests.geometry import textbook_uvw

C = 299_792_458.0
OMEGA = 7.2921159e-5


def test_time_smearing_loss_matches_a_numerical_average_of_the_phase():
    """A uv track turning at rate rho (wavelengths/s) for T seconds: a source at radius r in the
    direction of motion sees its phase ramp by 2 pi rho r T; its peak is the mean of cos over the ramp."""
    r = np.radians(1.5)
    for rho, T in ((0.05, 12.9), (0.6, 12.9), (0.3, 60.0)):
        t = np.linspace(-T / 2, T / 2, 20001)
        numeric = 1.0 - np.mean(np.cos(2 * np.pi * rho * r * t))
        assert time_smearing_loss(rho, 0.0, T, r) == pytest.approx(numeric, rel=1e-3, abs=1e-7)
    assert time_smearing_loss(0.0, 0.0, 300.0, r) == 0.0


def test_time_bins_grow_as_baselines_shorten_and_keep_the_loss():
    rates = np.array([0.66, 0.3, 0.1, 0.02, 0.0])  # wavelengths/s: the longest DSA-110 baseline first
    r, T = np.radians(1.4), 12.88
    bins = baseline_time_bins(rates, 0 * rates, T, 24, r, max_loss=0.03)
    assert bins[0] == 1, "the longest baseline already smears more than 3 % in one integration: kept"
    assert np.all(np.diff(bins) >= 0) and bins[-1] == 24
    for k, rate in zip(bins, rates, strict=True):
        if k > 1:
            assert time_smearing_loss(rate, 0, k * T, r) <= 0.03
        if k < 24 and time_smearing_loss(rate, 0, T, r) <= 0.03:
            assert time_smearing_loss(rate, 0, (k + 1) * T, r) > 0.03


def _drift_rows(n_t=24, n_ant=12, seed=1, offset_s=0.0):
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(n_ant) < 2 * n_ant // 3, 60.0, 1300.0)  # a compact core and a few far antennas
    xyz = np.array([rng.uniform(-1, 1, n_ant) * spread, rng.uniform(-1, 1, n_ant) * spread, rng.uniform(-5, 5, n_ant)])
    a1, a2 = np.triu_indices(n_ant, k=1)
    dt = 12.88
    ha = ((np.arange(n_t) - (n_t - 1) / 2) * dt + offset_s) * OMEGA
    dec = np.radians(55.0)
    uvw = np.concatenate([textbook_uvw(xyz[:, a2] - xyz[:, a1], h, dec) for h in ha], axis=1)
    n_bl = a1.size
    rows = {
        "TIME": np.repeat(5e9 + offset_s + np.arange(n_t) * dt, n_bl),
        "INTERVAL": np.full(n_t * n_bl, dt),
        "EXPOSURE": np.full(n_t * n_bl, dt),
        "UVW": uvw,
        "ANTENNA1": np.tile(a1, n_t),
        "ANTENNA2": np.tile(a2, n_t),
        "DATA_DESC_ID": np.zeros(n_t * n_bl, int),
        "FIELD_ID": np.zeros(n_t * n_bl, int),
        "SCAN_NUMBER": np.ones(n_t * n_bl, int),
    }
    return rows


def _peak(rows, data, wsum, freqs, lmn):
    """Direct Fourier sum at direction (l, m, n-1): the image's value there, natural weighting."""
    phase = 2 * np.pi * np.einsum("jr,j->r", rows["UVW"], lmn)[None, :] * freqs[:, None] / C
    w = wsum[:, :, 0].T  # (chan, row)
    return float(np.sum(w * (data[:, :, 0].T * np.exp(-1j * phase)).real) / np.sum(w))


def test_per_baseline_averaging_keeps_a_source_at_the_half_power_radius():
    """A 1 Jy source 1.4 deg off centre, sampled in each integration; after averaging, its peak in a
    direct Fourier sum on the averaged uvw loses no more than the allowed 3 %, weights add up, and
    the longest baselines keep their integrations."""
    rows = _drift_rows()
    freqs = np.linspace(1.311e9, 1.499e9, 8)
    r = np.radians(1.4)
    lmn = np.array([r * np.cos(0.6), r * np.sin(0.6), np.sqrt(1 - r * r) - 1])
    phase = 2 * np.pi * np.einsum("jr,j->r", rows["UVW"], lmn)[None, :] * freqs[:, None] / C
    data = np.repeat(np.exp(1j * phase).T[:, :, None], 2, axis=2).astype(np.complex64)  # (row, chan, pol)
    wsum = np.ones(data.shape, np.float32)
    plan = plan_time_averaging(rows, freqs.max(), r, max_loss=0.03)
    out, (avg, w, flags), figures = plan.rows(rows), plan.average(data, wsum), plan.figures
    assert figures["rows_out"] < 0.8 * figures["rows_in"] and figures["max_bin"] > 1
    assert w.sum() == pytest.approx(wsum.sum()) and not flags.any()
    assert np.sum(out["EXPOSURE"]) == pytest.approx(np.sum(rows["EXPOSURE"]))
    before = _peak(rows, data, wsum, freqs, lmn)
    after = _peak(out, avg, w, freqs, lmn)
    assert before == pytest.approx(1.0, abs=1e-5)
    assert 0.97 <= after <= 1.0
    assert np.all(np.diff(out["TIME"]) >= 0), "rows come out in time order"
    first = rows["TIME"] == rows["TIME"][0]
    longest = np.argmax(np.linalg.norm(rows["UVW"][:, first], axis=0))
    pair = (rows["ANTENNA1"][first][longest], rows["ANTENNA2"][first][longest])
    kept = (out["ANTENNA1"] == pair[0]) & (out["ANTENNA2"] == pair[1])
    assert kept.sum() == 24, "a 2 km baseline smears more than 3 % in one integration: all 24 kept"
    none = plan_time_averaging(rows, freqs.max(), r, max_loss=0.0).figures
    assert none["rows_out"] == none["rows_in"], "max_loss 0: nothing averaged"


def test_one_plan_serves_subbands_whose_rows_line_up():
    """The imaging copy plans the averaging on the first subband's rows and applies it to every
    subband: another subband, stamped 3 s later (its uv tracks moved on), still keeps the source at
    the half-power radius within the allowed loss, on its own averaged rows."""
    freqs = np.linspace(1.311e9, 1.499e9, 8)
    r = np.radians(1.4)
    lmn = np.array([r * np.cos(0.6), r * np.sin(0.6), np.sqrt(1 - r * r) - 1])
    plan = plan_time_averaging(_drift_rows(), freqs.max(), r, max_loss=0.03)
    later = _drift_rows(offset_s=3.0)
    phase = 2 * np.pi * np.einsum("jr,j->r", later["UVW"], lmn)[None, :] * freqs[:, None] / C
    data = np.repeat(np.exp(1j * phase).T[:, :, None], 2, axis=2).astype(np.complex64)
    wsum = np.ones(data.shape, np.float32)
    out = plan.rows(later)
    avg, w, flags = plan.average(data, wsum)
    assert avg.shape[0] == plan.figures["rows_out"] < 0.8 * plan.figures["rows_in"]
    assert w.sum() == pytest.approx(wsum.sum()) and not flags.any()
    assert 0.97 <= _peak(out, avg, w, freqs, lmn) <= 1.0
    assert np.all(np.diff(out["TIME"]) >= 0), "rows come out in time order"


def test_averaging_never_joins_a_time_gap_or_flagged_samples():
    rows = _drift_rows(n_t=6, n_ant=4)
    n_bl = 6
    keep = np.ones(rows["TIME"].size, bool)
    keep[3 * n_bl : 4 * n_bl] = False  # the fourth integration is missing
    rows = {c: v[..., keep] for c, v in rows.items()}
    data = np.ones((keep.sum(), 4, 2), np.complex64)
    wsum = np.ones(data.shape, np.float32)
    wsum[:n_bl] = 0  # the first integration flagged
    data[:n_bl] = 100.0  # whatever a flagged sample holds must not leak in
    plan = plan_time_averaging(rows, 1.5e9, np.radians(1.0), max_loss=0.5)
    out, (avg, w, _) = plan.rows(rows), plan.average(data, wsum)
    times = np.unique(rows["TIME"])  # the gap lies between times[2] and times[3]
    assert not np.any((out["TIME"] > times[2]) & (out["TIME"] < times[3])), "no group spans the gap"
    assert np.allclose(avg[w > 0], 1.0)
    assert w.sum() == pytest.approx(wsum.sum())


def _random_uv(n, seed=0):
    rng = np.random.default_rng(seed)
    r = np.abs(rng.normal(0, 3000, n)) + 20  # dense in the middle, like a real array
    a = rng.uniform(0, 2 * np.pi, n)
    return r * np.cos(a), r * np.sin(a), rng.uniform(0.5, 2.0, n)


def test_briggs_limits_are_natural_and_uniform():
    u, v, w = _random_uv(20000)
    cell, n = 40.0, 512
    nat = briggs_weighting(u, v, w, cell, n, robust=5.0)[0]
    assert np.ptp(nat) / nat.max() < 1e-2, "robust +5: natural weighting (a constant factor)"
    uni = briggs_weighting(u, v, w, cell, n, robust=-5.0)[0]
    # uniform: the summed imaging weight is the same in every occupied cell (sample + conjugate grid)
    iu, iv = np.rint(u / cell).astype(int), np.rint(v / cell).astype(int)
    cells = {}
    for a, b, x in zip(iu, iv, w * uni, strict=True):
        cells[(a, b)] = cells.get((a, b), 0.0) + x
        cells[(-a, -b)] = cells.get((-a, -b), 0.0) + x
    sums = np.array([x for (a, b), x in cells.items() if max(abs(a), abs(b)) < n // 2 - 1])  # on the grid
    assert np.ptp(sums) / sums.mean() < 0.02


def test_briggs_weights_do_not_depend_on_how_a_cell_is_split_into_samples():
    """Averaging in time merges samples within a uv cell: the imaging weight of the cell is unchanged."""
    u, v, w = _random_uv(5000, seed=3)
    cell, n = 40.0, 512
    split_u, split_v, split_w = np.r_[u, u], np.r_[v, v], np.r_[w, w] / 2  # every sample as two halves
    whole = briggs_weighting(u, v, w, cell, n, robust=0.0)[0] * w
    halves = briggs_weighting(split_u, split_v, split_w, cell, n, robust=0.0)[0] * split_w
    assert np.allclose(halves[:5000] + halves[5000:], whole, rtol=1e-9)


def test_noise_factor_matches_a_monte_carlo_of_the_weighted_sum():
    rng = np.random.default_rng(5)
    u, v, w = _random_uv(4000, seed=5)
    d = briggs_weighting(u, v, w, 40.0, 512, robust=0.0)[0]
    sigma = 1.0 / np.sqrt(w)  # natural weight = 1 / variance
    trials = rng.normal(0, 1, (4000, w.size)) * sigma
    natural = (trials @ w) / w.sum()
    briggs = (trials @ (w * d)) / (w * d).sum()
    assert noise_factor(w, d) == pytest.approx(briggs.std() / natural.std(), rel=0.05)
    assert noise_factor(w, d) > 1.0


def test_effective_uv_cells_set_the_psf_rms():
    """The PSF of the imaging weights (an FFT of their uv grid, sample and conjugate) has an rms over the
    image of 1 / sqrt(effective uv cells) (Parseval): the figure that picks WSClean's minor-loop depth."""
    u, v, w = _random_uv(6000, seed=9)
    cell, n = 40.0, 256
    keep = np.hypot(u, v) < 0.45 * n * cell  # on the grid, as an image's uv plane always is
    u, v, w = u[keep], v[keep], w[keep]
    rows = []
    for robust in (-5.0, 0.0, 5.0):
        factor, cells, _ = briggs_weighting(u, v, w, cell, n, robust)
        grid = np.zeros((n, n))
        iu, iv = np.rint(u / cell).astype(int), np.rint(v / cell).astype(int)
        for sign in (1, -1):
            x, y = sign * iu + n // 2, sign * iv + n // 2
            inside = (x >= 0) & (x < n) & (y >= 0) & (y < n)
            np.add.at(grid, (y[inside], x[inside]), (w * factor)[inside])
        psf = np.fft.fft2(np.fft.ifftshift(grid)).real
        psf /= psf[0, 0]
        assert np.sqrt(np.mean(psf**2)) == pytest.approx(1 / np.sqrt(cells), rel=1e-6), robust
        rows.append(cells)
    assert rows[0] > rows[1] > rows[2], "uniform weighting spreads the weight over the most cells"


def _textbook_briggs(u_wl, v_wl, w, cell, n, robust):
    """Briggs (1995) written out with a dict of uv cells: W_k over sample and conjugate, f^2, w / (1 + W_k f^2)."""
    iu, iv = np.rint(u_wl / cell).astype(int), np.rint(v_wl / cell).astype(int)
    on = (np.abs(iu) <= (n - 1) // 2) & (np.abs(iv) <= (n - 1) // 2)
    cells = {}
    for a, b, x in zip(iu[on], iv[on], w[on], strict=True):
        cells[(a, b)] = cells.get((a, b), 0.0) + x
        cells[(-a, -b)] = cells.get((-a, -b), 0.0) + x
    sums = np.array(list(cells.values()))
    f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (np.sum(sums**2) / np.sum(sums))
    return np.array([1.0 / (1.0 + cells[(a, b)] * f2) if o else 1.0 for a, b, o in zip(iu, iv, on, strict=True)])


def test_briggs_weighting_by_rows_and_channels_is_the_textbook_weighting(monkeypatch):
    """The image job's path: samples as rows (u, v in metres) times channels (frequency / c), in two parts of
    different channels sharing one grid, taken in many small blocks on two threads."""
    from contimg.image import weighting

    monkeypatch.setattr(weighting, "BLOCK_SAMPLES", 50)  # blocks of a few rows, not one
    rng = np.random.default_rng(11)
    parts = []
    for n_rows, freqs in ((300, np.linspace(1.31e9, 1.40e9, 8)), (200, np.linspace(1.41e9, 1.50e9, 5))):
        u_m, v_m, _ = _random_uv(n_rows, seed=n_rows)
        w = rng.uniform(0.5, 2.0, (n_rows, len(freqs))) * (rng.uniform(size=(n_rows, len(freqs))) > 0.1)
        parts.append((u_m / 20.0, v_m / 20.0, freqs / C, w))
    cell, n = 3.0, 512  # some samples beyond the grid's edge: factor 1, counted nowhere
    factors, _, _ = weighting.briggs_weighting_rows(parts, cell, n, 0.0, threads=2)
    flat = [np.concatenate([np.multiply.outer(p[i], p[2]).ravel() for p in parts]) for i in (0, 1)]
    expected = _textbook_briggs(*flat, np.concatenate([p[3].ravel() for p in parts]), cell, n, 0.0)
    assert np.mean(expected == 1.0) > 0.01, "the test reaches beyond the grid"
    np.testing.assert_allclose(np.concatenate([f.ravel() for f in factors]), expected, rtol=1e-12)


def test_noise_factor_of_an_image_in_parts_is_that_of_the_parts_joined():
    rng = np.random.default_rng(2)
    w = [rng.uniform(0.1, 2.0, (30, 4)).astype(np.float32), rng.uniform(0.1, 2.0, (20, 6)).astype(np.float32)]
    d = [rng.uniform(0.2, 1.0, a.shape) for a in w]
    joined = noise_factor(np.concatenate([a.ravel() for a in w]), np.concatenate([a.ravel() for a in d]))
    assert noise_factor(w, d) == pytest.approx(joined, rel=1e-12)
    # and the formula itself: sqrt(sum w sum w d^2) / sum w d
    ww, dd = (np.concatenate([a.ravel() for a in x]).astype(float) for x in (w, d))
    assert joined == pytest.approx(np.sqrt(ww.sum() * (ww * dd * dd).sum()) / (ww * dd).sum(), rel=1e-12)
