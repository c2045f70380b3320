"""Forced photometry on a real image: a simulated chunk converted and imaged by the real child jobs (WSClean).

The reference catalogue is the simulator's sky; the fluxes recovered in the primary-beam-corrected image must
match the injected ones within the imaging tolerance tests/test_image.py holds the imager to (5 %), widened by
the measurement's own error.
"""

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.time import Time

from contimg.core.phasing import meridian_icrs
from contimg.core.refcat import ReferenceCatalog
from contimg.photometry.forced import PB_LEVEL, measure_image
from contimg.sim import Source, simulate
from tests.casa_helpers import run_job

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs: not in `make test-fast`

START = "2026-01-25T00:00:00"
N_INT = 12
FLUX_RTOL = 0.05  # tests/test_image.py: the imager's flux accuracy on this kind of chunk
ERR_SIGMAS = 3.0  # plus 3 times the measurement's error (its thermal part)
CONFIG = json.dumps({"weighting": "natural", "max_size_px": 1024, "niter": 2000, "initial_images_min_uv_cells": 0})
# (dRA, dDec) from the meridian field in deg, flux Jy: inside the 20 % level; the last beyond it (1.6 deg)
OFFSETS = [(0.05, -0.05, 2.0), (0.45, 0.25, 0.4), (-0.40, -0.30, 0.25), (-0.2, 0.5, 0.6), (1.1, 1.2, 0.5)]


def test_forced_photometry_of_a_real_image(tmp_path):
    t_mid = Time(START) + N_INT / 2 * 96 * 0.134217728 * u.s
    c = meridian_icrs(t_mid, 55.0)
    sky = [Source(c.ra.deg + dx, c.dec.deg + dy, s, 0.0, f"S{i}") for i, (dx, dy, s) in enumerate(OFFSETS)]
    simulate(
        tmp_path / "sim",
        START,
        n_antennas=24,
        n_chan_per_subband=4,
        n_integrations=N_INT,
        dec_deg=55.0,
        sky=sky,
        gains=False,
        seed=8,
    )
    state = tmp_path / "casa"
    proc = run_job("convert", *sorted((tmp_path / "sim").glob("*.hdf5")), "--out", tmp_path / "c.ms", state=state)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prefix = tmp_path / "img"
    proc = run_job(
        "image", tmp_path / "c.ms", "--out", prefix, "--imager", "wsclean", "--config", CONFIG, "--window",
        "2026-01-25T00:00", "--report", tmp_path / "r.json", state=state,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    ref = ReferenceCatalog(
        np.array([s.name for s in sky]),
        np.array([s.ra_deg for s in sky]),
        np.array([s.dec_deg for s in sky]),
        np.array([s.flux_jy for s in sky]),
        np.zeros(len(sky)),
    )
    res = measure_image(f"{prefix}.pbcor.fits", ref)
    got = {m.source_id: m for m in res.measurements}
    assert res.window == "2026-01-25T00:00"
    assert set(got) == {"S0", "S1", "S2", "S3"}, "the source beyond the 20 % level is skipped"
    for s in sky[:4]:
        m = got[s.name]
        assert m.pb >= PB_LEVEL and m.err_jy > 0
        assert abs(m.flux_jy - s.flux_jy) <= FLUX_RTOL * s.flux_jy + ERR_SIGMAS * m.err_jy, (s.name, m)
