"""Bandpass QA on synthetic B tables built in numpy: a smooth array, a spiky antenna, a flagged antenna."""

import numpy as np
import pytest

from contimg.calibrate.bandpass_qa import (
    MAX_OUTLIER_ANTENNA_FRACTION,
    bandpass_cube,
    bandpass_qa,
    cell_figures,
    robust_z,
)

N_ANT, N_SPW, N_POL, N_CHAN = 24, 16, 2, 48
NOISE = 0.01  # per-channel solution noise (a per-channel SNR of 100)


def smooth_array(seed=1):
    """Bandpasses like the simulator's (a gain, a 1.5-cycle ripple per subband) plus white solution noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, N_CHAN)
    ripple = rng.uniform(0, 2 * np.pi, (N_ANT, 1, N_POL, 1))
    amp = rng.uniform(0.8, 1.2, (N_ANT, 1, N_POL, 1)) * (1 + 0.05 * np.sin(2 * np.pi * 1.5 * x + ripple))
    phase = rng.uniform(-np.pi, np.pi, (N_ANT, 1, N_POL, 1)) + np.radians(5) * np.sin(2 * np.pi * x + ripple)
    g = amp * np.exp(1j * phase) * np.ones((1, N_SPW, 1, 1))
    g = g + NOISE * (rng.standard_normal(g.shape) + 1j * rng.standard_normal(g.shape)) / np.sqrt(2)
    return g, np.zeros(g.shape, bool), list(range(100, 100 + N_ANT))


def test_roughness_of_white_noise_is_the_textbook_second_difference():
    # the second difference of white noise of std s has std sqrt(1 + 4 + 1) s; independent of the code
    rng = np.random.default_rng(2)
    s = 0.02
    g = 1.0 + s * rng.standard_normal((200, N_POL, N_CHAN))  # real, positive: amplitude noise only
    frac, amp_r, ph_r = cell_figures(g.astype(complex), np.zeros(g.shape, bool))
    assert np.all(frac == 0) and np.allclose(ph_r, 0, atol=1e-6)
    assert np.sqrt(np.mean(amp_r**2)) == pytest.approx(np.sqrt(6) * s, rel=0.03)
    ph = np.exp(1j * np.radians(3.0) * rng.standard_normal((200, N_POL, N_CHAN)))  # phase noise of 3 deg
    _, _, ph_r = cell_figures(ph, np.zeros(ph.shape, bool))
    assert np.sqrt(np.mean(ph_r**2)) == pytest.approx(np.sqrt(6) * 3.0, rel=0.03)


def test_a_smooth_array_passes_with_no_outlier():
    g, f, ants = smooth_array()
    qa = bandpass_qa(g, f, ants)
    assert qa.ok and qa.problems == [] and qa.outlier_antennas == [] and qa.outlier_cells == []
    assert qa.flagged_fraction == 0 and qa.antennas == ants
    # the ripple's own second difference is (2 pi 1.5 / 47)^2 x 5 % ~ 2e-3: the noise dominates; its radial
    # part has std NOISE / sqrt(2) on amplitudes ~1, so sqrt(6) NOISE / sqrt(2)
    assert qa.median_amp_roughness == pytest.approx(np.sqrt(3) * NOISE, rel=0.15)


def test_a_spiky_antenna_and_a_flagged_antenna_are_outliers_but_the_set_passes():
    g, f, ants = smooth_array()
    rng = np.random.default_rng(3)
    spiky, flagged, dead_ant, dead_spw = 5, 9, 14, 7
    g[spiky, :, :, ::6] *= 1 + 0.2 * rng.standard_normal(g[spiky, :, :, ::6].shape)  # spikes every 6th channel
    f[flagged] = rng.random(f[flagged].shape) < 0.6  # heavily flagged
    g[dead_ant, dead_spw] = 0.05 * (rng.standard_normal((N_POL, N_CHAN)) + 1j * rng.standard_normal((N_POL, N_CHAN)))
    qa = bandpass_qa(g, f, ants)
    assert qa.outlier_antennas == [ants[spiky], ants[flagged], ants[dead_ant]]
    assert [ants[dead_ant], dead_spw] in qa.outlier_cells  # a solve on noise in one subband: its cell stands out
    assert all(a in (ants[spiky], ants[flagged], ants[dead_ant]) for a, _ in qa.outlier_cells)
    assert qa.ok, "3 of 24 antennas: listed, not a failed set"
    assert qa.antenna_flagged_fraction[flagged] == pytest.approx(f[flagged].mean())
    assert qa.flagged_fraction == pytest.approx(f.mean())


def test_too_many_outlier_antennas_or_a_rough_array_fail_the_set():
    g, f, ants = smooth_array()
    n_bad = int(MAX_OUTLIER_ANTENNA_FRACTION * N_ANT) + 1
    f[:n_bad, :, :, : N_CHAN // 2] = True  # half the band flagged on too many antennas
    qa = bandpass_qa(g, f, ants)
    assert not qa.ok and qa.outlier_antennas == ants[:n_bad]
    assert qa.problems[0].startswith(f"bandpass: {n_bad} of {N_ANT} antennas are outliers")

    g, f, ants = smooth_array()
    rng = np.random.default_rng(4)
    g = g * np.exp(1j * np.radians(20) * rng.standard_normal(g.shape))  # a solve on noise: 20 deg per channel
    qa = bandpass_qa(g, f, ants)
    assert not qa.ok and any("median phase roughness" in p for p in qa.problems)
    assert qa.outlier_antennas == [], "every antenna alike: the array, not an antenna, is bad"


def test_cube_from_table_rows_and_bad_shapes():
    g, f, ants = smooth_array()
    # as casatools reads a B table: (pol, chan, row), one row per (antenna, spw), rows of antennas without data too
    rows = [(a, s) for s in range(N_SPW) for a in range(90, 130)]
    cparam = np.ones((N_POL, N_CHAN, len(rows)), complex)
    flag = np.ones(cparam.shape, bool)
    for r, (a, s) in enumerate(rows):
        if a in ants:
            cparam[:, :, r], flag[:, :, r] = g[ants.index(a), s], f[ants.index(a), s]
    gc, fc = bandpass_cube(cparam, flag, np.array([a for a, _ in rows]), np.array([s for _, s in rows]), ants)
    assert np.array_equal(gc, g) and np.array_equal(fc, f)
    with pytest.raises(ValueError, match="antenna, spw"):
        bandpass_cube(cparam, flag, np.array([a for a, _ in rows]), np.zeros(3, int), ants)
    with pytest.raises(ValueError, match="antenna, spw, pol, chan"):
        bandpass_qa(g[:, 0], f[:, 0], ants)


def test_robust_z_floors_keep_identical_antennas_from_being_outliers():
    assert np.allclose(robust_z(np.array([0.0, 0.0, 0.0, 0.01]), abs_floor=0.05), [0, 0, 0, 0.2])
    z = robust_z(np.array([1.0, 1.1, 0.9, 1.0, np.nan, 3.0]), rel_floor=0.1)
    assert np.isnan(z[4]) and z[5] > 5 and abs(z[0]) < 1e-12


def test_bandpass_plot_has_a_panel_pair_per_antenna_and_marks_outliers_in_red(tmp_path):
    import matplotlib.image

    from contimg.calibrate.job.quality import PANEL_COLUMNS, _draw_panels

    g, f, ants = smooth_array()
    freqs = [1.311e9 + (N_SPW - 1 - s) * 11.72e6 + 244e3 * np.arange(N_CHAN) for s in range(N_SPW)]
    pure_red = []
    for spoil in (False, True):
        if spoil:
            f[3] = True  # wholly flagged: an outlier
        png = tmp_path / f"{spoil}.bandpass.png"
        _draw_panels(g, f, freqs, ants, png, "s.B", bandpass_qa(g, f, ants))
        img = matplotlib.image.imread(png)  # (height, width, RGBA) in 0..1
        assert not list(tmp_path.glob("*.tmp.png")), "written atomically"
        rows = -(-N_ANT // PANEL_COLUMNS)
        assert img.shape[:2] == (round(80 * (1.5 * rows + 0.5)), 80 * 1.6 * PANEL_COLUMNS)
        # pure red (frames, title), antialiased: R ~1 with G, B below 0.6; the Y lines' tab:red (0.84, 0.15, 0.16)
        # only reaches R > 0.95 blended with >= 70 % white, G > 0.7
        pure_red.append(int(np.sum((img[..., 0] > 0.95) & (img[..., 1] < 0.6) & (img[..., 2] < 0.6))))
    assert pure_red[0] == 0 and pure_red[1] > 100, pure_red  # the outlier's frames and title
