"""The simulator's realistic sky (#22, #21) and variable sources (#23), against independent formulas."""

import h5py
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time
from scipy import stats
from scipy.integrate import quad

from contimg.core.instrument import SITE
from contimg.sim import Source, read_sky_csv, simulate
from contimg.sim.lightcurves import flux_factor, parse_lightcurve
from contimg.sim.sky import counts_sky, write_sky_csv

START = "2026-01-25T00:00:00"
DEC = 55.0
INTEGRATION_S = 96 * 0.134217728
C = 299_792_458.0
DEG2_SR = (np.pi / 180.0) ** 2


def hopkins_per_sr(s_lo_jy, s_hi_jy):
    """Sources per sr between two fluxes: Hopkins et al. 2003 eq. 2, Euclidean above 1 Jy (written out here)."""
    a = [0.859, 0.508, 0.376, -0.049, -0.121, 0.057, -0.008]

    def dnds(s):  # Jy^-1 sr^-1
        x = np.log10(min(s, 1.0) * 1e3)
        return 10 ** np.polyval(a[::-1], x) * s**-2.5

    # integrate in ln S (the integrand spans decades)
    return quad(lambda ln_s: dnds(np.exp(ln_s)) * np.exp(ln_s), np.log(s_lo_jy), np.log(s_hi_jy), limit=200)[0]


def strip_area_sr(span_deg, dec_deg, radius_deg):
    """Sky within radius of an arc of constant dec: a band in RA plus two half caps (one whole cap)."""
    r, d = np.radians(radius_deg), np.radians(dec_deg)
    return np.radians(span_deg) * (np.sin(d + r) - np.sin(d - r)) + 2 * np.pi * (1 - np.cos(r))


def test_published_counts_and_the_issue_figures():
    # the issue's figure: ~16.6 sources per deg^2 above 10 mJy
    assert hopkins_per_sr(0.01, 1e4) * DEG2_SR == pytest.approx(16.6, rel=0.02)


@pytest.fixture(scope="module")
def big_sky():
    # a 40 deg strip at dec 30: ~240 deg^2, ~13000 sources (no visibilities, a fraction of a second)
    return counts_sky((100.0, 140.0), 30.0, np.random.default_rng(2024))


def _distance_to_track(sky, ra0, span, dec0):
    ra = np.array([s.ra_deg for s in sky])
    dec = np.array([s.dec_deg for s in sky])
    on = (ra - ra0) % 360 <= span
    ends = [SkyCoord(ra0 * u.deg, dec0 * u.deg), SkyCoord((ra0 + span) * u.deg, dec0 * u.deg)]
    c = SkyCoord(ra * u.deg, dec * u.deg)
    return np.where(on, np.abs(dec - dec0), np.minimum(c.separation(ends[0]).deg, c.separation(ends[1]).deg))


def test_counts_per_square_degree_follow_hopkins(big_sky):
    flux = np.array([s.flux_jy for s in big_sky])
    dist = _distance_to_track(big_sky, 100.0, 40.0, 30.0)
    assert dist.max() <= 6.0 + 1e-9
    assert np.all(flux[dist > 3.2] >= 0.1), "outside the main lobe only sources above 100 mJy"
    assert flux.min() >= 2e-3
    for s_min, radius in ((0.01, 3.2), (0.1, 6.0), (0.1, 3.2), (2e-3, 3.2)):
        expected = hopkins_per_sr(s_min, 30.0) * strip_area_sr(40.0, 30.0, radius)  # drawn up to 30 Jy
        n = int(np.sum((flux > s_min) & (dist <= radius)))
        assert abs(n - expected) < 3 * np.sqrt(expected), (s_min, radius, n, expected)  # Poisson 3 sigma


def test_spectral_indices_and_sizes_follow_their_distributions(big_sky):
    alpha = np.array([s.spectral_index for s in big_sky])
    n = len(alpha)
    for cut in (-0.4, 0.2):
        # 90 % N(-0.75, 0.2) and 10 % N(0, 0.3)
        p = 0.9 * stats.norm.sf(cut, -0.75, 0.2) + 0.1 * stats.norm.sf(cut, 0.0, 0.3)
        assert abs(np.sum(alpha > cut) - n * p) < 3 * np.sqrt(n * p * (1 - p)), cut
    resolved = [s for s in big_sky if s.maj_arcsec > 0]
    assert abs(len(resolved) - 0.1 * n) < 3 * np.sqrt(n * 0.09)
    # Windhorst et al. 1990: median FWHM 2" (S/mJy)^0.3 (the 20" tail cut lies above the median for S < 50 mJy)
    ratio = np.array([s.maj_arcsec / (2.0 * (s.flux_jy * 1e3) ** 0.3) for s in resolved if s.flux_jy < 0.05])
    m = len(ratio)
    assert abs(np.sum(ratio < 1.0) - m / 2) < 3 * np.sqrt(m / 4)
    q = np.array([s.min_arcsec / s.maj_arcsec for s in resolved])
    assert q.min() >= 0.3 and q.max() <= 1.0


def test_sky_csv_round_trip_with_extra_columns(tmp_path):
    sky = [
        Source(10.0, 55.0, 1.5, -0.7, "a"),
        Source(11.0, 54.0, 0.02, 0.1, "b", 12.0, 5.0, 33.0, "dip:0.4:3:4"),
    ]
    path = write_sky_csv(tmp_path / "sky.csv", sky)
    assert path.read_text().splitlines()[0] == (
        "ra_deg,dec_deg,flux_jy,spectral_index,maj_arcsec,min_arcsec,pa_deg,name,lightcurve"
    )
    assert read_sky_csv(path) == sky
    # the old four-column form and unknown columns still read
    (tmp_path / "old.csv").write_text("ra_deg,dec_deg,flux_jy,spectral_index,survey\n1,2,3,-0.5,NVSS\n")
    assert read_sky_csv(tmp_path / "old.csv") == [Source(1.0, 2.0, 3.0, -0.5)]
    (tmp_path / "bad.csv").write_text("ra_deg,dec_deg,flux_jy,lightcurve\n1,2,3,wobble:1\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: bad light curve 'wobble:1'"):
        read_sky_csv(tmp_path / "bad.csv")


def _centre(t0):
    frame = HADec(obstime=t0, location=SITE, pressure=0 * u.hPa)
    return SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=frame).icrs


def _read_first_integration(path):
    with h5py.File(path) as h5:
        t = h5["Header/time_array"][()]
        first = t == t.min()
        a1, a2 = h5["Header/ant_1_array"][()][first], h5["Header/ant_2_array"][()][first]
        uvw = h5["Header/uvw_array"][()][first].astype(float)
        vis = h5["Data/visdata"][()][first, 0]
        freq = h5["Header/freq_array"][()].ravel()
    return a1, a2, uvw, vis, freq


# GH components reproduce a Gaussian to max(0.1 mJy, 1e-4 of S) (contimg.sim.model.GH_TOL_*): 0.1 mJy for 1 Jy;
# the beam off axis by the source's drift within half an integration is 1 - 1e-4; the taper below takes the
# axes of date, the source's are ICRS (precession turns them ~0.1 deg): a few 1e-5; complex64 rounding 1e-7
GAUSS_ATOL_JY = 3e-4


def test_a_gaussian_source_has_the_analytic_visibility_amplitude(tmp_path):
    t0 = Time(START) + 0.5 * INTEGRATION_S * u.s
    c = _centre(t0)
    maj, mn, pa = 15.0, 6.0, 30.0
    simulate(
        tmp_path,
        START,
        n_antennas=40,
        n_chan_per_subband=2,
        n_integrations=1,
        dec_deg=DEC,
        sky=[Source(c.ra.deg, c.dec.deg, 1.0, 0.0, "g", maj, mn, pa)],
        noise=False,
        gains=False,
        seed=1,
        jitter_s=0.0,
    )
    a1, a2, uvw, vis, freq = _read_first_integration(next(tmp_path.glob("*_sb00.hdf5")))
    cross = a1 != a2
    lam_u = uvw[cross, 0][:, None] * freq[None, :] / C  # east, wavelengths
    lam_v = uvw[cross, 1][:, None] * freq[None, :] / C  # north
    p = np.radians(pa)
    s_maj = np.radians(maj / 3600) / np.sqrt(8 * np.log(2))
    s_min = np.radians(mn / 3600) / np.sqrt(8 * np.log(2))
    along = lam_u * np.sin(p) + lam_v * np.cos(p)
    across = lam_u * np.cos(p) - lam_v * np.sin(p)
    analytic = np.exp(-2 * np.pi**2 * (s_maj**2 * along**2 + s_min**2 * across**2))  # FT of a unit Gaussian
    assert analytic.min() < 0.5, "long baselines resolve the source"
    for pol in range(2):
        np.testing.assert_allclose(np.abs(vis[cross, :, pol]), analytic, rtol=0, atol=GAUSS_ATOL_JY)


# The matrix path against the one-source-at-a-time path: the hour angle interpolated linearly between astropy
# transforms at the first and last integration departs from astropy in between by << 1 mas, < 1e-4 rad
# of phase on 2.6 km at 21 cm; complex64 products add ~1e-6 of the summed flux. Autocorrelations hold the
# 6500 Jy SEFD, where a float32 step is 5e-4 Jy: the two summation orders differ by a few steps there
MATRIX_ATOL_JY = 1e-3
MATRIX_RTOL = 4e-7  # 3 float32 ulps (1.2e-7 each)


def test_the_matrix_path_agrees_with_the_direct_path(tmp_path):
    t_mid = Time(START) + 1.5 * INTEGRATION_S * u.s
    c = _centre(t_mid)
    rng = np.random.default_rng(8)
    sky = [
        Source(c.ra.deg + rng.uniform(-2, 2), c.dec.deg + rng.uniform(-1.5, 1.5), rng.uniform(0.1, 2), -0.7)
        for _ in range(25)
    ]
    kw = dict(n_antennas=30, n_chan_per_subband=4, n_integrations=3, dec_deg=DEC, noise=False, gains=False, seed=2)
    t_matrix = simulate(tmp_path / "m", START, sky=sky, jitter_s=0.0, **kw)  # 25 > 20 sources: matrix
    assert t_matrix["visibility_method"] == "matrix"
    from contimg.sim import core

    old = core.MATRIX_MIN_SOURCES
    core.MATRIX_MIN_SOURCES = 1000
    try:
        t_direct = simulate(tmp_path / "d", START, sky=sky, jitter_s=0.0, **kw)
    finally:
        core.MATRIX_MIN_SOURCES = old
    assert t_direct["visibility_method"] == "direct"
    for name in ("sb00", "sb15"):
        pm = next((tmp_path / "m").glob(f"*_{name}.hdf5"))
        with h5py.File(pm) as fm, h5py.File(tmp_path / "d" / pm.name) as fd:
            np.testing.assert_allclose(
                fm["Data/visdata"][()], fd["Data/visdata"][()], rtol=MATRIX_RTOL, atol=MATRIX_ATOL_JY
            )


def test_light_curve_factors_by_hand():
    assert flux_factor("", 3) == 1.0
    assert flux_factor("dip:0.4:3:4", 2) == 1.0
    assert flux_factor("dip:0.4:3:4", 3) == pytest.approx(0.6)
    assert flux_factor("dip:0.4:3:4", 4) == pytest.approx(0.6)
    assert flux_factor("dip:0.4:3:4", 5) == 1.0
    assert flux_factor("flare:2.0:5:5", 5) == pytest.approx(3.0)
    assert flux_factor("flare:2.0:5:5", 6) == 1.0
    assert flux_factor("sine:0.1:7", 0) == pytest.approx(1.0)
    assert flux_factor("sine:0.1:7", 7 / 4) == pytest.approx(1.1)  # a quarter period: sin = 1
    assert flux_factor("sine:0.1:8:2", 8) == pytest.approx(0.9)  # zero phase on day 2: day 8 is 3/4 period
    assert flux_factor("dip:0.5:0:9;flare:1.0:1:1", 1) == pytest.approx(1.0)  # 0.5 * 2
    assert parse_lightcurve("sine:0.1:7") == [("sine", 0.1, 7.0)]
    for bad in ("dip:1.4:3:4", "dip:0.4:5:4", "sine:0.1:0", "flare:2", "wobble:1:2:3", "dip:a:1:2"):
        with pytest.raises(ValueError, match="bad light curve"):
            parse_lightcurve(bad)


def test_day_index_scales_a_variable_source(tmp_path):
    t0 = Time(START) + 0.5 * INTEGRATION_S * u.s
    c = _centre(t0)
    sky = [Source(c.ra.deg, c.dec.deg, 2.0, 0.0, "v", lightcurve="dip:0.4:3:4")]
    kw = dict(n_antennas=6, n_chan_per_subband=2, n_integrations=1, dec_deg=DEC, sky=sky, noise=False, gains=False)
    amps = {}
    for day in (2, 3):
        truth = simulate(tmp_path / str(day), START, day_index=day, jitter_s=0.0, **kw)
        assert truth["flux_factors"] == [pytest.approx(1.0 if day == 2 else 0.6)]
        a1, a2, _, vis, _ = _read_first_integration(next((tmp_path / str(day)).glob("*_sb05.hdf5")))
        amps[day] = np.abs(vis[a1 != a2])  # cross-correlations: the source alone (autos add the SEFD)
        # the catalogue beside the data keeps the base flux and the light curve
        assert read_sky_csv(tmp_path / str(day) / "sky.csv") == sky
    np.testing.assert_allclose(amps[3], 0.6 * amps[2], rtol=1e-6)
    # the day from an epoch: 2026-01-22 is 3 days before the start
    truth = simulate(tmp_path / "e", START, lightcurve_epoch="2026-01-22T00:00:00", jitter_s=0.0, **kw)
    assert truth["day_index"] == 3.0 and truth["flux_factors"] == [pytest.approx(0.6)]


def test_a_counts_sky_leaves_the_gains_of_the_same_seed_alone(tmp_path):
    kw = dict(n_antennas=5, n_chan_per_subband=1, n_integrations=1, noise=False, seed=12, dec_deg=DEC)
    counts = simulate(tmp_path / "c", START, sky="counts", **kw)
    simulate(tmp_path / "e", START, sky=[], **kw)
    assert counts["sky_model"] == "counts" and len(counts["sky"]) > 500
    g_c = np.load(tmp_path / "c" / "truth_gains.npz")["gains"]
    np.testing.assert_array_equal(g_c, np.load(tmp_path / "e" / "truth_gains.npz")["gains"])
    assert read_sky_csv(tmp_path / "c" / "sky.csv") == [Source(**s) for s in counts["sky"]]
