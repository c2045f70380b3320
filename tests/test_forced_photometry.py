"""Forced photometry on synthetic images of known sources and noise (tests/synthimages.py)."""

import numpy as np
import pytest

from contimg.core.refcat import ReferenceCatalog
from contimg.photometry.forced import PB_LEVEL, measure_image, pb_path_for
from tests.synthimages import random_positions, write_image

RA0, DEC0 = 150.0, 55.0
NPIX, PIX_DEG = 400, 8.0 / 3600  # 0.89 deg a side
BEAM_DEG = (36.0 / 3600, 22.0 / 3600, 30.0)  # elongated and rotated: the PA and axes matter
PB_FWHM_DEG = 0.55  # the 20 % level at 0.42 deg from the centre, inside the image (half-width 0.44 deg)
RMS_JY = 2e-3
N_IMAGES, N_SOURCES = 6, 50
# The pulls (fit - truth) / err of N ~ 250 sources: the sample mean has standard error 1/sqrt(N) = 0.06 and
# the sample std 1/sqrt(2N) = 0.045; the background rms is itself estimated (~5 % per cell), so the
# tolerances are ~3 of those standard errors.
PULL_MEAN_TOL = 0.2
PULL_STD_TOL = 0.15


def _catalogue(positions, fluxes):
    ra, dec = np.array(positions).T
    ids = np.array([f"S{i:03d}" for i in range(len(ra))])
    return ReferenceCatalog(ids, ra, dec, np.asarray(fluxes), np.full(len(ra), -0.7))


def _pb(ra, dec):
    a, d, a0, d0 = map(np.radians, (ra, dec, RA0, DEC0))
    theta = np.degrees(np.arccos(np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a - a0)))
    return np.exp(-4 * np.log(2) * (theta / PB_FWHM_DEG) ** 2), theta


def test_pulls_of_forced_fluxes_are_standard_normal(tmp_path):
    rng = np.random.default_rng(23)
    pulls, n_inside = [], 0
    for k in range(N_IMAGES):
        pos = random_positions(rng, N_SOURCES, RA0, DEC0, 0.43, 5 * BEAM_DEG[0])
        flux = rng.uniform(0.01, 0.3, N_SOURCES)
        path = write_image(
            tmp_path / f"img{k}",
            ra0=RA0,
            dec0=DEC0,
            npix=NPIX,
            pix_deg=PIX_DEG,
            beam_deg=BEAM_DEG,
            pb_fwhm_deg=PB_FWHM_DEG,
            sources=[(a, d, s) for (a, d), s in zip(pos, flux, strict=True)],
            rms_jy=RMS_JY,
            rng=rng,
        )
        cat = _catalogue(pos, flux)
        res = measure_image(path, cat)
        truth = dict(zip(cat.source_id, flux, strict=True))
        pb_true, theta = _pb(cat.ra_deg, cat.dec_deg)
        n_inside += int(np.sum(pb_true >= PB_LEVEL + 0.01))
        for m in res.measurements:
            i = int(m.source_id[1:])
            assert m.pb >= PB_LEVEL
            assert m.pb == pytest.approx(pb_true[i], abs=0.01)  # bilinear on a 8" grid of a 0.55 deg beam
            assert m.dist_deg == pytest.approx(theta[i], abs=1e-6)
            # the background rms, from the image: the injected rms within the robust sigma's scatter
            assert m.rms_jy == pytest.approx(RMS_JY, rel=0.25)
            pulls.append((m.flux_jy - truth[m.source_id]) / m.err_jy)
        assert res.window == "2026-01-25T00:00"
        assert res.n_outside == N_SOURCES - len(res.measurements)
    pulls = np.array(pulls)
    # every source well inside the 20 % level and the blanking is measured (their boxes are finite)
    assert len(pulls) >= n_inside
    assert abs(np.mean(pulls)) < PULL_MEAN_TOL
    assert abs(np.std(pulls) - 1.0) < PULL_STD_TOL


def test_sources_outside_the_beam_level_or_the_image_are_skipped(tmp_path):
    rng = np.random.default_rng(5)
    inside = (RA0 + 0.05, DEC0 + 0.05)
    below_20 = (RA0, DEC0 + 0.425)  # pb(0.425 deg) = 0.19 < 0.2, on the image, not blanked (0.1)
    off_image = (RA0 + 1.0, DEC0)
    edge = (RA0, DEC0 - (NPIX / 2 - 1) * PIX_DEG)  # one pixel from the lower edge: box off the image
    pos = [inside, below_20, off_image, edge]
    path = write_image(
        tmp_path / "edge",
        ra0=RA0,
        dec0=DEC0,
        npix=NPIX,
        pix_deg=PIX_DEG,
        beam_deg=BEAM_DEG,
        pb_fwhm_deg=PB_FWHM_DEG,
        sources=[(a, d, 0.1) for a, d in pos],
        rms_jy=RMS_JY,
        rng=rng,
    )
    res = measure_image(path, _catalogue(pos, [0.1] * 4))
    assert [m.source_id for m in res.measurements] == ["S000"]
    assert res.n_outside == 3


def test_unusable_inputs_are_refused_with_a_message(tmp_path):
    with pytest.raises(ValueError, match="pbcor.fits"):
        pb_path_for(tmp_path / "x.fits")
    with pytest.raises(FileNotFoundError, match="no such image"):
        measure_image(tmp_path / "x.pbcor.fits", _catalogue([(RA0, DEC0)], [1.0]))
