"""The simulator writes what the correlator writes, and its physics matches independent computations."""

import itertools
import json
import re
import warnings

import h5py
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, HADec, SkyCoord
from astropy.time import Time

from contimg.core.instrument import SITE, load_stations
from contimg.sim import Source, simulate
from tests.test_real_files import FREQ_TOL_HZ, correlator_labels_hz

START = "2026-01-25T00:00:00"
DEC = 55.0
NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(\d{2})\.hdf5$")
C = 299_792_458.0
# Phase agreement with astropy's AltAz geometry on baselines < 500 m: the simulator neglects polar
# motion (~0.3") in its ITRF->hour-angle rotation: 2 pi * 500 m / 0.2 m * 1.5e-6 rad ~ 0.02 rad.
PHASE_TOL_RAD = 0.03
SHORT_BASELINE_M = 500.0


def read(path):
    from pyuvdata import UVData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv = UVData.from_file(str(path), file_type="uvh5", run_check=False)
    uv.uvw_array = uv.uvw_array.astype(np.float64)
    return uv


@pytest.fixture(scope="module")
def small_chunk(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    truth = simulate(out, START, n_chunks=2, n_antennas=12, n_chan_per_subband=4, n_integrations=4, seed=3)
    return out, truth


def test_files_are_read_by_pyuvdata_with_the_correlator_layout(small_chunk):
    out, truth = small_chunk
    files = sorted(out.glob("*.hdf5"))
    assert len(files) == 32
    stamps = {}
    all_freqs = []
    for path in files:
        m = NAME.match(path.name)
        assert m, path.name
        uv = read(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "uvw do not match" is expected for drift-labelled files
            uv.check()
        sb = int(m.group(2))
        stamps.setdefault(sb, []).append(m.group(1))
        assert uv.telescope.name == "OVRO_MMA"
        assert uv.telescope.Nants == 117 and uv.Nants_data == 12
        assert uv.Nbls == 12 * 13 // 2  # autos included
        assert np.any(uv.ant_1_array == uv.ant_2_array)
        assert uv.Ntimes == 4 and uv.Npols == 2
        np.testing.assert_array_equal(uv.polarization_array, [-5, -6])
        np.testing.assert_allclose(uv.integration_time, 96 * 0.134217728, rtol=0, atol=1e-9)
        assert np.all(np.diff(uv.freq_array) < 0), "channels descend inside a file"
        np.testing.assert_allclose(uv.telescope.antenna_diameters, 4.65)
        ek = uv.extra_keywords
        assert ek["phase_center_epoch"] == "HADEC" and ek["ha_phase_center"] == 0.0
        np.testing.assert_allclose(ek["phase_center_dec"], np.radians(DEC))
        with h5py.File(path) as h5:
            assert h5["Header/uvw_array"].dtype == np.float32
            assert h5["Data/visdata"].shape == (uv.Nblts, 1, 4, 2)
            assert h5["Data/visdata"].dtype == np.complex64
            assert h5["Header/phase_type"][()] == b"drift"
        # the correlator's labels (means of its raw channels' labels, from its published parameters)
        np.testing.assert_allclose(uv.freq_array, correlator_labels_hz(sb, 4), rtol=0, atol=FREQ_TOL_HZ)
        np.testing.assert_allclose(uv.channel_width, 11.71875e6 / 4, rtol=0, atol=FREQ_TOL_HZ)
        all_freqs.append((sb, uv.freq_array.min(), uv.freq_array.max()))
    # sb00 highest, descending with subband; the band runs between the labels of raw channels 1024
    # and 7167 (1530 MHz down in steps of 30.517578125 kHz); a label of 96 raw channels is the label
    # of its middle, 47.5 raw channels from either end
    all_freqs = sorted(set(all_freqs))
    assert len(all_freqs) == 16
    assert all(a[1] > b[2] for a, b in itertools.pairwise(all_freqs))
    raw_hz = 250e6 / 8192
    lo = all_freqs[-1][1] - 47.5 * raw_hz
    hi = all_freqs[0][2] + 47.5 * raw_hz
    np.testing.assert_allclose([lo, hi], [1530e6 - 7167 * raw_hz, 1530e6 - 1024 * raw_hz], rtol=0, atol=FREQ_TOL_HZ)
    # each chunk's 16 subband stamps jitter by seconds
    chunk0 = sorted(s[0] for s in stamps.values())
    assert len(set(chunk0)) > 1
    assert (Time(chunk0[-1]) - Time(chunk0[0])).sec <= 4
    assert truth["chunks"][1]["start_mjd"] - truth["chunks"][0]["start_mjd"] == pytest.approx(309.237645312 / 86400)


def _lone_source_chunk(tmp_path, source, **kw):
    return simulate(
        tmp_path,
        START,
        n_chunks=1,
        n_antennas=10,
        n_chan_per_subband=4,
        n_integrations=3,
        dec_deg=DEC,
        sky=[source],
        noise=False,
        gains=False,
        seed=5,
        jitter_s=0.0,
        **kw,
    )


def test_source_at_the_phase_centre_gives_flux_times_beam(tmp_path):
    t0 = Time(START) + 0.5 * 96 * 0.134217728 * u.s  # first integration's midpoint
    # the fringe-stop centre at t0, in ICRS, computed with astropy directly
    centre = SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=HADec(obstime=t0, location=SITE, pressure=0 * u.hPa)).icrs
    _lone_source_chunk(tmp_path, Source(centre.ra.deg, centre.dec.deg, 2.5))
    uv = read(next(tmp_path.glob("*_sb07.hdf5")))
    first = uv.time_array == uv.time_array.min()
    cross = uv.ant_1_array != uv.ant_2_array
    v = uv.data_array[first & cross]
    np.testing.assert_allclose(v, 2.5, rtol=0, atol=2.5e-4)  # beam is 1 on axis, phase 0


def test_off_centre_phase_matches_astropy_geometry(tmp_path):
    src = Source(0.0, 0.0, 1.0)
    t_mid = Time(START) + 1.5 * 96 * 0.134217728 * u.s
    centre = SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=HADec(obstime=t_mid, location=SITE, pressure=0 * u.hPa)).icrs
    src = Source(centre.ra.deg + 0.6, DEC + 0.4, 1.0)
    _lone_source_chunk(tmp_path, src)
    uv = read(next(tmp_path.glob("*_sb03.hdf5")))
    stations = load_stations()
    times = Time(np.unique(uv.time_array), format="jd")
    altaz = AltAz(obstime=times, location=SITE, pressure=0 * u.hPa)
    s_aa = SkyCoord(ra=src.ra_deg * u.deg, dec=src.dec_deg * u.deg).transform_to(altaz)
    p_aa = SkyCoord(
        ha=np.zeros(len(times)) * u.deg,
        dec=np.full(len(times), DEC) * u.deg,
        frame=HADec(obstime=times, location=SITE, pressure=0 * u.hPa),
    ).transform_to(altaz)

    def enu(aa):
        alt, az = aa.alt.rad, aa.az.rad
        return np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)], axis=-1)

    ds = enu(s_aa) - enu(p_aa)  # (T, 3)
    lat, lon = SITE.lat.rad, SITE.lon.rad
    rot = np.array(
        [
            [-np.sin(lon), np.cos(lon), 0],
            [-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)],
            [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)],
        ]
    )
    pos = {
        n - 1: rot @ EarthLocation.from_geodetic(lo * u.deg, la * u.deg, h * u.m).itrs.cartesian.xyz.to_value(u.m)
        for n, la, lo, h in zip(stations.number, stations.lat_deg, stations.lon_deg, stations.height_m, strict=True)
    }
    checked = 0
    for k in range(uv.Nblts):
        a1, a2 = uv.ant_1_array[k], uv.ant_2_array[k]
        b = pos[a2] - pos[a1]
        if a1 == a2 or np.linalg.norm(b) > SHORT_BASELINE_M:
            continue
        ti = np.argmin(np.abs(times.jd - uv.time_array[k]))
        expected = 2 * np.pi * uv.freq_array / C * (b @ ds[ti])
        measured = np.angle(uv.data_array[k, :, 0])
        diff = np.angle(np.exp(1j * (measured - expected)))
        assert np.max(np.abs(diff)) < PHASE_TOL_RAD, (a1, a2, diff)
        checked += 1
    assert checked >= 6


def test_noise_matches_the_radiometer_equation(tmp_path):
    simulate(
        tmp_path, START, n_chunks=1, n_antennas=12, n_chan_per_subband=8, n_integrations=4, sky=[], gains=False, seed=11
    )
    width_hz = 11.71875e6 / 8
    expected = 6500.0 / np.sqrt(2 * width_hz * 96 * 0.134217728)  # per real/imag part
    re_parts, im_parts = [], []
    for path in sorted(tmp_path.glob("*.hdf5")):
        uv = read(path)
        cross = uv.ant_1_array != uv.ant_2_array
        re_parts.append(uv.data_array[cross].real.ravel())
        im_parts.append(uv.data_array[cross].imag.ravel())
    assert np.std(np.concatenate(re_parts)) == pytest.approx(expected, rel=0.05)
    assert np.std(np.concatenate(im_parts)) == pytest.approx(expected, rel=0.05)
    # autos: real, positive, SEFD on average (empty sky, unit gains)
    autos = uv.data_array[~cross]
    assert np.all(autos.imag == 0) and np.all(autos.real > 0)
    assert autos.real.mean() == pytest.approx(6500.0, rel=0.01)


def test_same_seed_same_files_and_faults_do_what_they_say(tmp_path):
    kw = dict(n_chunks=1, n_antennas=8, n_chan_per_subband=4, n_integrations=2, seed=9)
    simulate(tmp_path / "a", START, **kw)
    simulate(tmp_path / "b", START, **kw)
    for pa in sorted((tmp_path / "a").glob("*.hdf5")):
        with h5py.File(pa) as fa, h5py.File(tmp_path / "b" / pa.name) as fb:
            np.testing.assert_array_equal(fa["Data/visdata"][()], fb["Data/visdata"][()])

    truth = simulate(tmp_path / "f", START, faults="truncate@0:3,missing@0:7,duplicate@0:2,nan@0:5,badname@0:9", **kw)
    names = sorted(p.name for p in (tmp_path / "f").glob("*.hdf5"))
    by_sb = {}
    for n in names:
        m = NAME.match(n)
        if m:
            by_sb.setdefault(int(m.group(2)), []).append(n)
    assert 7 not in by_sb, "missing subband written"
    assert len(by_sb[2]) == 2, "duplicate subband not written twice"
    assert 9 not in by_sb and any("_subband09.hdf5" in n for n in names)
    with pytest.raises(OSError):
        with h5py.File(tmp_path / "f" / by_sb[3][0]) as h5:
            h5["Data/visdata"][()]
    uv = read(tmp_path / "f" / by_sb[5][0])
    assert np.isnan(uv.data_array).any()
    assert {f["kind"] for f in truth["faults"]} == {"truncate", "missing", "duplicate", "nan", "badname"}
    assert json.loads((tmp_path / "f" / "truth.json").read_text())["faults"] == truth["faults"]


# pyuvdata's own rephasing, from the meridian to a lone source, must remove its fringe. Observed
# residual 2e-4 rad; float32 uvw (7 significant digits on <1 km baselines, ~1e-4 m at 21 cm)
# allow ~3e-3 rad, so 0.01 rad still catches any sign or frame error (those give radians).
PYUVDATA_PHASE_TOL_RAD = 0.01


def test_pyuvdata_phase_to_an_off_centre_source_removes_its_fringe(tmp_path):
    t_mid = Time(START) + 1.5 * 96 * 0.134217728 * u.s
    frame = HADec(obstime=t_mid, location=SITE, pressure=0 * u.hPa)
    centre = SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=frame)
    src = Source(centre.icrs.ra.deg + 0.6, DEC + 0.4, 1.0)
    _lone_source_chunk(tmp_path, src)
    uv = read(next(tmp_path.glob("*_sb03.hdf5")))
    cross = uv.ant_1_array != uv.ant_2_array
    assert np.abs(np.angle(uv.data_array[cross, :, 0])).max() > 1.0, "source should fringe before rephasing"
    # tell pyuvdata the truth: the data are phased to the fixed az/el of (HA=0, DEC), a drift-scan centre
    aa = centre.transform_to(AltAz(obstime=t_mid, location=SITE, pressure=0 * u.hPa))
    cid = uv._add_phase_center(
        cat_name="meridian", cat_type="driftscan", cat_lon=aa.az.rad, cat_lat=aa.alt.rad, cat_frame="altaz"
    )
    uv.phase_center_id_array[:] = cid
    uv._set_app_coords_helper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uv.phase(lon=np.radians(src.ra_deg), lat=np.radians(src.dec_deg), epoch="J2000", cat_name="src")
    residual = np.angle(uv.data_array[cross])
    assert np.abs(residual).max() < PYUVDATA_PHASE_TOL_RAD


# A calibrator within 6.4 s (half an integration) of transit is 0.015 deg off the beam centre, where
# the 2.7 deg-FWHM Airy beam is 1 - 1e-4: its visibilities are its flux to 1e-3.
CAL_FLUX_RTOL = 1e-3


def test_calibrator_transits_in_the_middle_of_the_chosen_chunk(tmp_path):
    from contimg.calibrate.calibrators import find_calibrator

    n_int = 4
    requested = Time("2026-01-25T00:00:00")
    truth = simulate(
        tmp_path,
        requested.isot,
        n_chunks=2,
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=n_int,
        calibrator="0834+555",
        transit_chunk=1,
        sky=[],
        noise=False,
        gains=False,
        seed=2,
        jitter_s=0.0,
    )
    cal = find_calibrator("0834+555")
    start = Time(truth["chunks"][0]["start"])
    transit = Time(truth["calibrator"]["transit_time"])
    assert 0 <= (start - requested).sec < 86400
    integ = 96 * 0.134217728
    np.testing.assert_allclose((transit - start).sec, 24 * integ + n_int * integ / 2, atol=1e-3)
    # astropy: the calibrator is on the meridian at that time, at the pointing dec
    hadec = SkyCoord(ra=cal.ra_deg * u.deg, dec=cal.dec_deg * u.deg).transform_to(
        HADec(obstime=transit, location=SITE, pressure=0 * u.hPa)
    )
    assert abs(hadec.ha.wrap_at(180 * u.deg).deg) < 1e-4
    assert truth["pointing_dec_deg"] == pytest.approx(hadec.dec.deg, abs=1e-6)
    assert [s["name"] for s in truth["sky"]] == [cal.name]
    path = tmp_path / truth["chunks"][1]["files"][8]["file"]
    uv = read(path)
    cross = uv.ant_1_array != uv.ant_2_array
    t1 = uv.time_array == np.unique(uv.time_array)[1]  # 6.4 s before transit
    flux = cal.flux_jy * (uv.freq_array / 1.4e9) ** (cal.spectral_index or 0.0)  # power law from 1.4 GHz
    np.testing.assert_allclose(
        np.abs(uv.data_array[cross & t1]),
        np.broadcast_to(flux[None, :, None], (int((cross & t1).sum()), uv.Nfreqs, 2)),
        rtol=CAL_FLUX_RTOL,
    )


# complex64 visibilities of a 2.5 Jy source carry ~1e-7 relative rounding; gains are O(1)
GAIN_RTOL = 1e-5


def test_injected_gains_follow_the_documented_convention(tmp_path):
    t0 = Time(START) + 0.5 * 96 * 0.134217728 * u.s
    centre = SkyCoord(ha=0 * u.deg, dec=DEC * u.deg, frame=HADec(obstime=t0, location=SITE, pressure=0 * u.hPa)).icrs
    simulate(
        tmp_path,
        START,
        n_chunks=1,
        n_antennas=10,
        n_chan_per_subband=4,
        n_integrations=3,
        dec_deg=DEC,
        sky=[Source(centre.ra.deg, centre.dec.deg, 2.5)],
        noise=False,
        gains=True,
        seed=5,
        jitter_s=0.0,
    )
    truth = json.loads((tmp_path / "truth.json").read_text())
    g = np.load(tmp_path / truth["gains_file"])
    uv = read(next(tmp_path.glob("*_sb07.hdf5")))
    first = uv.time_array == uv.time_array.min()
    ant_index = {int(n) - 1: k for k, n in enumerate(g["antenna_numbers"])}
    chans = [int(np.argmin(np.abs(g["freq_hz"] - f))) for f in uv.freq_array]
    gains = g["gains"]
    amps = np.abs(gains)
    assert 0.02 < amps.std() < 0.3 and np.degrees(np.angle(gains)).std() > 5  # ~10%, tens of degrees
    for k in np.flatnonzero(first & (uv.ant_1_array != uv.ant_2_array)):
        gi = gains[ant_index[uv.ant_1_array[k]]][:, chans].T  # (F, pol)
        gj = gains[ant_index[uv.ant_2_array[k]]][:, chans].T
        # conventions.md: V_uvh5 = conj(g_i) g_j V_true (so the MS has g_i conj(g_j) V, CASA's)
        np.testing.assert_allclose(uv.data_array[k], 2.5 * np.conj(gi) * gj, rtol=GAIN_RTOL)
