"""The image stage's pure pieces that the image job uses between reading and writing (no CASA):
the imaging copy's parts (contimg.image.parts), the gain products (applycal.fold_solutions), the
imaging plan, the primary-beam correction, the QA verdict and the job's typed report."""

import json

import numpy as np
import pytest

from contimg.image.applycal import fold_solutions
from contimg.image.bda import plan_time_averaging
from contimg.image.imaging_plan import plan_imaging
from contimg.image.parts import (
    CopyPart,
    binned_channels,
    image_grid,
    merge_loss,
    put_briggs_weights,
    restoring_beam,
    windows_as_parts,
    windows_line_up,
)
from contimg.image.pbcor import pb_corrected
from contimg.image.qa import RMS_LIMIT_OVER_EXPECTED, image_verdict, rms_verdict
from contimg.image.report import ImageReport
from contimg.image.rules import ImagingConfig

C_M_S = 299792458.0
ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0
ATOL = 1e-12  # exact arithmetic on small numbers: only rounding differs


def converter_rows(n_ant: int, n_time: int, t0: float = 100.0, dt: float = 10.0, spw: int = 0, uvw_shift=0.0) -> dict:
    """Row columns as casatools lays them out ((..., row)), time-major with baselines a1 <= a2 within
    a time, as the converter writes them; UVW grows with the antenna numbers and the time."""
    pairs = [(a, b) for a in range(n_ant) for b in range(a, n_ant)]
    a1 = np.tile([p[0] for p in pairs], n_time)
    a2 = np.tile([p[1] for p in pairs], n_time)
    t = np.repeat(t0 + dt * np.arange(n_time), len(pairs))
    uvw = np.stack([100.0 * (a2 - a1) + 0.01 * t, 50.0 * (a2 - a1) - 0.02 * t, 1.0 * (a2 - a1)]) + uvw_shift
    n = a1.size
    return {
        "UVW": uvw,
        "TIME": t,
        "TIME_CENTROID": t.copy(),
        "INTERVAL": np.full(n, dt),
        "EXPOSURE": np.full(n, dt),
        "ANTENNA1": a1,
        "ANTENNA2": a2,
        "FEED1": np.zeros(n, int),
        "FEED2": np.zeros(n, int),
        "DATA_DESC_ID": np.full(n, spw),
        "FIELD_ID": np.zeros(n, int),
        "SCAN_NUMBER": np.ones(n, int),
        "STATE_ID": np.zeros(n, int),
        "ARRAY_ID": np.zeros(n, int),
        "OBSERVATION_ID": np.zeros(n, int),
        "PROCESSOR_ID": np.zeros(n, int),
    }


def two_windows(shift_m: float = 0.0):
    """An MS's rows: window 1 (the higher band) first, then window 0, each a contiguous block."""
    w1, w0 = converter_rows(3, 2, spw=1, uvw_shift=shift_m), converter_rows(3, 2, spw=0)
    rows = {c: np.concatenate([w1[c], w0[c]], axis=-1) for c in w0}
    n = w0["TIME"].size
    return rows, {1: np.arange(n), 0: np.arange(n, 2 * n)}, [0, 1]


def test_windows_line_up_only_with_the_same_baselines_in_the_same_order():
    rows, blocks, order = two_windows()
    assert windows_line_up(rows, blocks, order)
    swapped = {c: v.copy() for c, v in rows.items()}
    swapped["ANTENNA2"][blocks[0][[1, 2]]] = swapped["ANTENNA2"][blocks[0][[2, 1]]]
    assert not windows_line_up(swapped, blocks, order)
    assert not windows_line_up(rows, {1: blocks[1], 0: blocks[0][:-1]}, order), "a window with a row fewer"


def test_merge_loss_is_zero_for_identical_uvw_and_none_when_rows_cannot_be_shared():
    rows, blocks, order = two_windows()
    assert merge_loss(rows, blocks, order, [1.3e9, 1.4e9]) == pytest.approx(0.0, abs=ATOL)
    assert merge_loss(rows, {0: blocks[0]}, [0], [1.3e9]) is None, "one window: nothing to merge"
    swapped = {c: v.copy() for c, v in rows.items()}
    swapped["ANTENNA1"][blocks[1][0]] = 2
    assert merge_loss(swapped, blocks, order, [1.3e9, 1.4e9]) is None


def test_merge_loss_of_a_uv_offset_is_the_cosine_loss_at_the_half_power_radius():
    """Window 1 is 1 m off in u and v on every cross row: each window is 1/sqrt(2) m from the mean in
    (u, v); at the half-power radius r (Airy, 4.65 m dish, 1.02 lambda / D at the lower frequency) the
    phase error is 2 pi r / sqrt(2) / lambda, and the loss 1 - the mean of its cosine."""
    shift = np.array([[1.0], [1.0], [0.0]])
    rows, blocks, order = two_windows(shift)
    freqs = [1.3e9, 1.4e9]
    from contimg.core.beam import fwhm_rad

    radius = 0.5 * fwhm_rad(min(freqs))
    turns = np.hypot(0.5, 0.5) * radius * np.array(freqs) / C_M_S
    assert merge_loss(rows, blocks, order, freqs) == pytest.approx(1.0 - np.mean(np.cos(2 * np.pi * turns)), rel=1e-9)


def averaged_windows(rows, blocks, order, n_chan=2):
    """Per window: data = window number + 1j x channel, weights 1, no flags; plans that average nothing."""
    plans, averaged = {}, {}
    for k in order:
        window_rows = {c: v[..., blocks[k]] for c, v in rows.items()}
        plans[k] = plan_time_averaging(window_rows, 1.4e9, 0.01, 0.0)
        n = blocks[k].size
        data = (k + 1j * np.arange(n_chan))[None, :, None] * np.ones((n, 1, 2))
        averaged[k] = (data.astype(np.complex64), np.ones((n, n_chan, 2), np.float32), np.zeros((n, n_chan, 2), bool))
    return plans, averaged


def test_windows_as_parts_merged_share_the_mean_rows_and_stack_channels_in_frequency_order():
    shift = np.array([[2.0], [0.0], [0.0]])
    rows, blocks, order = two_windows(shift)
    plans, averaged = averaged_windows(rows, blocks, order)
    freqs = [np.array([1.30e9, 1.31e9]), np.array([1.40e9, 1.41e9])]
    (part,) = windows_as_parts(rows, None, blocks, order, averaged, plans, freqs, merged=True)
    assert isinstance(part, CopyPart)
    np.testing.assert_array_equal(part.freqs_hz, [1.30e9, 1.31e9, 1.40e9, 1.41e9])
    np.testing.assert_array_equal(part.data.real[0, :, 0], [0, 0, 1, 1])  # window 0's channels, then window 1's
    w0 = {c: v[..., blocks[0]] for c, v in rows.items()}
    np.testing.assert_allclose(part.rows["UVW"], w0["UVW"] + np.array([[1.0], [0.0], [0.0]]), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(part.rows["DATA_DESC_ID"], 0)
    np.testing.assert_array_equal(part.rows["ANTENNA2"], w0["ANTENNA2"])
    assert part.data.shape == part.weights.shape == part.flags.shape == (blocks[0].size, 4, 2)


def test_windows_as_parts_unmerged_keep_each_windows_rows():
    rows, blocks, order = two_windows(np.array([[2.0], [0.0], [0.0]]))
    plans, averaged = averaged_windows(rows, blocks, order)
    freqs = [np.array([1.30e9, 1.31e9]), np.array([1.40e9, 1.41e9])]
    parts = windows_as_parts(rows, None, blocks, order, averaged, plans, freqs, merged=False)
    assert len(parts) == 2
    for part, k, f in zip(parts, order, freqs, strict=True):
        np.testing.assert_allclose(part.rows["UVW"], rows["UVW"][:, blocks[k]], rtol=0, atol=ATOL)
        np.testing.assert_array_equal(part.rows["DATA_DESC_ID"], k)
        np.testing.assert_array_equal(part.freqs_hz, f)
        np.testing.assert_array_equal(part.data.real, k)


def test_binned_channels_average_frequencies_and_add_widths():
    freqs = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])]
    widths = [np.full(4, 1.0), np.full(4, -10.0)]
    (f0, w0), (f1, w1) = binned_channels(freqs, widths, 2)
    np.testing.assert_array_equal(f0, [1.5, 3.5])
    np.testing.assert_array_equal(w0, [2.0, 2.0])
    np.testing.assert_array_equal(f1, [15.0, 35.0])
    np.testing.assert_array_equal(w1, [-20.0, -20.0])  # descending bands keep their sign
    with pytest.raises(ValueError, match=r"chan_bin must be a positive divisor .*\[4\], got 3"):
        binned_channels(freqs, widths, 3)


def part(uvw, a1, a2, flags, freqs):
    n, n_chan = len(a1), len(freqs)
    return CopyPart(
        {"UVW": np.asarray(uvw, float), "ANTENNA1": np.asarray(a1), "ANTENNA2": np.asarray(a2)},
        np.ones((n, n_chan, 2), np.complex64),
        np.ones((n, n_chan, 2), np.float32),
        np.asarray(flags),
        np.asarray(freqs, float),
    )


def test_image_grid_from_the_longest_unflagged_cross_baseline_and_the_band():
    cfg = ImagingConfig(max_size_px=8192, min_size_px=16)
    uvw = [[300.0, 0.0, 0.0], [400.0, 0.0, 0.0], [0.0, 0.0, 2000.0]]  # (u, v, w) x row: 500 m, 0 m, 2000 m
    flags = np.zeros((3, 2, 2), bool)
    flags[2] = True  # the longest baseline is flagged
    parts = [
        part(uvw, [0, 1, 0], [1, 1, 2], flags, [1.30e9, 1.35e9]),
        part([[100.0], [0.0], [0.0]], [0], [2], np.zeros((1, 2, 2), bool), [1.40e9, 1.45e9]),
    ]
    cell, size = image_grid(parts, cfg)
    expected_cell = C_M_S / 1.45e9 / 500.0 * ARCSEC_PER_RAD / cfg.pixels_per_beam  # lambda_min / B_max, 4 px
    assert cell == pytest.approx(round(expected_cell, 4), abs=1e-9)
    # the field: field_fwhm primary-beam FWHMs at the lowest frequency, an even number of cells
    from contimg.core.beam import fwhm_rad

    side_arcsec = cfg.field_fwhm * fwhm_rad(1.30e9) * ARCSEC_PER_RAD
    assert size % 2 == 0 and side_arcsec <= size * cell < side_arcsec + 2 * cell
    all_flagged = [part(uvw, [0, 1, 0], [1, 1, 2], np.ones((3, 2, 2), bool), [1.3e9, 1.35e9])]
    assert image_grid(all_flagged, cfg) == (None, None)


def test_briggs_weights_uniform_limit_equalizes_cells_and_leaves_polarizations_alike():
    """robust -5 is uniform weighting: every uv cell (with its conjugate) ends up with one total
    weight. Two rows share a cell, a third is alone, an autocorrelation counts for nothing."""
    size, cell_arcsec = 64, 60.0
    cell_m = C_M_S / 1.4e9 / (size * cell_arcsec / ARCSEC_PER_RAD)  # one uv cell, in metres at 1.4 GHz
    uvw = [[10 * cell_m, 10 * cell_m, -5 * cell_m, 0.0], [3 * cell_m, 3 * cell_m, 7 * cell_m, 0.0], [0, 0, 0, 0]]
    p = part(uvw, [0, 1, 0, 2], [1, 2, 2, 2], np.zeros((4, 1, 2), bool), [1.4e9])
    p.weights[1] *= 3.0  # the second row of the shared cell weighs 3x the first
    before = p.weights.copy()
    noise, cells, _ = put_briggs_weights([p], size, cell_arcsec, -5.0)
    after = p.weights
    np.testing.assert_array_equal(after[..., 0], after[..., 1])
    shared = after[0, 0, 0] + after[1, 0, 0]
    assert after[2, 0, 0] == pytest.approx(shared, rel=1e-6), "the lone cell weighs what the shared one does"
    assert after[1, 0, 0] / after[0, 0, 0] == pytest.approx(3.0, rel=1e-6), "within a cell, natural ratios stay"
    # the noise of these weights over natural (weights w d): sqrt(sum w sum w d^2) / sum w d, cross rows only
    w, d = before[:3, 0, 0], after[:3, 0, 0] / before[:3, 0, 0]
    assert noise == pytest.approx(np.sqrt(w.sum() * (w * d * d).sum()) / (w * d).sum(), rel=1e-6)
    assert cells == pytest.approx(2.0 * 2, rel=1e-6), "two equal cells and their conjugates: 4 effective cells"


def test_restoring_beam_from_the_briggs_grid_is_the_beam_of_the_weighted_samples():
    """The main lobe found from put_briggs_weights' gridded cells is the one found from every weighted sample
    (the path tests/test_psf_width.py checks against a Gaussian's Fourier pair); flagged samples weigh 0."""
    rng = np.random.default_rng(7)
    n_ant, n_time = 20, 6
    east, north = rng.uniform(-1200, 1200, n_ant), rng.uniform(-400, 400, n_ant)  # an elongated array (m)
    pairs = [(a, b) for a in range(n_ant) for b in range(a + 1, n_ant)]
    a1 = np.tile([p[0] for p in pairs], n_time)
    a2 = np.tile([p[1] for p in pairs], n_time)
    turn = np.repeat(np.radians(np.linspace(0.0, 1.2, n_time)), len(pairs))  # earth rotation over the chunk
    du, dv = east[a2] - east[a1], north[a2] - north[a1]
    uvw = np.stack([du * np.cos(turn) - dv * np.sin(turn), du * np.sin(turn) + dv * np.cos(turn), 0.1 * du])
    freqs = np.linspace(1.31e9, 1.5e9, 8)
    flags = rng.random((a1.size, freqs.size, 2)) < 0.1
    p = part(uvw, a1, a2, flags, freqs)
    p.weights[:] = rng.uniform(0.5, 2.0, p.weights.shape).astype(np.float32) * ~flags  # the copy's: 0 where flagged
    size, cell_arcsec = 512, 8.0
    *_, gridded = put_briggs_weights([p], size, cell_arcsec, 0.0)
    from_samples = restoring_beam([p], size, cell_arcsec)
    from_grid = restoring_beam([p], size, cell_arcsec, gridded)
    np.testing.assert_allclose(from_grid[:2], from_samples[:2], rtol=2e-3)
    assert abs((from_grid[2] - from_samples[2] + 90.0) % 180.0 - 90.0) < 0.5  # degrees, modulo 180


def test_fold_solutions_multiplies_tables_repeats_one_polarization_and_flags_the_unsolved():
    n_ant, n_chan = 3, 2
    gains = [np.ones((n_ant, n_chan, 2), np.complex64)]
    flags = [np.zeros((n_ant, n_chan, 2), bool)]
    # a G table, one polarization, antennas 0 and 1 only: (npol=1, nchan=1, row)
    g = np.array([[[2.0 + 0j, 1j]]])
    fold_solutions(gains, flags, g, np.zeros(g.shape, bool), np.array([0, 1]), np.array([0, 0]))
    # a B table, two polarizations per channel, every antenna; antenna 1's second channel failed
    b = np.ones((2, n_chan, n_ant), complex) * np.array([1.0, 3.0, 5.0])
    b[1, 1, 2] = 7.0
    b_flag = np.zeros(b.shape, bool)
    b_flag[:, 1, 1] = True
    fold_solutions(gains, flags, b, b_flag, np.arange(n_ant), np.zeros(n_ant, int))
    np.testing.assert_allclose(gains[0][0], 2.0, rtol=0, atol=ATOL)
    np.testing.assert_allclose(gains[0][1], 3j, rtol=0, atol=ATOL)
    np.testing.assert_allclose(gains[0][2], [[5.0, 5.0], [5.0, 7.0]], rtol=0, atol=ATOL)  # the G left it at 1
    assert not flags[0][0].any()
    np.testing.assert_array_equal(flags[0][1], [[False, False], [True, True]])
    assert flags[0][2].all(), "the G table does not solve antenna 2: it stays uncalibrated, so flagged"
    with pytest.raises(ValueError, match="antennas 0..3 and SPWs 0..0: the MS has 3 antennas and 1 SPWs"):
        fold_solutions(gains, flags, g, np.zeros(g.shape, bool), np.array([0, 3]), np.zeros(2, int))


INFO = {
    "max_baseline_m": 2000.0,
    "freq_min_hz": 1.31e9,
    "freq_max_hz": 1.50e9,
    "unflagged_cross_seconds": 6.0e6,
    "interval_s": 12.0,
    "channel_width_hz": 1.5e5,
}


def radiometer_jy(info):
    """SEFD / sqrt(2 dnu tau) per visibility, over sqrt(N) for N visibilities of one integration's worth."""
    from contimg.core.instrument import SEFD_JY

    n = info["unflagged_cross_seconds"] / info["interval_s"]
    return SEFD_JY / np.sqrt(2.0 * info["channel_width_hz"] * info["interval_s"]) / np.sqrt(n)


def test_plan_imaging_on_a_copy_with_briggs_weights_keeps_its_grid_and_weights_naturally():
    prep = {"cell_arcsec": 5.5, "size_px": 2048, "weights_noise_factor": 1.3, "effective_uv_cells": 8e4}
    plan = plan_imaging(prep, INFO, ImagingConfig())
    assert (plan.cell_arcsec, plan.size_px) == (5.5, 2048)
    assert plan.weighting == "briggs 0 (imaging weights in the copy)" and plan.imager_cfg.weighting == "natural"
    assert plan.imager_cfg.mgain == 0.98, "8e4 effective uv cells (a full-size chunk): the deep minor loop"
    assert plan.imager_cfg.niter == 100_000, "a well-filled uv plane: the thresholds stop the clean"
    # the demo's 24-antenna chunks beside the calibrator (2.3e4 cells) diverged with the deep clean
    sparse = plan_imaging({**prep, "effective_uv_cells": 2.3e4}, INFO, ImagingConfig())
    assert (sparse.imager_cfg.mgain, sparse.imager_cfg.niter) == (0.9, 2000)
    shallow = plan_imaging({**prep, "effective_uv_cells": 2.3e4}, INFO, ImagingConfig(niter=300))
    assert shallow.imager_cfg.niter == 300, "a smaller niter asked for is kept"
    assert plan.expected_rms_jy == pytest.approx(1.3 * radiometer_jy(INFO), rel=1e-12)


def test_plan_imaging_of_the_product_itself_takes_its_grid_from_the_ms():
    fallback = {"chan_bin": 1, "applied": False}  # no copy: the imager weights
    plan = plan_imaging(fallback, INFO, ImagingConfig())
    expected_cell = C_M_S / INFO["freq_max_hz"] / INFO["max_baseline_m"] * ARCSEC_PER_RAD / 4.0
    # to the 1e-4 arcsec the imagers are told the cell with
    assert plan.cell_arcsec == pytest.approx(expected_cell, abs=0.5e-4) and plan.size_px % 2 == 0
    assert plan.weighting == "briggs" and plan.imager_cfg.weighting == "briggs" and plan.imager_cfg.mgain == 0.9
    assert plan.imager_cfg.niter == 2000, "uv cells unknown (the imager weights): as a sparse plane"
    assert plan.expected_rms_jy == pytest.approx(radiometer_jy(INFO), rel=1e-12)
    natural = plan_imaging(fallback, INFO, ImagingConfig(weighting="natural"))
    assert natural.weighting == "natural" and natural.imager_cfg.mgain == 0.7
    with pytest.raises(ValueError, match="no unflagged cross-correlation data"):
        plan_imaging(fallback, {**INFO, "unflagged_cross_seconds": 0.0}, ImagingConfig())


def test_pb_corrected_divides_above_the_limit_and_blanks_below():
    image = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    pb = np.array([[1.0, 0.5], [0.1, 0.0]], np.float32)
    out = pb_corrected(image, pb, 0.2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [1.0, 4.0])
    assert np.isnan(out[1]).all()
    assert pb_corrected(image, pb, 0.1)[1, 0] == pytest.approx(30.0, rel=1e-6), "at the limit: corrected"
    with pytest.raises(ValueError, match=r"image \(2, 2\) and primary beam \(1, 2\)"):
        pb_corrected(image, pb[:1], 0.2)
    with pytest.raises(ValueError, match=r"pb_limit must be a beam response in \[0, 1\], got 1.5"):
        pb_corrected(image, pb, 1.5)


def test_rms_verdict_against_the_named_limit():
    assert RMS_LIMIT_OVER_EXPECTED == 3.0
    assert rms_verdict(2e-3, 1e-3) == (True, pytest.approx(2.0, rel=1e-12), 3.0)
    assert rms_verdict(3e-3, 1e-3)[0], "at the limit: passes"
    passed, ratio, limit = rms_verdict(3.1e-3, 1e-3)
    assert not passed and ratio == pytest.approx(3.1, rel=1e-12) and limit == 3.0
    assert not rms_verdict(float("nan"), 1e-3)[0]
    with pytest.raises(ValueError, match="expected_jy must be a finite positive noise in Jy/beam, got 0.0"):
        rms_verdict(1e-3, 0.0)
    with pytest.raises(ValueError, match="rms_jy must be >= 0"):
        rms_verdict(-1e-3, 1e-3)


def test_image_verdict_says_each_problem_and_fails_uncalibrated_only_when_not_allowed():
    good = image_verdict(2e-3, 1e-3, calibrated=True, allow_uncalibrated=False)
    assert good.passed and good.status == "ok" and good.problems == [] and good.rms_over_expected == pytest.approx(2.0)
    noisy = image_verdict(4.5e-3, 1.2e-3, calibrated=False, allow_uncalibrated=True)
    assert not noisy.passed and noisy.status == "flagged"
    assert noisy.problems == ["rms 4.50 mJy/beam > 3.0 x expected 1.20", "uncalibrated"]
    allowed = image_verdict(2e-3, 1e-3, calibrated=False, allow_uncalibrated=True)
    assert allowed.passed and allowed.problems == ["uncalibrated"], "allowed, and still said"
    assert not image_verdict(2e-3, 1e-3, calibrated=False, allow_uncalibrated=False).passed


# the keys tests/test_image.py, benchmarks/image.py, benchmarks/stream.py, docs/conventions.md and the
# image asset read from the job's JSON report, and those the catalogue's image rows need
REPORT_KEYS = {
    "image",
    "pbcor",
    "pb",
    "png",
    "casa_image",
    "imager",
    "calibrated",
    "data_column",
    "chan_bin",
    "merged_spws",
    "merge_loss",
    "caltables",
    "calset",
    "window",
    "cell_arcsec",
    "size_px",
    "weighting",
    "mgain",
    "initial_images",
    "rows_kept_fraction",
    "max_time_bin",
    "effective_uv_cells",
    "bmaj_arcsec",
    "bmin_arcsec",
    "bpa_deg",
    "rms_jy",
    "peak_jy",
    "dynamic_range",
    "n_sources_5sigma",
    "expected_rms_jy",
    "flagged_fraction",
    "timings_s",
    "cpu_s",
    "warnings",
    "config",
    "code_version",
    "mid_mjd",
    "sources",
    "n_detections",
    "science_grade",
    "science_qa",
    "outside_subtracted",
    "known_sources_in_mask",
}
ROW_KEYS = {
    "image": "/p/i.fits",
    "pbcor": "/p/i.pbcor.fits",
    "pb": "/p/i.pb.fits",
    "png": "/p/i.png",
    "imager": "wsclean",
    "calibrated": True,
    "rms_jy": 1e-3,
    "expected_rms_jy": 8e-4,
    "peak_jy": 1.5,
    "dynamic_range": 1500.0,
    "n_sources_5sigma": 3,
    "bmaj_arcsec": 20.0,
    "bmin_arcsec": 10.0,
    "bpa_deg": 5.0,
    "cell_arcsec": 3.0,
    "size_px": 256,
    "flagged_fraction": 0.1,
}


def test_image_report_keeps_its_json_keys_and_round_trips():
    full = ImageReport(
        **ROW_KEYS,
        caltables=["/t/a.B", "/t/a.G"],
        calset="set-x",
        timings_s={"image": 1.0},
        warnings=["w"],
        merge_loss=0.01,
        merged_spws=True,
    )
    as_json = json.loads(json.dumps(full.to_dict()))
    assert set(as_json) == REPORT_KEYS
    assert ImageReport.from_dict(as_json) == full
    only_row = ImageReport.from_dict(ROW_KEYS)  # what the catalogue needs, nothing about how it was made
    assert only_row.caltables == [] and only_row.chan_bin == 1 and only_row.casa_image is None


def test_image_report_from_dict_names_missing_and_unknown_keys():
    incomplete = {k: v for k, v in ROW_KEYS.items() if k != "rms_jy"}
    with pytest.raises(ValueError, match=r"missing key\(s\) \['rms_jy'\], unknown key\(s\) none"):
        ImageReport.from_dict(incomplete)
    with pytest.raises(ValueError, match=r"missing key\(s\) none, unknown key\(s\) \['rms_mjy'\]"):
        ImageReport.from_dict({**ROW_KEYS, "rms_mjy": 1.0})
    with pytest.raises(TypeError, match="an image report is a mapping of its fields, got list"):
        ImageReport.from_dict([])
