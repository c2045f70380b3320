"""Calibration on a simulated calibrator transit: solved gains against the injected ones; transfer to a target."""

import json
import subprocess

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from contimg.calibrate.report import CalibrateReport
from contimg.childjobs.env import casa_child_env, child_command
from contimg.image.qa import fit_point_source
from contimg.sim import Source, simulate
from tests.casa_helpers import run_in_child

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

AMP_RTOL = 0.02
PHASE_TOL_DEG = 2.0
FLUX_RTOL = 0.03


def job(name, *args, state):
    return subprocess.run(
        child_command(name, *args), env=casa_child_env(state), capture_output=True, text=True, timeout=900
    )


def _solve(root, dec_deg=None):
    truth = simulate(
        root / "cal",
        "2026-01-25T00:00:00",
        n_antennas=16,
        n_chan_per_subband=4,
        n_integrations=24,
        calibrator="0834+555",
        sky=[],
        seed=21,
        dec_deg=dec_deg,
    )
    assert (
        job("convert", *sorted((root / "cal").glob("*.hdf5")), "--out", root / "cal.ms", state=root / "casa").returncode
        == 0
    )
    proc = job(
        "calibrate", root / "cal.ms", "--out", root / "tables", "--report", root / "cal.json", state=root / "casa"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((root / "cal.json").read_text())
    CalibrateReport.from_dict(report)  # what the asset and the CLI read: every key present, none unknown
    return root, truth, report


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    return _solve(tmp_path_factory.mktemp("cal"))


def test_solution_reproduces_the_injected_gains(solved):
    _assert_gains_match(*solved)


def test_calibrator_far_from_the_pointing_centre_gives_the_same_gains(tmp_path):
    """0.7 deg off in dec (and up to 0.6 deg in RA over the drift): the solve phases the data to the
    calibrator before averaging, and the model carries the beam's tilt across the band."""
    from contimg.calibrate.calibrators import find_calibrator

    root, truth, report = _solve(tmp_path, dec_deg=find_calibrator("0834+555").dec_deg - 0.7)
    assert abs(report["plan"]["beam_spectral_index"]) > 0.2  # the tilt is real at this offset
    _assert_gains_match(root, truth, report)


def _assert_gains_match(root, truth, report):
    assert report["quality_ok"] and report["plan"]["name"] == "0834+555"
    assert abs(report["plan"]["transit_mjd"] - truth["calibrator"]["transit_mjd"]) * 86400 < 1.0
    got = run_in_child(
        f"""
        import casatools, json, numpy as np
        tb = casatools.table()
        def load(t):
            tb.open(t); g = tb.getcol('CPARAM'); f = tb.getcol('FLAG'); a = tb.getcol('ANTENNA1'); s = tb.getcol('SPECTRAL_WINDOW_ID'); tb.close()
            return g, f, a, s
        B = load("{root}/tables/tables.B"); G = load("{root}/tables/tables.G")
        tb.open("{root}/tables/tables.K")
        K = tuple(tb.getcol(c) for c in ('FPARAM', 'FLAG', 'ANTENNA1', 'SPECTRAL_WINDOW_ID'))
        tb.close()
        def chan_freqs(t):
            tb.open(t + "/SPECTRAL_WINDOW"); f = [tb.getcell('CHAN_FREQ', i) for i in range(tb.nrows())]; tb.close()
            return f
        k_ref = [f[0] for f in chan_freqs("{root}/tables/tables.K")]
        freqs = chan_freqs("{root}/tables/tables.B")
        out = {{}}
        for row in range(B[0].shape[2]):
            a, spw = int(B[2][row]), int(B[3][row])
            grow = [r for r in range(G[0].shape[2]) if G[2][r] == a and G[3][r] == spw][0]
            krow = [r for r in range(K[0].shape[2]) if K[2][r] == a and K[3][r] == spw][0]
            # CASA's K Jones: exp(+2 pi i tau (nu - nu_ref)), tau in ns
            kgain = np.exp(2j * np.pi * 1e-9 * K[0][:, :1, krow] * (freqs[spw] - k_ref[spw])[None, :])
            prod = kgain * B[0][:, :, row] * G[0][:, :, grow]  # (pol, chan)
            flag = B[1][:, :, row] | G[1][:, :, grow] | K[1][:, :1, krow]
            out.setdefault(a, {{}})[spw] = dict(re=prod.real.tolist(), im=prod.imag.tolist(), flag=flag.tolist())
        print(json.dumps(out))
    """,  # noqa: E501 (a CASA script run as is in a child process)
        root / "casa",
    )
    gains = np.load(root / "cal" / truth["gains_file"])
    numbers = list(gains["antenna_numbers"])
    g = gains["gains"]  # (antenna, pol, freq ascending) = SPW k channels, k = 0..15
    n_chan = truth["n_chan_per_subband"]
    ref = report["refant"]
    ref_idx = numbers.index(ref + 1)
    amp_err, phase_err = [], []
    for a_str, spws in got.items():
        a = int(a_str)
        if a + 1 not in numbers:
            continue
        ai = numbers.index(a + 1)
        for spw_str, sol in spws.items():
            k = int(spw_str)
            solved = np.array(sol["re"]) + 1j * np.array(sol["im"])
            flag = np.array(sol["flag"])
            injected = g[ai, :, k * n_chan : (k + 1) * n_chan]
            ref_phase = np.exp(1j * np.angle(g[ref_idx, :, k * n_chan : (k + 1) * n_chan]))
            expected = injected * np.conj(ref_phase)  # CASA fixes the reference antenna's phase to zero
            good = ~flag
            amp_err.append((np.abs(solved) / np.abs(expected) - 1)[good])
            phase_err.append(np.degrees(np.angle(solved * np.conj(expected)))[good])
    amp_err, phase_err = np.concatenate(amp_err), np.concatenate(phase_err)
    assert amp_err.size > 0.9 * len(numbers) * 2 * 16 * n_chan
    assert np.max(np.abs(amp_err)) < AMP_RTOL, np.percentile(np.abs(amp_err), [50, 99, 100])
    assert np.max(np.abs(phase_err)) < PHASE_TOL_DEG, np.percentile(np.abs(phase_err), [50, 99, 100])


def test_applying_the_tables_restores_a_target_flux(solved, tmp_path):
    root, truth, report = solved
    # a target chunk an hour later with the same antennas and gains (same seed, explicit sky)
    from astropy.time import Time

    from contimg.core.phasing import meridian_icrs

    start = Time(truth["chunks"][0]["start"]) + 1 * u.hour
    centre = meridian_icrs(start + 155 * u.s, truth["pointing_dec_deg"])
    src = Source(centre.ra.deg + 0.1, centre.dec.deg + 0.1, 1.5, 0.0, "target")
    simulate(
        tmp_path / "t",
        start.isot,
        n_antennas=16,
        n_chan_per_subband=4,
        n_integrations=24,
        dec_deg=truth["pointing_dec_deg"],
        sky=[src],
        seed=21,
    )
    tgains = np.load(tmp_path / "t" / "truth_gains.npz")["gains"]
    assert np.allclose(tgains, np.load(root / "cal" / truth["gains_file"])["gains"])
    assert (
        job(
            "convert", *sorted((tmp_path / "t").glob("*.hdf5")), "--out", tmp_path / "t.ms", state=root / "casa"
        ).returncode
        == 0
    )
    tables = [str(root / "tables" / f"tables.{kind}") for kind in ("K", "B", "G")]
    cfg = json.dumps({"max_size_px": 512, "niter": 500})
    args = [tmp_path / "t.ms", "--out", tmp_path / "img" / "t", "--config", cfg, "--calset", "tables"]
    for t in tables:
        args += ["--caltable", t]
    proc = job("image", *args, state=root / "casa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with fits.open(tmp_path / "img" / "t.pbcor.fits") as hdul:
        h, d = hdul[0].header, hdul[0].data[0, 0]
    assert h["CALSET"] == "tables" and any("tables.B" in str(c) for c in h["HISTORY"])
    w = WCS(h).celestial
    cell = abs(h["CDELT2"]) * 3600
    x, y = w.world_to_pixel(SkyCoord(src.ra_deg * u.deg, src.dec_deg * u.deg))
    flux, _, _ = fit_point_source(d, float(x), float(y), h["BMAJ"] * 3600 / cell, h["BMIN"] * 3600 / cell, h["BPA"])
    assert flux == pytest.approx(src.flux_jy, rel=FLUX_RTOL)
