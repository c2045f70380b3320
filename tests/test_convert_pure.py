"""The converter's pure parts (no casacore): chunk-ordered reading, band checks, SPW layout, the report."""

import json

import h5py
import numpy as np
import pytest

from contimg.convert.bands import BandError, check_subband_labels, ms_spectral_layout
from contimg.convert.report import ConvertReport
from contimg.convert.uvh5read import channels_ascending, read_chunk_ordered
from tests.test_real_files import FREQ_TOL_HZ, correlator_labels_hz

SUBBAND_HZ = 250e6 / 8192 * 384  # from the correlator's parameters: 384 raw channels of bw / nchan


@pytest.mark.parametrize(
    "shape,chunks",
    [
        ((7, 1, 8, 2), (3, 1, 2, 1)),
        ((7, 8, 2), (7, 4, 2)),
        ((7, 8, 2), None),
        ((5, 1, 6, 2), (2, 1, 4, 1)),
    ],  # 6 channels in chunks of 4: one slab
    ids=["old-chunked", "new-chunked", "contiguous", "odd-chunks"],
)
def test_chunk_ordered_read_is_the_array_h5py_reads(tmp_path, shape, chunks):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.create_dataset("visdata", data=a, chunks=chunks)
    with h5py.File(tmp_path / "x.h5", "r") as h5:
        view = read_chunk_ordered(h5["visdata"])
    n, n_f, n_p = shape[0], shape[-2], shape[-1]
    expected = a.reshape(n, n_f, n_p)
    np.testing.assert_array_equal(np.ascontiguousarray(view).reshape(n, n_f, n_p), expected)
    asc = np.ascontiguousarray(channels_ascending(view, descending=True)).reshape(n, n_f, n_p)
    np.testing.assert_array_equal(asc, expected[:, ::-1, :])
    same = np.ascontiguousarray(channels_ascending(view, descending=False)).reshape(n, n_f, n_p)
    np.testing.assert_array_equal(same, expected)


def test_band_check_accepts_the_correlator_labels_in_either_order_and_the_old_centres():
    for sb in (0, 7, 15):
        for n_chan in (48, 4):
            f = correlator_labels_hz(sb, n_chan)
            w = np.full(n_chan, SUBBAND_HZ / n_chan)
            check_subband_labels(f, w, sb)
            check_subband_labels(f[::-1], -w, sb)
            check_subband_labels(f - 250e6 / 8192 / 2, w, sb)  # centre labels, 15.26 kHz lower


@pytest.mark.parametrize(
    "case,field",
    [
        ("next_subband", "freq_array"),
        ("shifted_one_channel", "freq_array"),
        ("not_monotonic", "freq_array"),
        ("uneven", "freq_array"),
        ("nan", "freq_array"),
        ("width_x2", "channel_width"),
        ("zero_width", "channel_width"),
    ],
)
def test_band_check_refuses_labels_of_another_band(case, field):
    f = correlator_labels_hz(3, 48)
    w = np.full(48, SUBBAND_HZ / 48)
    if case == "next_subband":
        f = correlator_labels_hz(4, 48)
    elif case == "shifted_one_channel":
        f = f + SUBBAND_HZ / 48
    elif case == "not_monotonic":
        f = f.copy()
        f[[3, 4]] = f[[4, 3]]
    elif case == "uneven":
        f = f.copy()
        f[10] += 0.1 * w[0]
    elif case == "nan":
        f = f.copy()
        f[0] = np.nan
    elif case == "width_x2":
        w = 2 * w
    else:
        w = w.copy()
        w[5] = 0.0
    with pytest.raises(BandError) as err:
        check_subband_labels(f, w, 3)
    assert err.value.field == field


def test_spw_layout_carries_the_files_labels_ascending_and_fills_missing_subbands():
    labels = {sb: (correlator_labels_hz(sb, 4) - 7.0, np.full(4, SUBBAND_HZ / 4)) for sb in range(16) if sb != 6}
    freqs, widths, spw = ms_spectral_layout(labels, 4)
    assert np.all(np.diff(freqs) > 0)
    for k in range(16):
        sb = 15 - k
        expected = correlator_labels_hz(sb, 4)[::-1] - (0.0 if sb == 6 else 7.0)
        np.testing.assert_allclose(freqs[spw == k], expected, rtol=0, atol=FREQ_TOL_HZ)
    np.testing.assert_allclose(widths, SUBBAND_HZ / 4, rtol=0, atol=FREQ_TOL_HZ)
    overlapping = dict(labels)
    overlapping[5] = (correlator_labels_hz(5, 4) - SUBBAND_HZ / 2, np.full(4, SUBBAND_HZ / 4))
    with pytest.raises(ValueError, match="subbands 6 and 5 overlap"):
        ms_spectral_layout(overlapping, 4)


def _report_dict() -> dict:
    return {
        "ms_path": "/x.ms",
        "files": ["a_sb00.hdf5"],
        "n_subbands_present": 1,
        "missing_subbands": list(range(1, 16)),
        "n_rows": 16,
        "n_antennas": 2,
        "n_channels": 64,
        "n_times": 1,
        "start_mjd": 1.0,
        "end_mjd": 2.0,
        "mid_mjd": 1.5,
        "phase_center_ra_deg": 10.0,
        "phase_center_dec_deg": 55.0,
        "pointing_dec_deg": 55.0,
        "freq_min_hz": 1.31e9,
        "freq_max_hz": 1.5e9,
        "weight_spectrum": False,
        "flagged_fraction": 0.5,
        "nan_flagged": 0,
        "checks": {"c": {"passed": True, "value": 1, "limit": 2}},
        "timings_s": {"total": 1.0},
        "bytes_in": 10,
        "peak_rss_mb": 1.0,
        "workers": 2,
        "worker_peak_rss_mb": 3.0,
        "code_version": "v",
    }


def test_report_round_trips_through_json_and_names_missing_or_unknown_keys():
    d = _report_dict()
    rep = ConvertReport.from_dict(json.loads(json.dumps(d)))
    assert rep.asdict() == d and rep.checks_passed and rep.missing_subbands == list(range(1, 16))
    missing = {k: v for k, v in d.items() if k != "n_rows"}
    with pytest.raises(ValueError, match=r"missing key\(s\) \['n_rows'\]"):
        ConvertReport.from_dict(missing)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['log_path'\]"):
        ConvertReport.from_dict({**d, "log_path": "/l"})
    optional = {k: v for k, v in d.items() if k != "worker_peak_rss_mb"}
    assert ConvertReport.from_dict(optional).worker_peak_rss_mb is None
    with pytest.raises(TypeError):
        ConvertReport.from_dict([("ms_path", "/x.ms")])


# astropy's own ITRS -> GCRS rotation of the antennas and erfa's c2t06a matrices use the same
# Earth-orientation data: w agrees to float64 rounding on km baselines (observed ~1e-9 m); 1e-6 m
# is 4e-6 rad of phase at 1.5 GHz, and any frame or sign error is metres.
W_TOL_M = 1e-6


def test_w_terms_match_astropy_frames():
    from types import SimpleNamespace

    from astropy import units as u
    from astropy.coordinates import GCRS, ITRS, CartesianRepresentation, HADec, SkyCoord
    from astropy.time import Time

    from contimg.convert.frames import baseline_w, sky_frames
    from contimg.core.instrument import SITE, load_stations

    st = load_stations()
    site_m = np.array([SITE.x.value, SITE.y.value, SITE.z.value])
    numbers = st.number - 1
    pairs = np.array([(0, 39), (11, 99), (74, 109)])
    times_jd = Time("2025-06-15T00:00:00").jd + np.array([0.5, 1.5, 2.5]) * 12.884901888 / 86400
    sub = SimpleNamespace(
        time_jd=np.repeat(times_jd, len(pairs)),
        ant1=np.tile(pairs[:, 0], 3),
        ant2=np.tile(pairs[:, 1], 3),
        antenna_numbers=numbers,
        antenna_positions_m=st.itrf_m - site_m,
        pointing_dec_deg=55.0,
        telescope_lat_lon_alt=(SITE.lat.rad, SITE.lon.rad, SITE.height.value),
    )
    ra_rad, dec_rad = np.radians(123.4), np.radians(55.2)
    w_old, w_new = baseline_w(sub, sky_frames([sub], ra_rad, dec_rad)[0])
    t = Time(sub.time_jd, format="jd", scale="utc")
    gcrs = GCRS(obstime=t)

    def in_gcrs(xyz):
        return ITRS(CartesianRepresentation(xyz.T * u.m), obstime=t).transform_to(gcrs).cartesian.xyz.to_value(u.m).T

    b = in_gcrs(st.itrf_m[sub.ant2]) - in_gcrs(st.itrf_m[sub.ant1])
    s_new = SkyCoord(ra=ra_rad * u.rad, dec=dec_rad * u.rad).transform_to(gcrs).cartesian.xyz.value.T
    s_old = (
        SkyCoord(
            ha=np.zeros(len(t)) * u.deg,
            dec=np.full(len(t), 55.0) * u.deg,
            frame=HADec(obstime=t, location=SITE, pressure=0 * u.hPa),
        )
        .transform_to(gcrs)
        .cartesian.xyz.value.T
    )
    np.testing.assert_allclose(w_new, np.einsum("ij,ij->i", b, s_new), rtol=0, atol=W_TOL_M)
    np.testing.assert_allclose(w_old, np.einsum("ij,ij->i", b, s_old), rtol=0, atol=W_TOL_M)
    assert np.abs(w_old - w_new).max() > 1.0  # the field is off the fringe-stop centre: a real rotation
