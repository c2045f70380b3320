"""Imaging on simulated chunks: fluxes, positions and noise against the truth; both imagers; failures."""

import json
import subprocess

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from contimg.casa_env import casa_child_env, child_command
from contimg.phasing import meridian_icrs
from contimg.qa import fit_point_source
from contimg.sim import Source, simulate
from tests.casa_helpers import run_in_child

START = "2026-01-25T00:00:00"
N_INT = 12
FLUX_RTOL = 0.05
POSITION_FRACTION_OF_BEAM = 0.2
RMS_RTOL = 0.30
# natural weighting so the radiometer expectation applies directly; a 1024 px field keeps the test quick
CONFIG = json.dumps({"weighting": "natural", "max_size_px": 1024, "niter": 2000})


def run_job(job, *args, state):
    return subprocess.run(child_command(job, *args), env=casa_child_env(state), capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def chunk(tmp_path_factory):
    root = tmp_path_factory.mktemp("image")
    t_mid = Time(START) + N_INT / 2 * 96 * 0.134217728 * u.s
    c = meridian_icrs(t_mid, 55.0)
    sky = [Source(c.ra.deg + 0.05, c.dec.deg - 0.05, 2.0, 0.0, "bright"),
           Source(c.ra.deg + 0.45, c.dec.deg + 0.25, 0.4, 0.0, "faint1"),
           Source(c.ra.deg - 0.40, c.dec.deg - 0.30, 0.25, 0.0, "faint2")]
    truth = simulate(root / "sim", START, n_antennas=24, n_chan_per_subband=4, n_integrations=N_INT, dec_deg=55.0,
                     sky=sky, gains=False, seed=8)
    proc = run_job("convert", *sorted((root / "sim").glob("*.hdf5")), "--out", root / "chunk.ms", state=root / "casa")
    assert proc.returncode == 0, proc.stderr
    return root, truth


def make(root, imager):
    prefix = root / imager / "img"
    proc = run_job("image", root / "chunk.ms", "--out", prefix, "--imager", imager, "--config", CONFIG,
                   "--report", root / f"{imager}.json", state=root / "casa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return prefix, json.loads((root / f"{imager}.json").read_text())


def measure(prefix, truth):
    """Fit the restoring beam at each true position in the primary-beam-corrected image."""
    with fits.open(f"{prefix}.pbcor.fits") as hdul:
        header, data = hdul[0].header, hdul[0].data[0, 0]
    wcs = WCS(header).celestial
    cell = abs(header["CDELT2"]) * 3600
    bmaj, bmin = header["BMAJ"] * 3600 / cell, header["BMIN"] * 3600 / cell
    out = {}
    for s in truth["sky"]:
        true = SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg)
        x, y = wcs.world_to_pixel(true)
        flux, fx, fy = fit_point_source(data, float(x), float(y), bmaj, bmin, header["BPA"])
        out[s["name"]] = (flux, wcs.pixel_to_world(fx, fy).separation(true).arcsec)
    return out, header


def test_image_recovers_sources_noise_and_headers(chunk):
    root, truth = chunk
    prefix, m = make(root, "tclean")
    results, header = measure(prefix, truth)
    rms = m["rms_jy"]
    assert rms == pytest.approx(m["expected_rms_jy"], rel=RMS_RTOL)
    beam_minor = header["BMIN"] * 3600
    for s in truth["sky"]:
        flux, offset = results[s["name"]]
        if s["flux_jy"] < 10 * rms:
            continue
        assert flux == pytest.approx(s["flux_jy"], rel=FLUX_RTOL), s["name"]
        assert offset < POSITION_FRACTION_OF_BEAM * beam_minor, s["name"]
    # FITS an astronomer opens: WCS, beam, units, date, provenance
    for key in ("BMAJ", "BMIN", "BPA", "BUNIT", "DATE-OBS", "QARMS", "CALSET", "CIVERS"):
        assert key in header, key
    assert header["CALSET"] == "NONE" and header["BUNIT"].upper() == "JY/BEAM"
    wcs = WCS(header)
    assert wcs.naxis == 4 and wcs.wcs.ctype[0].startswith("RA---SIN") and "FREQ" in wcs.wcs.ctype[2]
    bright = truth["sky"][0]
    x, y = wcs.celestial.world_to_pixel(SkyCoord(bright["ra_deg"] * u.deg, bright["dec_deg"] * u.deg))
    back = wcs.celestial.pixel_to_world(x, y)
    assert back.separation(SkyCoord(bright["ra_deg"] * u.deg, bright["dec_deg"] * u.deg)).arcsec < 1e-6
    assert (root / "tclean" / "img.png").stat().st_size > 1000
    assert (root / "tclean" / "img.image").is_dir(), "tclean keeps its CASA image beside the FITS"


def test_wsclean_and_tclean_dirty_images_agree(chunk):
    """Both imagers read the MS the same way: dirty images (niter 0) give the same fluxes and positions."""
    root, truth = chunk
    dirty = {}
    for imager in ("wsclean", "tclean"):
        prefix = root / f"dirty-{imager}" / "img"
        cfg = json.dumps({"weighting": "natural", "max_size_px": 1024, "niter": 0})
        proc = run_job("image", root / "chunk.ms", "--out", prefix, "--imager", imager, "--config", cfg,
                       state=root / "casa")
        assert proc.returncode == 0, proc.stderr[-3000:]
        with fits.open(f"{prefix}.pbcor.fits") as hdul:
            header, data = hdul[0].header, hdul[0].data[0, 0]
        wcs = WCS(header).celestial
        out = {}
        for s in truth["sky"]:
            true = SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg)
            x, y = (int(round(float(v))) for v in wcs.world_to_pixel(true))
            win = data[y - 6:y + 7, x - 6:x + 7]
            j, i = np.unravel_index(np.nanargmax(win), win.shape)
            out[s["name"]] = (float(win[j, i]), wcs.pixel_to_world(x - 6 + i, y - 6 + j))
        dirty[imager] = (out, header["BMIN"] * 3600 if "BMIN" in header else None)
    for s in truth["sky"]:
        fw, pw = dirty["wsclean"][0][s["name"]]
        ft, pt = dirty["tclean"][0][s["name"]]
        assert fw == pytest.approx(ft, rel=FLUX_RTOL), s["name"]
        assert pw.separation(pt).arcsec < 2 * 4.5, s["name"]  # same peak pixel within a pixel or two


def test_all_flagged_chunk_fails_with_a_reason_and_no_products(chunk, tmp_path):
    root, _ = chunk
    flagged = tmp_path / "flagged.ms"
    run_in_child(f"""
        import casatasks, shutil, json
        shutil.copytree("{root}/chunk.ms", "{flagged}")
        casatasks.flagdata(vis="{flagged}", mode="manual", flagbackup=False)
        print(json.dumps({{}}))
    """, root / "casa")
    proc = run_job("image", flagged, "--out", tmp_path / "out" / "img", "--config", CONFIG, state=root / "casa")
    assert proc.returncode != 0 and "all cross-correlation data are flagged" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
