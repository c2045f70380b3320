"""Subtraction of catalogue sources outside the field (contimg.image.subtract), without CASA.

The model is checked against a textbook direct Fourier sum, one complex exponential per source, row and
channel, with the source's direction cosines from astropy's offset frame and its beam angle from
astropy's hour-angle frame (not the module's meridian_icrs separations); the selection against the
Airy formula evaluated here.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord, SkyOffsetFrame
from astropy.time import Time
from scipy.special import j1

from contimg.core.instrument import SITE
from contimg.core.phasing import meridian_icrs
from contimg.core.refcat import ReferenceCatalog
from contimg.image.subtract import (
    OutsideSources,
    antenna_uvw,
    min_apparent_flux_jy,
    model_visibilities,
    select_outside,
)

C = 299_792_458.0
DISH = 4.65
DEC = 55.5
MJD0 = 60841.99  # near a 0834+555 transit date; any time works


def airy(theta, f):
    """The Airy power pattern of a uniformly lit 4.65 m dish, written out here."""
    x = np.pi * DISH * np.sin(theta) * f / C
    return (2 * j1(x) / x) ** 2


def lmn(ra, dec, centre):
    """(l, m, n) from astropy's offset frame: x towards the centre, y east, z north."""
    off = SkyCoord(ra * u.deg, dec * u.deg).transform_to(SkyOffsetFrame(origin=centre))
    c = off.cartesian
    return c.y.value, c.z.value, c.x.value


def beam_angle(ra, dec, mjd):
    """Angle from (HA = 0, DEC apparent) in the hour-angle frame of date, as the simulator measures it."""
    t = Time(mjd, format="mjd", scale="utc")
    frame = HADec(obstime=t, location=SITE, pressure=0 * u.hPa)
    src = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    ptg = SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=frame)
    return src.separation(ptg).rad


def catalogue(ra, dec, flux, alpha):
    ra, dec, flux, alpha = (np.atleast_1d(np.asarray(v, float)) for v in (ra, dec, flux, alpha))
    return ReferenceCatalog(np.array([f"s{i}" for i in range(len(ra))]), ra, dec, flux, alpha)


def test_antenna_uvw_reproduces_every_baseline():
    rng = np.random.default_rng(3)
    true = rng.uniform(-1500, 1500, (10, 3))
    a1, a2 = np.triu_indices(10, 1)
    keep = rng.random(a1.size) > 0.3  # some baselines missing: still connected
    a1, a2 = a1[keep], a2[keep]
    got = antenna_uvw(true[a1] - true[a2], a1, a2, 10)
    assert np.allclose(got[a1] - got[a2], true[a1] - true[a2], atol=1e-8)


def test_model_matches_the_direct_fourier_sum_through_the_beam():
    rng = np.random.default_rng(11)
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    # sources 2-6 deg from the centre in every direction, one of each spectral kind
    dist = rng.uniform(2.0, 6.0, 6)
    pa = rng.uniform(0, 360, 6)
    pos = centre.directional_offset_by(pa * u.deg, dist * u.deg)
    flux = rng.uniform(0.5, 5.0, 6)
    alpha = rng.normal(-0.7, 0.3, 6)
    src = OutsideSources(
        pos.ra.deg,
        pos.dec.deg,
        flux,
        alpha,
        np.zeros(6),
        centre.ra.deg,
        centre.dec.deg,
        DEC,
    )
    n_ant, times = 8, MJD0 + np.array([-120.0, 0.0, 150.0]) / 86400.0
    ant = rng.uniform(-1300, 1300, (len(times), n_ant, 3))  # each time its own per-antenna uvw
    a1, a2 = np.triu_indices(n_ant)  # autocorrelations included
    time_s = np.repeat(times * 86400.0, a1.size)
    uvw = np.concatenate([ant[t][a1] - ant[t][a2] for t in range(len(times))])
    rows_a1, rows_a2 = np.tile(a1, len(times)), np.tile(a2, len(times))
    freqs = 1.31e9 + 2.5e6 * np.arange(8)
    got = model_visibilities(src, time_s, uvw, rows_a1, rows_a2, freqs)
    l_, m_, n_ = lmn(pos.ra.deg, pos.dec.deg, centre)
    want = np.zeros(got.shape, complex)
    for r in range(len(time_s)):
        theta = beam_angle(pos.ra.deg, pos.dec.deg, time_s[r] / 86400.0)
        for c, f in enumerate(freqs):
            s_app = flux * (f / 1.4e9) ** alpha * airy(theta, f)
            phase = 2 * np.pi * f / C * (uvw[r, 0] * l_ + uvw[r, 1] * m_ + uvw[r, 2] * (n_ - 1))
            want[r, c] = np.sum(s_app * np.exp(1j * phase))
    scale = np.abs(want[rows_a1 == rows_a2]).max()  # the summed apparent flux
    assert scale > 0.05  # the sources are seen (sidelobes or main lobe), so the check means something
    assert np.max(np.abs(got - want)) < 1e-4 * scale


def test_selects_outside_sources_above_the_threshold_through_the_beam():
    mjd = MJD0 + np.array([-150.0, 0.0, 150.0]) / 86400.0
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    half = 1.9
    # inside (1 deg north), just inside the edge's margin, outside bright, outside faint, beyond 6.5 deg
    offsets = [(0.0, 1.0), (90.0, 1.85), (90.0, 2.5), (180.0, 2.5), (45.0, 3.6), (270.0, 8.0)]
    pos = [centre.directional_offset_by(p * u.deg, d * u.deg) for p, d in offsets]
    ra, dec = [p.ra.deg for p in pos], [p.dec.deg for p in pos]
    cat = catalogue(ra, dec, [5.0, 5.0, 0.3, 0.001, 3.0, 50.0], [-0.7] * 6)
    freqs = np.array([1.31e9, 1.40e9, 1.50e9])
    threshold = 0.005
    got = select_outside(cat, centre.ra.deg, centre.dec.deg, DEC, mjd, freqs, half, threshold)
    # independently: outside the square of half-side (1.9 - 0.02) deg in (l, m), within 6.5 deg of the beam,
    # apparent flux (mean over the times and frequencies) above the threshold
    l_, m_, _ = lmn(np.array(ra), np.array(dec), centre)
    outside = np.maximum(np.abs(l_), np.abs(m_)) > np.sin(np.radians(half - 0.02))
    theta = np.array([beam_angle(np.array(ra), np.array(dec), t) for t in mjd])
    near = np.all(theta < np.radians(6.5), axis=0)
    s = np.array([5.0, 5.0, 0.3, 0.001, 3.0, 50.0])
    app = np.mean([[s * (f / 1.4e9) ** -0.7 * airy(th, f) for f in freqs] for th in theta], axis=(0, 1))
    want = np.flatnonzero(outside & near & (app >= threshold))
    assert list(want) == [2, 4]  # the case mix above holds: the bright outside ones, main lobe and sidelobe
    assert np.allclose(got.ra_deg, np.array(ra)[want]) and np.allclose(got.dec_deg, np.array(dec)[want])
    assert np.allclose(got.apparent_jy, app[want], rtol=1e-4)
    summary = got.summary()
    assert summary["n_sources"] == 2 and summary["apparent_flux_jy"] == pytest.approx(app[want].sum(), rel=1e-4)


def test_inside_sources_drifting_through_the_beam_are_selected_by_their_varying_part():
    """With ``drifting``, the in-field sources whose beam-weighted flux varies by an rms above the threshold."""
    mjd = MJD0 + np.linspace(-150.0, 150.0, 7) / 86400.0
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    # inside: bright on the beam's flank (east), bright at the centre (flat beam), faint on the flank; outside bright
    offsets = [(90.0, 1.3), (0.0, 0.01), (90.0, 1.2), (180.0, 2.5)]
    pos = [centre.directional_offset_by(p * u.deg, d * u.deg) for p, d in offsets]
    ra, dec = np.array([p.ra.deg for p in pos]), np.array([p.dec.deg for p in pos])
    s = np.array([8.8, 0.2, 0.02, 0.3])
    cat = catalogue(ra, dec, s, [-0.7] * 4)
    freqs = np.array([1.31e9, 1.40e9, 1.50e9])
    threshold = 0.005
    got = select_outside(cat, centre.ra.deg, centre.dec.deg, DEC, mjd, freqs, 1.9, threshold, drifting=True)
    theta = np.array([beam_angle(ra, dec, t) for t in mjd])  # (T, S)
    seen = np.array([[s * (f / 1.4e9) ** -0.7 * airy(th, f) for f in freqs] for th in theta])  # (T, F, S)
    rms = np.sqrt(np.mean((seen - seen.mean(axis=0)) ** 2, axis=(0, 1)))
    assert rms[0] > 0.1 and rms[1] < threshold and rms[2] < threshold  # the case mix holds
    assert list(got.varying()) == [True, False]  # the flank's bright source (varying part), the outside one
    assert np.allclose(got.ra_deg, ra[[0, 3]])
    summary = got.summary()
    assert summary["n_sources"] == 1 and summary["n_drifting"] == 1
    only = select_outside(
        cat, centre.ra.deg, centre.dec.deg, DEC, mjd, freqs, 1.9, threshold, drifting=True, beyond_edge=False
    )
    assert list(only.varying()) == [True]


def test_with_output_channels_the_varying_part_includes_the_spectrum_within_a_channel():
    """Beyond half power the beam steepens a source's apparent spectrum: with the imager's output channels, a
    source is selected by its deviation from its mean over the chunk and its output channel, which the drift
    alone (its mean over the chunk at each frequency) misses for a source due north drifting little."""
    mjd = MJD0 + np.linspace(-150.0, 150.0, 7) / 86400.0
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by(0.0 * u.deg, 1.6 * u.deg)  # north, beyond half power: crosses little
    ra, dec, s = np.array([pos.ra.deg]), np.array([pos.dec.deg]), np.array([0.5])
    cat = catalogue(ra, dec, s, [-0.7])
    freqs = np.linspace(1.31e9, 1.50e9, 12)
    edges = np.array([1.31e9, 1.405e9, 1.50e9])  # two output channels
    theta = np.array([beam_angle(ra, dec, t) for t in mjd])  # (T, 1)
    seen = np.array([[s * (f / 1.4e9) ** -0.7 * airy(th, f) for f in freqs] for th in theta])  # (T, F, 1)
    drift_rms = np.sqrt(np.mean((seen - seen.mean(axis=0)) ** 2))
    half = freqs < 1.405e9
    channel_mean = np.where(half[None, :, None], seen[:, half].mean(), seen[:, ~half].mean())
    channel_rms = np.sqrt(np.mean((seen - channel_mean) ** 2))
    assert channel_rms > 3 * drift_rms  # the case holds: the spectrum within a channel dominates
    threshold = np.sqrt(channel_rms * drift_rms)
    args = (cat, centre.ra.deg, centre.dec.deg, DEC, mjd, freqs, 1.9, threshold)
    assert len(select_outside(*args, drifting=True, beyond_edge=False)) == 0
    got = select_outside(*args, drifting=True, beyond_edge=False, channel_edges_hz=edges)
    assert list(got.varying()) == [True]


def test_a_drifting_sources_model_less_its_output_channels_mean():
    """Carrying the output channels' means, a source enters as S A(t, f) - its channel's mean: over the chunk and
    each output channel an autocorrelation sums to zero, and the model is the direct Fourier sum of that."""
    rng = np.random.default_rng(4)
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by([10.0, 120.0] * u.deg, [1.6, 1.1] * u.deg)
    flux, alpha = np.array([0.6, 2.0]), np.array([-0.7, -0.2])
    n_ant, times = 5, MJD0 + np.linspace(-140.0, 140.0, 4) / 86400.0
    freqs = 1.31e9 + 19e6 * np.arange(10)
    edges = np.array([freqs[0], 0.5 * (freqs[0] + freqs[-1]), freqs[-1]])
    group = freqs > edges[1]
    theta = np.array([beam_angle(pos.ra.deg, pos.dec.deg, t) for t in times])  # (T, S)
    seen = np.array([[flux * (f / 1.4e9) ** alpha * airy(th, f) for f in freqs] for th in theta])  # (T, F, S)
    means = np.stack([seen[:, ~group].mean(axis=(0, 1)), seen[:, group].mean(axis=(0, 1))])  # (2, S)
    src = OutsideSources(
        pos.ra.deg, pos.dec.deg, flux, alpha, np.zeros(2), centre.ra.deg, centre.dec.deg, DEC,
        varying_only=np.array([True, True]), channel_edges_hz=edges, channel_mean_jy=means,
    )  # fmt: skip
    ant = rng.uniform(-1300, 1300, (len(times), n_ant, 3))
    a1, a2 = np.triu_indices(n_ant)
    time_s = np.repeat(times * 86400.0, a1.size)
    uvw = np.concatenate([ant[t][a1] - ant[t][a2] for t in range(len(times))])
    rows_a1, rows_a2 = np.tile(a1, len(times)), np.tile(a2, len(times))
    got = model_visibilities(src, time_s, uvw, rows_a1, rows_a2, freqs)
    l_, m_, n_ = lmn(pos.ra.deg, pos.dec.deg, centre)
    want = np.zeros(got.shape, complex)
    for r in range(len(time_s)):
        for c, f in enumerate(freqs):
            s_var = seen[r // a1.size, c] - means[int(group[c])]
            phase = 2 * np.pi * f / C * (uvw[r, 0] * l_ + uvw[r, 1] * m_ + uvw[r, 2] * (n_ - 1))
            want[r, c] = np.sum(s_var * np.exp(1j * phase))
    assert np.max(np.abs(got - want)) < 1e-4 * flux.sum()
    auto = got[rows_a1 == rows_a2].reshape(len(times), n_ant, -1)  # (T, antenna, F)
    assert np.abs(auto).max() > 0.01  # the source's spectrum and drift are seen
    for g in (~group, group):
        assert np.allclose(auto[:, :, g].sum(axis=(0, 2)), 0, atol=1e-4)


def test_the_chunks_sources_carry_their_output_channels_means():
    """outside_for_chunk, given the job's description of an MS: each drifting source's mean apparent flux over the
    rows' times and each output channel's channels, computed here with the Airy formula and astropy's frames."""
    from contimg.image.subtract import outside_for_chunk

    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by([90.0, 0.0] * u.deg, [1.3, 1.6] * u.deg)
    cat = catalogue(pos.ra.deg, pos.dec.deg, [8.8, 2.0], [-0.7, -0.9])
    times_s = (MJD0 + np.linspace(-150.0, 150.0, 6) / 86400.0) * 86400.0
    freqs = 1.31e9 + 244_140.625 * np.arange(0, 768, 32)  # 24 channels over the band
    info = {
        "freqs_hz": freqs, "n_spw": 1, "n_cross_rows": 4560 * 6, "channel_width_hz": 32 * 244_140.625,
        "interval_s": 12.9, "n_antennas": 96, "pointing_dec_deg": DEC, "field_dec_deg": centre.dec.deg,
        "field_ra_deg": centre.ra.deg, "freq_min_hz": freqs[0], "freq_max_hz": freqs[-1],
        "start_mjd": times_s[0] / 86400.0, "end_mjd": times_s[-1] / 86400.0, "times_s": times_s,
    }  # fmt: skip
    got = outside_for_chunk(cat, info, 1.9, drifting=True, beyond_edge=False, channels_out=3)  # a 3.8 deg image
    assert list(got.varying()) == [True, True]
    theta = np.array([beam_angle(pos.ra.deg, pos.dec.deg, t / 86400.0) for t in times_s])  # (T, S)
    flux, alpha = np.array([8.8, 2.0]), np.array([-0.7, -0.9])
    seen = np.array([[flux * (f / 1.4e9) ** alpha * airy(th, f) for f in freqs] for th in theta])
    thirds = np.array_split(np.arange(len(freqs)), 3)  # WSClean's three output channels: equal parts of the band
    want = np.stack([seen[:, k].mean(axis=(0, 1)) for k in thirds])
    assert np.allclose(got.channel_mean_jy, want, rtol=1e-4)
    assert np.allclose(got.beam_offsets_rad, theta, atol=1e-9)


def test_a_drifting_sources_model_is_its_varying_part_only():
    """varying_only: the direct Fourier sum with S (A(t) - <A>_t), the mean over the rows' distinct times."""
    rng = np.random.default_rng(2)
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by([90.0, 200.0] * u.deg, [1.3, 0.8] * u.deg)
    flux, alpha = np.array([8.8, 1.0]), np.array([-0.7, 0.1])
    src = OutsideSources(
        pos.ra.deg, pos.dec.deg, flux, alpha, np.zeros(2), centre.ra.deg, centre.dec.deg, DEC,
        varying_only=np.array([True, True]),
    )  # fmt: skip
    n_ant, times = 6, MJD0 + np.linspace(-140.0, 140.0, 5) / 86400.0
    ant = rng.uniform(-1300, 1300, (len(times), n_ant, 3))
    a1, a2 = np.triu_indices(n_ant)
    time_s = np.repeat(times * 86400.0, a1.size)
    uvw = np.concatenate([ant[t][a1] - ant[t][a2] for t in range(len(times))])
    rows_a1, rows_a2 = np.tile(a1, len(times)), np.tile(a2, len(times))
    freqs = 1.31e9 + 20e6 * np.arange(4)
    got = model_visibilities(src, time_s, uvw, rows_a1, rows_a2, freqs)
    l_, m_, n_ = lmn(pos.ra.deg, pos.dec.deg, centre)
    theta = np.array([beam_angle(pos.ra.deg, pos.dec.deg, t) for t in times])  # (T, S)
    want = np.zeros(got.shape, complex)
    for r in range(len(time_s)):
        t = r // a1.size
        for c, f in enumerate(freqs):
            beam_mean = np.mean([airy(th, f) for th in theta], axis=0)
            s_var = flux * (f / 1.4e9) ** alpha * (airy(theta[t], f) - beam_mean)
            phase = 2 * np.pi * f / C * (uvw[r, 0] * l_ + uvw[r, 1] * m_ + uvw[r, 2] * (n_ - 1))
            want[r, c] = np.sum(s_var * np.exp(1j * phase))
    auto = rows_a1 == rows_a2
    assert np.abs(want[auto]).max() > 0.1  # the drift is seen: a tenth of a Jy and more
    assert np.max(np.abs(got - want)) < 1e-4 * flux.sum()
    # an autocorrelation sees the varying part alone: over the chunk it sums to zero, channel by channel
    assert np.allclose(got[auto].reshape(len(times), n_ant, -1).sum(axis=0), 0, atol=1e-4)


def test_threshold_puts_the_far_sidelobes_peak_at_the_noise():
    noise, n_b = 1e-4, 4560
    s = min_apparent_flux_jy(noise, n_b)
    # a source at the threshold: far-sidelobe rms 1 / sqrt(2 N_b), peaks ~5x that, equal to the noise
    assert s * 5.0 / np.sqrt(2 * n_b) == pytest.approx(noise)
    with pytest.raises(ValueError, match="positive noise"):
        min_apparent_flux_jy(0.0, n_b)
    with pytest.raises(ValueError, match="margin"):
        select_outside(catalogue(0, 0, 1, 0), 0.0, 0.0, 0.0, [MJD0], [1.4e9], 0.01, 1e-3)


def test_beam_angles_carried_for_the_rows_times_are_used_and_others_ignored():
    """The job's process hands the workers each source's beam angle at the chunk's row times
    (``beam_offsets_rad``); angles carried for other times must not be used."""
    rng = np.random.default_rng(5)
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by([45.0, 160.0] * u.deg, [2.5, 1.2] * u.deg)
    n_ant, times = 5, MJD0 + np.array([-60.0, 60.0]) / 86400.0
    ant = rng.uniform(-1300, 1300, (len(times), n_ant, 3))
    a1, a2 = np.triu_indices(n_ant, 1)
    time_s = np.repeat(times * 86400.0, a1.size)
    uvw = np.concatenate([ant[t][a1] - ant[t][a2] for t in range(len(times))])
    rows_a1, rows_a2 = np.tile(a1, len(times)), np.tile(a2, len(times))
    freqs = 1.4e9 + 1e6 * np.arange(3)
    theta = np.array([beam_angle(pos.ra.deg, pos.dec.deg, t) for t in times])  # (T, S), astropy here
    l_, m_, n_ = lmn(pos.ra.deg, pos.dec.deg, centre)
    flux = np.array([3.0, 1.0])
    want = np.zeros((len(time_s), len(freqs)), complex)
    for r in range(len(time_s)):
        for c, f in enumerate(freqs):
            phase = 2 * np.pi * f / C * (uvw[r, 0] * l_ + uvw[r, 1] * m_ + uvw[r, 2] * (n_ - 1))
            want[r, c] = np.sum(flux * airy(theta[r // a1.size], f) * np.exp(1j * phase))

    def model(carried_times, carried):
        src = OutsideSources(
            pos.ra.deg, pos.dec.deg, flux, np.zeros(2), np.zeros(2), centre.ra.deg, centre.dec.deg, DEC,
            beam_times_s=carried_times, beam_offsets_rad=carried,
        )  # fmt: skip
        return model_visibilities(src, time_s, uvw, rows_a1, rows_a2, freqs)

    assert np.max(np.abs(model(times * 86400.0, theta) - want)) < 1e-4 * flux.sum()
    # carried for other times (and wrong): worked out afresh instead
    assert np.max(np.abs(model(times * 86400.0 + 1.0, theta + 0.01) - want)) < 1e-4 * flux.sum()
    # and the carried angles do decide when their times match: wrong ones give a wrong model
    assert np.max(np.abs(model(times * 86400.0, theta + 0.01) - want)) > 1e-2 * flux.sum()


def test_nothing_to_predict_gives_zeros():
    src = OutsideSources(*(np.zeros(0),) * 5, 0.0, 55.0, 55.0)
    got = model_visibilities(src, np.zeros(3), np.ones((3, 3)), np.array([0, 0, 1]), np.array([1, 2, 2]), [1.4e9])
    assert got.shape == (3, 1) and not got.any()


def test_the_averaging_workers_subtract_it_through_the_gains():
    """The job's worker step: the model times the gains off the raw data, then calibration and binning.

    Raw data g_1 conj(g_2) V of the sources alone calibrate and bin to ~0 after the subtraction, and to
    V's channel mean without it (so the sources were there to remove).
    """
    from contimg.image.applycal import baseline_gains, calibrate_and_bin
    from contimg.image.job.workers import _subtract_outside

    rng = np.random.default_rng(2)
    centre = meridian_icrs(Time(MJD0, format="mjd", scale="utc"), DEC)
    pos = centre.directional_offset_by([30.0, 250.0] * u.deg, [2.3, 4.5] * u.deg)
    src = OutsideSources(
        pos.ra.deg,
        pos.dec.deg,
        np.array([2.0, 8.0]),
        np.array([-0.7, 0.0]),
        np.zeros(2),
        centre.ra.deg,
        centre.dec.deg,
        DEC,
    )
    n_ant, n_chan = 6, 8
    a1, a2 = np.triu_indices(n_ant)
    ant = rng.uniform(-1300, 1300, (2, n_ant, 3))
    rows_a1, rows_a2 = np.tile(a1, 2), np.tile(a2, 2)
    time_s = np.repeat(MJD0 * 86400.0 + np.array([0.0, 12.9]), a1.size)
    uvw = np.concatenate([ant[t][a1] - ant[t][a2] for t in range(2)])
    freqs = 1.4e9 + 244_140.625 * np.arange(n_chan)
    vis = model_visibilities(src, time_s, uvw, rows_a1, rows_a2, freqs)
    gain = (rng.uniform(0.5, 2.0, (n_ant, n_chan, 2)) * np.exp(1j * rng.uniform(-3, 3, (n_ant, n_chan, 2)))).astype(
        np.complex64
    )
    gg, nbl = baseline_gains(gain, np.zeros(gain.shape, bool), rows_a1, rows_a2)
    raw = (vis.reshape(2, nbl, n_chan, 1) * gg).reshape(-1, n_chan, 2).astype(np.complex64)
    flag, weight = np.zeros(raw.shape, bool), np.ones((len(raw), 2), np.float32)
    before, _, _ = calibrate_and_bin(raw.copy(), flag, 2, row_weight=weight, gg=gg, n_baselines=nbl)
    # calwt: each channel weighs |g_1 g_2|^2 in the bin (XX here)
    w2 = np.abs(np.broadcast_to(gg[None, ..., 0], (2, nbl, n_chan))).reshape(-1, n_chan // 2, 2) ** 2
    want = (w2 * vis.reshape(-1, n_chan // 2, 2)).sum(axis=2) / w2.sum(axis=2)
    assert np.allclose(before[..., 0], want, atol=1e-5)
    _subtract_outside(raw, (src, freqs), time_s, uvw, rows_a1, rows_a2, gg, nbl)
    after, _, _ = calibrate_and_bin(raw, flag, 2, row_weight=weight, gg=gg, n_baselines=nbl)
    assert np.abs(before).max() > 0.1 and np.abs(after).max() < 1e-5 * np.abs(before).max()
