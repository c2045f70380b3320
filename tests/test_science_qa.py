"""Science QA without CASA: the source finder on synthetic images, the cross-match, the grade, the reader.

Synthetic images are built here from first principles (point sources as the restoring beam's analytic
Gaussian at sub-pixel positions, white noise convolved with the same beam and scaled to a known rms),
so every figure is checked against the truth that made it.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy import signal

from contimg.image import qa
from contimg.image.crossmatch import ScienceQA, beam_fwhm_along, cross_match, values_at
from contimg.image.sources import SOURCE_COLUMNS, find_sources, read_sources, write_sources

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
BMAJ, BMIN, BPA = 45.0, 11.0, 10.0  # arcsec, arcsec, deg: DSA-110's elongated snapshot beam
CELL = 3.0  # arcsec: ~4 pixels across the minor axis, as contimg.image.rules.cell_arcsec gives
RMS = 1e-3  # Jy/beam
# A fitted point source's flux scatters by ~1/SNR: the median of ~20 sources between 10 and 200 sigma
# is good to ~1-2 %; 3 % also admits the small bias of fitting in correlated noise.
FLUX_MEDIAN_RTOL = 0.03
# Position errors ~0.6 FWHM / SNR (Condon 1997) along each beam axis: the median of ~20 is within 1/20 beam.
POSITION_MEDIAN_BEAMS = 0.05
MIN_COMPLETENESS = 0.9  # 10-200 sigma sources; a pair blended inside one 45" beam may count once


def gaussian_beam(dx, dy, bmaj_px, bmin_px, bpa_deg):
    """The unit-peak restoring beam at pixel offsets (dx east-to-west as FITS x, dy north); PA east of north."""
    pa = np.radians(bpa_deg)
    # the sky's east is -x (RA increases to the left): east = -dx, north = dy
    east, north = -dx, dy
    along_major = east * np.sin(pa) + north * np.cos(pa)
    along_minor = east * np.cos(pa) - north * np.sin(pa)
    return np.exp(
        -0.5 * ((along_major / (bmaj_px / FWHM_PER_SIGMA)) ** 2 + (along_minor / (bmin_px / FWHM_PER_SIGMA)) ** 2)
    )


def synthetic_image(path, n_px, n_src, *, seed=3, pb_gradient=False, dec0=55.0, beam=(BMAJ, BMIN, BPA), cell=CELL):
    """A FITS image (4 axes, as the imagers write) of ``n_src`` point sources of 10-200 sigma (apparent); returns
    (truth table: ra, dec, flux_jy (intrinsic), pb array or None). ``beam`` (major, minor arcsec, PA deg) and
    ``cell`` (arcsec) are the restoring beam and the grid."""
    bmaj, bmin, bpa = beam
    rng = np.random.default_rng(seed)
    w = WCS(naxis=4)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    w.wcs.crval = [150.0, dec0, 1.405e9, 1.0]
    w.wcs.crpix = [n_px / 2 + 1, n_px / 2 + 1, 1, 1]
    w.wcs.cdelt = [-cell / 3600, cell / 3600, 1.875e8, 1]
    bmaj_px, bmin_px = bmaj / cell, bmin / cell
    half = int(4 * bmaj_px / FWHM_PER_SIGMA) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = gaussian_beam(xx, yy, bmaj_px, bmin_px, bpa)
    noise = signal.fftconvolve(rng.standard_normal((n_px, n_px)), kernel, mode="same")
    noise *= RMS / np.std(noise)
    margin = half + 2
    # sources on a jittered grid: none blended, so completeness tests the finder, not the sky
    k = int(np.ceil(np.sqrt(n_src)))
    gx, gy = np.meshgrid(np.linspace(margin, n_px - margin, k), np.linspace(margin, n_px - margin, k))
    pick = rng.choice(k * k, n_src, replace=False)
    xs = gx.ravel()[pick] + rng.uniform(-0.5, 0.5, n_src)
    ys = gy.ravel()[pick] + rng.uniform(-0.5, 0.5, n_src)
    apparent = RMS * 10 ** rng.uniform(1.0, np.log10(200.0), n_src)  # 10-200 sigma in the image
    yi, xi = np.mgrid[0:n_px, 0:n_px]
    pb = None
    if pb_gradient:  # a primary beam falling from 1 at the left edge to 0.5 at the right
        pb = 1.0 - 0.5 * xi / (n_px - 1)
    flux = apparent / (1.0 - 0.5 * xs / (n_px - 1)) if pb_gradient else apparent  # intrinsic
    sky = np.zeros((n_px, n_px))
    for x, y, s in zip(xs, ys, apparent, strict=True):
        sky += s * gaussian_beam(xi - x, yi - y, bmaj_px, bmin_px, bpa)
    header = w.to_header()
    header["BMAJ"], header["BMIN"], header["BPA"], header["BUNIT"] = bmaj / 3600, bmin / 3600, bpa, "Jy/beam"
    fits.PrimaryHDU((sky + noise).astype(np.float32)[None, None], header).writeto(path)
    c = w.celestial.pixel_to_world(xs, ys)
    return Table({"ra": c.ra.deg, "dec": c.dec.deg, "flux_jy": flux}), pb


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    path = tmp_path_factory.mktemp("finder") / "img.fits"
    truth, pb = synthetic_image(path, 320, 20, pb_gradient=True)
    return truth, find_sources(path, pb=pb), path


def test_finder_recovers_the_truth(found, tmp_path):
    truth, table, path = found
    t = SkyCoord(truth["ra"] * u.deg, truth["dec"] * u.deg)
    d = SkyCoord(np.asarray(table["ra"]) * u.deg, np.asarray(table["dec"]) * u.deg)
    idx, sep, _ = t.match_to_catalog_sky(d)
    ok = sep.arcsec < BMIN  # within the minor axis: unambiguous on this grid
    assert ok.mean() >= MIN_COMPLETENESS
    # fluxes are divided by the primary beam: the intrinsic fluxes come back
    ratio = np.asarray(table["int_flux"][idx[ok]]) / np.asarray(truth["flux_jy"][ok])
    np.testing.assert_allclose(np.median(ratio), 1.0, rtol=0, atol=FLUX_MEDIAN_RTOL)
    peak_ratio = np.asarray(table["peak_flux"][idx[ok]]) / np.asarray(truth["flux_jy"][ok])
    np.testing.assert_allclose(np.median(peak_ratio), 1.0, rtol=0, atol=FLUX_MEDIAN_RTOL)
    # the pb column is the beam we applied, at the fitted position's pixel: within one pixel's step of
    # the gradient (0.5 / 319) of its value at the true position
    x, _ = WCS(fits.getheader(path)).celestial.world_to_pixel(t[ok])
    np.testing.assert_allclose(table["pb"][idx[ok]], 1.0 - 0.5 * x / 319, rtol=0, atol=0.5 / 319 * 1.5)
    # positions: median offsets along RA and Dec within a small fraction of the beam along each
    east = ((d[idx[ok]].ra - t[ok].ra).wrap_at(180 * u.deg) * np.cos(t[ok].dec)).to_value(u.arcsec)
    north = (d[idx[ok]].dec - t[ok].dec).to_value(u.arcsec)
    assert abs(np.median(east)) < POSITION_MEDIAN_BEAMS * beam_fwhm_along(BMAJ, BMIN, BPA, 90.0)
    assert abs(np.median(north)) < POSITION_MEDIAN_BEAMS * beam_fwhm_along(BMAJ, BMIN, BPA, 0.0)
    # no false detections: every component lies on a true source
    _, sep_back, _ = d.match_to_catalog_sky(t)
    assert np.all(sep_back.arcsec < BMAJ / 2)
    # local noise: BANE's rms divided by the beam; times pb it is the rms we made (within 20 %: BANE
    # measures it in boxes of ~30 beams, each an estimate from few independent beams)
    np.testing.assert_allclose(np.median(table["local_rms"] * table["pb"]), RMS, rtol=0.2)
    # the FITS table round trip, with units
    out = write_sources(table, tmp_path / "img.sources.fits", header=fits.getheader(path))
    back = read_sources(out)
    assert back.colnames == [name for name, _, _ in SOURCE_COLUMNS]
    assert back["ra"].unit == u.deg and back["int_flux"].unit == u.Jy
    np.testing.assert_array_equal(back["peak_flux"], table["peak_flux"])
    assert fits.getheader(out, "SOURCES")["BMAJ"] == pytest.approx(BMAJ / 3600, rel=1e-12)


# The full-size chunk's restoring beam (the PSF's main lobe, 96 antennas) on the two grids the image job
# uses there (contimg.image.rules: 2.5 px per lambda / B_max gives 6.35" cells, 3 px 5.29")
FULL_SIZE_BEAM = (33.7, 15.1, 86.2)


@pytest.mark.parametrize("cell", [5.29, 6.35])
def test_finder_keeps_point_sources_under_the_elongated_beam_on_a_coarse_grid(tmp_path, cell):
    # PyBDSF's default flag_maxsize_fwhm (0.5) dropped 8-18 % of the point sources above 10 sigma under this
    # beam (axial ratio 2.2, 2.4-2.9 px across the minor axis); every one of these 10-200 sigma sources is
    # unblended, so each must come back, on its true position and flux
    path = tmp_path / "img.fits"
    truth, _ = synthetic_image(path, 400, 30, seed=11, beam=FULL_SIZE_BEAM, cell=cell)
    table = find_sources(path)
    t = SkyCoord(truth["ra"] * u.deg, truth["dec"] * u.deg)
    d = SkyCoord(np.asarray(table["ra"]) * u.deg, np.asarray(table["dec"]) * u.deg)
    idx, sep, _ = t.match_to_catalog_sky(d)
    within = sep.arcsec < 0.5 * FULL_SIZE_BEAM[1]  # half the minor axis: a position error ~0.6 FWHM / SNR
    assert within.all(), f"{np.count_nonzero(~within)} of {len(truth)} sources lost or misplaced"
    ratio = np.asarray(table["int_flux"][idx]) / np.asarray(truth["flux_jy"])
    np.testing.assert_allclose(np.median(ratio), 1.0, rtol=0, atol=FLUX_MEDIAN_RTOL)


def test_finder_refuses_images_without_a_beam(tmp_path):
    path = tmp_path / "nobeam.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(path)
    with pytest.raises(ValueError, match=r"nobeam.fits: no restoring beam"):
        find_sources(path)
    with pytest.raises(FileNotFoundError, match="missing.fits"):
        find_sources(tmp_path / "missing.fits")


def test_beam_fwhm_along_matches_a_numerical_cut():
    """The FWHM along RA and Dec, measured by walking along the beam to its half maximum."""
    for bpa in (0.0, 10.0, 45.0, 120.0):
        for direction, (de, dn) in ((90.0, (1.0, 0.0)), (0.0, (0.0, 1.0))):
            s = np.linspace(0, 60, 600001)  # arcsec, 1e-4" steps
            # gaussian_beam takes pixel offsets with x towards the west: one "pixel" = 1 arcsec here
            g = gaussian_beam(-s * de, s * dn, BMAJ, BMIN, bpa)
            half_width = s[np.argmin(np.abs(g - 0.5))]
            np.testing.assert_allclose(beam_fwhm_along(BMAJ, BMIN, bpa, direction), 2 * half_width, rtol=0, atol=1e-3)


def _lists(n=40, seed=5, ratio=1.0, shift_ra_arcsec=0.0, shift_dec_arcsec=0.0, dec0=55.0):
    rng = np.random.default_rng(seed)
    ra = 150.0 + rng.uniform(-1, 1, n) / np.cos(np.radians(dec0))
    dec = dec0 + rng.uniform(-1, 1, n)
    flux = 10 ** rng.uniform(-1.5, 0.0, n)  # 30 mJy to 1 Jy: >= 10 sigma at 1 mJy rms and pb >= 0.5
    det = {
        "ra": ra + shift_ra_arcsec / 3600 / np.cos(np.radians(dec)),
        "dec": dec + shift_dec_arcsec / 3600,
        "peak_flux": flux * ratio,
        "int_flux": flux * ratio,
        "local_rms": np.full(n, RMS),
    }
    return det, ra, dec, flux


def _match(det, ra, dec, flux, pb=None, **kw):
    return cross_match(
        det,
        ra,
        dec,
        flux,
        np.ones(ra.size) if pb is None else pb,
        rms_jy=RMS,
        bmaj_arcsec=BMAJ,
        bmin_arcsec=BMIN,
        bpa_deg=BPA,
        pb_limit=0.1,
        **kw,
    )


def test_cross_match_perfect_lists_are_green():
    det, ra, dec, flux = _lists()
    m = _match(det, ra, dec, flux)
    assert isinstance(m, ScienceQA)
    assert (m.n_matched, m.n_flux, m.n_complete, m.n_reliable) == (40, 40, 40, 40)
    assert m.completeness == 1.0 and m.reliability == 1.0
    np.testing.assert_allclose([m.flux_ratio, m.flux_ratio_scatter], [1.0, 0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose([m.offset_ra_arcsec, m.offset_dec_arcsec], [0.0, 0.0], rtol=0, atol=1e-6)
    assert m.grade == "green" and m.problems == []


def test_cross_match_measures_a_flux_scale_and_shift():
    # 7 % low and shifted 2" east, 6" north: the ratio is amber; 6" over the beam's 37" FWHM along Dec is
    # 0.16 beam: amber
    det, ra, dec, flux = _lists(ratio=0.93, shift_ra_arcsec=2.0, shift_dec_arcsec=6.0)
    m = _match(det, ra, dec, flux)
    np.testing.assert_allclose(m.flux_ratio, 0.93, rtol=0, atol=1e-12)
    np.testing.assert_allclose([m.offset_ra_arcsec, m.offset_dec_arcsec], [2.0, 6.0], rtol=0, atol=1e-6)
    # beams along each axis (textbook cut of the elliptical Gaussian, checked above)
    np.testing.assert_allclose(m.offset_dec_beams, 6.0 / beam_fwhm_along(BMAJ, BMIN, BPA, 0.0), rtol=1e-9)
    np.testing.assert_allclose(m.offset_ra_beams, 2.0 / beam_fwhm_along(BMAJ, BMIN, BPA, 90.0), rtol=1e-9)
    assert m.grade == "amber"
    assert any(p.startswith("flux ratio 0.930 (amber") for p in m.problems)
    assert f"Dec offset {6.0 / beam_fwhm_along(BMAJ, BMIN, BPA, 0.0):+.3f} beam" in " ".join(m.problems)


def test_cross_match_flux_scatter_is_the_robust_sigma():
    det, ra, dec, flux = _lists(n=400)
    rng = np.random.default_rng(9)
    scatter = rng.normal(1.0, 0.05, ra.size)
    det["int_flux"] = flux * scatter
    det["peak_flux"] = flux * scatter
    m = _match(det, ra, dec, flux)
    # 1.4826 MAD of 400 Gaussian ratios estimates their sigma (0.05) within ~2.5/sqrt(400) ~ 12 % (3 sigma)
    np.testing.assert_allclose(m.flux_ratio_scatter, 0.05, rtol=0.12)
    np.testing.assert_allclose(m.flux_ratio, np.median(scatter), rtol=0, atol=1e-12)


def test_completeness_reliability_and_what_counts():
    det, ra, dec, flux = _lists(n=40)
    keep = np.arange(40) >= 10  # 10 reference sources missed: completeness 30/40
    det = {k: v[keep] for k, v in det.items()}
    # 10 spurious bright detections far from any reference source: reliability 30/40
    rng = np.random.default_rng(11)
    extra_ra, extra_dec = 160.0 + rng.uniform(0, 1, 10), 40.0 + rng.uniform(0, 1, 10)
    det = {
        "ra": np.r_[det["ra"], extra_ra],
        "dec": np.r_[det["dec"], extra_dec],
        "peak_flux": np.r_[det["peak_flux"], np.full(10, 0.1)],
        "int_flux": np.r_[det["int_flux"], np.full(10, 0.1)],
        "local_rms": np.r_[det["local_rms"], np.full(10, RMS)],
    }
    # a faint reference source (expected 5 sigma) and one outside the image (pb NaN) do not count
    ra2, dec2 = np.r_[ra, 150.0, 150.5], np.r_[dec, 54.0, 54.0]
    flux2, pb = np.r_[flux, 5 * RMS, 1.0], np.r_[np.ones(40), 1.0, np.nan]
    m = _match(det, ra2, dec2, flux2, pb=pb)
    assert (m.n_reference, m.n_complete, m.n_reliable) == (41, 40, 40)
    assert m.completeness == pytest.approx(30 / 40, abs=1e-12)
    assert m.reliability == pytest.approx(30 / 40, abs=1e-12)
    assert m.grade == "amber"
    # a reference source's expected SNR uses the primary beam: at pb 0.2 a 40 mJy source is 8 sigma
    det1, ra1, dec1, _ = _lists(n=10)
    m1 = _match(det1, ra1, dec1, np.full(10, 0.04), pb=np.full(10, 0.2))
    assert m1.n_complete == 0 and m1.completeness is None


def test_reliability_leaves_out_what_lies_beside_a_far_brighter_source():
    """Islands at 0.3-0.6 % of a bright source's peak within a few beams are its artefacts, not the sky's."""
    det, ra, dec, flux = _lists(n=20)  # all matched, 30 mJy - 1 Jy
    # an 8 Jy source (in the catalogue) with 4 unmatched 25 mJy islands 2-4 beams from it ...
    bra, bdec = 151.0, 55.0
    near = np.array([2.0, 2.5, 3.0, 4.0]) * BMAJ / 3600.0
    # ... and 2 unmatched 25 mJy islands 12 beams away: they count
    far = np.array([12.0, 12.5]) * BMAJ / 3600.0
    add_dec = np.r_[bdec, bdec + near, bdec + far]
    det = {
        "ra": np.r_[det["ra"], np.full(7, bra)],
        "dec": np.r_[det["dec"], add_dec],
        "peak_flux": np.r_[det["peak_flux"], 8.0, np.full(6, 0.025)],
        "int_flux": np.r_[det["int_flux"], 8.0, np.full(6, 0.025)],
        "local_rms": np.r_[det["local_rms"], np.full(7, RMS)],
    }
    m = _match(det, np.r_[ra, bra], np.r_[dec, bdec], np.r_[flux, 8.0])
    # counted by hand: the 20 sources, the 8 Jy one and the 2 far islands; matched 21 of 23
    assert m.n_reliable == 23
    assert m.reliability == pytest.approx(21 / 23, abs=1e-12)
    assert m.n_matched == 21 and m.n_detected == 27


def test_matching_is_elliptical_along_the_beam():
    # 15" north is inside half the 45" beam along its near-north major axis; 15" east is far outside
    # half the 11" minor axis
    det, ra, dec, flux = _lists(n=10, shift_dec_arcsec=15.0)
    assert _match(det, ra, dec, flux).n_matched == 10
    det, ra, dec, flux = _lists(n=10, shift_ra_arcsec=15.0)
    assert _match(det, ra, dec, flux).n_matched == 0


def test_extended_sources_leave_the_flux_ratio():
    det, ra, dec, flux = _lists(n=20)
    det["int_flux"] = det["int_flux"].copy()
    det["int_flux"][:5] *= 3.0  # resolved: int/peak 3
    m = _match(det, ra, dec, flux)
    assert m.n_flux == 15 and m.flux_ratio == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("figures", "grade"),
    [
        ({"flux_ratio": 1.049}, "green"),
        ({"flux_ratio": 0.951}, "green"),
        ({"flux_ratio": 1.09}, "amber"),
        ({"flux_ratio": 0.85}, "red"),
        ({"offset_dec_beams": 0.15}, "amber"),
        ({"offset_ra_beams": -0.25}, "red"),
        ({"completeness": 0.8}, "amber"),
        ({"reliability": 0.5}, "red"),
        ({"flux_ratio": 1.09, "completeness": 0.5}, "red"),
    ],
)
def test_science_grade_thresholds(figures, grade):
    base = dict(flux_ratio=1.0, offset_ra_beams=0.0, offset_dec_beams=0.0, completeness=1.0, reliability=1.0)
    base.update(figures)
    got, problems = qa.science_grade(**base, n_flux=10, n_complete=10, n_reliable=10)
    assert got == grade
    assert (problems == []) == (grade == "green")


def test_science_grade_needs_enough_sources():
    got, problems = qa.science_grade(
        flux_ratio=0.5,
        n_flux=qa.MIN_SOURCES_TO_GRADE - 1,
        offset_ra_beams=1.0,
        offset_dec_beams=1.0,
        completeness=0.0,
        n_complete=0,
        reliability=None,
        n_reliable=0,
    )
    assert got == "ungraded" and problems


def test_values_at_reads_the_pixel_under_a_position():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [150.0, 55.0], [5.0, 5.0], [-1 / 3600, 1 / 3600]
    plane = np.arange(100.0).reshape(10, 10)
    c = w.pixel_to_world([3.0, 7.2], [6.0, 1.9])
    np.testing.assert_array_equal(values_at(plane, w, c.ra.deg, c.dec.deg), [63.0, 27.0])
    assert np.isnan(values_at(plane, w, 150.0, 56.0)[0])


def _report(tmp_path, window, *, science_qa=None, sources=None):
    from contimg.image.report import ImageReport

    return ImageReport(
        image=str(tmp_path / f"{window}.fits"),
        pbcor="p",
        pb="b",
        png="g",
        imager="wsclean",
        calibrated=True,
        rms_jy=1e-3,
        expected_rms_jy=1e-3,
        peak_jy=0.5,
        dynamic_range=500.0,
        n_sources_5sigma=3,
        bmaj_arcsec=BMAJ,
        bmin_arcsec=BMIN,
        bpa_deg=BPA,
        cell_arcsec=CELL,
        size_px=320,
        flagged_fraction=0.1,
        window=window,
        mid_mjd=61065.0,
        sources=sources,
        n_detections=None,
        science_grade=None if science_qa is None else science_qa["grade"],
        science_qa=science_qa,
    )


def test_red_science_qa_flags_the_image_and_the_mosaic_leaves_it_out(found, tmp_path):
    """The grade travels: report -> verdict -> catalogue (image_science_qa, sources, the science_qa
    view, `contimg qa` rows) -> the mosaic's choice of images, with the figures as the reason."""
    from contimg.catalogue import connect
    from contimg.catalogue import queries as q
    from contimg.catalogue.images import image_sources, record_image
    from contimg.catalogue.mosaics import day_images

    truth, table, _ = found
    sources_path = write_sources(table, tmp_path / "a.sources.fits")
    det, ra, dec, flux = _lists()
    green = _match(det, ra, dec, flux).as_dict()
    det_low, *_ = _lists(ratio=0.8)
    red = _match(det_low, ra, dec, flux).as_dict()
    assert red["grade"] == "red"
    conn = connect(tmp_path / "catalogue.sqlite")
    try:
        for window, sq, src in (("2026-01-25T00:00", green, sources_path), ("2026-01-25T00:05", red, None)):
            m = _report(tmp_path, window, science_qa=sq, sources=str(src) if src else None)
            verdict = qa.image_verdict(
                m.rms_jy,
                m.expected_rms_jy,
                calibrated=True,
                allow_uncalibrated=False,
                science_grade=m.science_grade,
                science_problems=sq["problems"],
            )
            assert verdict.passed == (sq["grade"] != "red")
            record_image(
                conn,
                window,
                "ms",
                m,
                status=verdict.status,
                reason="; ".join(verdict.problems) or None,
                run_id="r",
            )
        rows = image_sources(conn, "2026-01-25T00:00")
        assert len(rows) == len(table) and image_sources(conn, "2026-01-25T00:05") == []
        np.testing.assert_allclose(sorted(r["int_jy"] for r in rows), np.sort(table["int_flux"]), rtol=1e-12)
        np.testing.assert_allclose(sorted(r["ra_deg"] for r in rows), np.sort(table["ra"]), rtol=0, atol=1e-12)
        ok, excluded, _ = day_images(conn, "2026-01-25")
        assert [r["window"] for r in ok] == ["2026-01-25T00:00"]
        reason = "science QA red: flux ratio 0.800 (red: green within 5% of 1)"
        assert excluded == [{"window": "2026-01-25T00:05", "reason": reason}]
    finally:
        conn.close()
    with q.reading(tmp_path / "catalogue.sqlite") as con:
        view = con.sql("SELECT window_key, grade, flux_ratio, n_flux FROM science_qa ORDER BY window_key").fetchall()
        assert view == [("2026-01-25T00:00", "green", 1.0, 40), ("2026-01-25T00:05", "red", pytest.approx(0.8), 40)]
        rows = q.qa_rows(con, "2026-01-25T00:00", "2026-01-26T00:00")
        # the source list beside each image (PREFIX.sources.fits for PREFIX.fits) is a product of it
        listed = con.sql("SELECT window_key, path FROM products WHERE path LIKE '%.sources.fits' ORDER BY 1").fetchall()
        assert listed == [(w, str(tmp_path / f"{w}.sources.fits")) for w in ("2026-01-25T00:00", "2026-01-25T00:05")]
    assert [(r["science_grade"], r["status"]) for r in rows] == [("green", "ok"), ("red", "flagged")]
    assert rows[1]["flux_ratio"] == pytest.approx(0.8, abs=1e-12)


def test_image_verdict_amber_is_said_red_fails_unknown_refused():
    amber = qa.image_verdict(
        1e-3,
        1e-3,
        calibrated=True,
        allow_uncalibrated=False,
        science_grade="amber",
        science_problems=["completeness 0.80 (amber: green >= 0.9)"],
    )
    assert amber.passed and amber.problems == ["science QA amber: completeness 0.80 (amber: green >= 0.9)"]
    assert not qa.image_verdict(1e-3, 1e-3, calibrated=True, allow_uncalibrated=False, science_grade="red").passed
    for grade in (None, "ungraded", "green"):
        v = qa.image_verdict(1e-3, 1e-3, calibrated=True, allow_uncalibrated=False, science_grade=grade)
        assert v.passed and v.problems == []
    with pytest.raises(ValueError, match="science_grade must be one of"):
        qa.image_verdict(1e-3, 1e-3, calibrated=True, allow_uncalibrated=False, science_grade="purple")


def test_contimg_image_refuses_a_bad_reference_catalogue_before_imaging(tmp_path, capsys, monkeypatch):
    from contimg.cli import main

    monkeypatch.setenv("CONTIMG_ROOT", str(tmp_path / "root"))
    ms = tmp_path / "chunk.ms"
    ms.mkdir()
    (ms / "table.dat").write_bytes(b"")
    bad = tmp_path / "ref.csv"
    bad.write_text("ra_deg,dec_deg,flux\n150,55,1\n")  # a missing spectral_index is a default since contimg.core.refcat
    code = main(["image", str(ms), "--out", str(tmp_path / "img"), "--reference-catalog", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and f"reference catalogue {bad}: missing column(s) flux_jy" in err
