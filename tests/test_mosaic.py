"""The nightly mosaic on synthetic tiles: flux and position in overlaps, noise as the weights predict, RA wrap."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from contimg.core.beam import airy_power
from contimg.image.qa import fit_point_source, robust_rms
from contimg.mosaic.build import build_mosaic
from contimg.mosaic.inputs import read_input

DEC = 55.0
CELL_ARCSEC = 12.0
BEAM_ARCSEC = 60.0
N = 600  # 2 deg tiles
FLUX_RTOL = 0.05
POSITION_FRACTION_OF_BEAM = 0.2
NOISE_HALF_PX = 40  # 80 x 80 px of 20 arcsec: ~600 independent 60-arcsec beams
NOISE_RTOL = 0.10  # MAD rms of ~600 beams scatters by ~4% (1.3 / sqrt(2 x 600)): 2.5 sigma


def make_tile(path, ra_c, sources, rms, seed, cell=CELL_ARCSEC, beam=BEAM_ARCSEC, n=N):
    """A flat (apparent) image of ``sources`` (ra, dec, intrinsic flux) and beam-correlated noise, with its .pb.fits."""
    w = WCS(naxis=4)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    w.wcs.crval = [ra_c % 360, DEC, 1.405e9, 1]
    w.wcs.crpix = [n / 2 + 1, n / 2 + 1, 1, 1]
    w.wcs.cdelt = [-cell / 3600, cell / 3600, 1.875e8, 1]
    yy, xx = np.mgrid[0:n, 0:n]
    sky = w.celestial.pixel_to_world(xx, yy)
    centre = SkyCoord(ra_c * u.deg, DEC * u.deg)
    pb = airy_power(sky.separation(centre).rad, 1.405e9)
    sig = beam / cell / 2.3548
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.standard_normal((n, n)), sig)  # beam-correlated, like a real image
    img = noise / noise.std() * rms
    for ra, dec, flux in sources:
        x, y = w.celestial.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
        a = flux * float(airy_power(SkyCoord(ra * u.deg, dec * u.deg).separation(centre).rad, 1.405e9))
        img += a * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sig**2)
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = beam / 3600
    h["BPA"] = 0.0
    h["BUNIT"] = "JY/BEAM"
    h["QARMS"] = rms
    fits.PrimaryHDU(img[None, None].astype(np.float32), h).writeto(path)
    fits.PrimaryHDU(pb[None, None].astype(np.float32), h).writeto(str(path).replace(".fits", ".pb.fits"))
    return path


def fit(mosaic_path, ra, dec):
    with fits.open(mosaic_path) as hdul:
        data, h = hdul[0].data, hdul[0].header
    w = WCS(h)
    x, y = w.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
    cell = abs(h["CDELT2"]) * 3600
    flux, fx, fy = fit_point_source(data, float(x), float(y), BEAM_ARCSEC / cell, BEAM_ARCSEC / cell, 0.0)
    return flux, w.pixel_to_world(fx, fy).separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec


def test_overlap_source_flux_position_and_noise(tmp_path):
    step = 1.0 / np.cos(np.radians(DEC))  # 1 deg on the sky between tile centres
    mid = 100.0 + step / 2
    src = (mid, DEC + 0.2, 0.5)
    rms = [2e-3, 3e-3, 2.5e-3]
    tiles = [make_tile(tmp_path / f"t{i}.fits", 100.0 + i * step, [src], rms[i], seed=i) for i in range(3)]
    res = build_mosaic([read_input(t) for t in tiles], tmp_path / "m.fits")
    assert res.n_images == 3 and res.noise_path.exists() and res.png_path.exists()
    flux, offset = fit(res.path, *src[:2])
    assert flux == pytest.approx(src[2], rel=FLUX_RTOL)
    assert offset < POSITION_FRACTION_OF_BEAM * BEAM_ARCSEC
    # noise in a source-free patch of the overlap of tiles 1 and 2, against 1/sqrt(sum w) computed here
    # pixel by pixel from astropy separations and each tile's own footprint
    with fits.open(res.path) as hm:
        m, h = hm[0].data, hm[0].header
    w = WCS(h)
    ra_p, dec_p = 100.0 + 1.5 * step, DEC - 0.3
    x, y = (int(v) for v in w.world_to_pixel(SkyCoord(ra_p * u.deg, dec_p * u.deg)))
    yy, xx = np.mgrid[y - NOISE_HALF_PX : y + NOISE_HALF_PX, x - NOISE_HALF_PX : x + NOISE_HALF_PX]
    sky = w.pixel_to_world(xx, yy)
    sum_w = np.zeros(xx.shape)
    pbs = []
    for i, t in enumerate(tiles):
        pb = airy_power(sky.separation(SkyCoord((100.0 + i * step) * u.deg, DEC * u.deg)).rad, 1.405e9)
        inside = WCS(fits.getheader(t)).celestial.footprint_contains(sky)
        sum_w += np.where((pb >= 0.1) & inside, pb**2 / rms[i] ** 2, 0.0)
        pbs.append(float(np.median(np.where(inside, pb, 0.0))))
    patch = m[yy, xx]
    assert robust_rms(patch * np.sqrt(sum_w)) == pytest.approx(1.0, rel=NOISE_RTOL)
    measured = robust_rms(patch)
    single = min(r / pb for r, pb in zip(rms, pbs, strict=True) if pb > 0)
    assert measured < single, "the overlap is deeper than any single image"
    with fits.open(res.path) as hm:
        assert list(hm["INPUTS"].data["IMAGE"]) == [str(t) for t in tiles]
        assert hm[0].header["BMAJ"] == pytest.approx(BEAM_ARCSEC / 3600)


def test_point_source_fluxes_survive_regridding_a_coarsely_sampled_image(tmp_path):
    # the full array's images put 2.4 px across the restoring beam's minor axis (contimg.image.rules): bilinear
    # regridding onto the strip lowered a point source's fitted peak by ~5 % on average there, up to ~12 % at
    # the worst sub-pixel offset; a cubic spline through the samples keeps it
    cell, beam, n = 6.25, 15.0, 500
    step = 0.4 / np.cos(np.radians(DEC))  # tile centres 0.4 deg apart on the sky: every source in two tiles
    rng = np.random.default_rng(3)
    ra0 = 100.0 + step / 2
    sources = [
        (ra0 + dx / np.cos(np.radians(DEC)), DEC + dy, 0.5)
        for dx, dy in zip(rng.uniform(-0.12, 0.12, 8), rng.uniform(-0.25, 0.25, 8), strict=True)
    ]
    tiles = [
        make_tile(tmp_path / f"t{i}.fits", 100.0 + i * step, sources, 1e-5, seed=i, cell=cell, beam=beam, n=n)
        for i in range(2)
    ]
    res = build_mosaic([read_input(t) for t in tiles], tmp_path / "m.fits")
    with fits.open(res.path) as hdul:
        data, h = hdul[0].data, hdul[0].header
    w, out_cell = WCS(h), abs(h["CDELT2"]) * 3600
    assert out_cell == pytest.approx(cell)  # the strip keeps the inputs' coarse cell
    ratios = []
    for ra, dec, flux in sources:
        x, y = w.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
        fitted, _, _ = fit_point_source(data, float(x), float(y), beam / out_cell, beam / out_cell, 0.0)
        ratios.append(fitted / flux)
    assert np.median(ratios) == pytest.approx(1.0, abs=0.01), ratios
    assert np.min(ratios) > 0.97, ratios


def test_strip_through_ra_zero_is_continuous(tmp_path):
    step = 0.8 / np.cos(np.radians(DEC))
    srcs = [(359.9, DEC + 0.1, 0.4), (0.1, DEC - 0.1, 0.3)]
    tiles = [
        make_tile(tmp_path / "a.fits", 360.0 - step / 2, srcs, 2e-3, 1),
        make_tile(tmp_path / "b.fits", step / 2, srcs, 2e-3, 2),
    ]
    res = build_mosaic([read_input(t) for t in tiles], tmp_path / "wrap.fits")
    with fits.open(res.path) as hm:
        data = hm[0].data
    assert data.shape[1] < 2000, "the strip must not run the long way round"
    # no seam: every row crossing the middle is finite through RA 0
    w = WCS(fits.getheader(res.path))
    x0, y0 = w.world_to_pixel(SkyCoord(0 * u.deg, DEC * u.deg))
    assert np.isfinite(data[int(y0) - 20 : int(y0) + 20, int(x0) - 20 : int(x0) + 20]).all()
    for ra, dec, f in srcs:
        flux, offset = fit(res.path, ra, dec)
        assert flux == pytest.approx(f, rel=FLUX_RTOL) and offset < POSITION_FRACTION_OF_BEAM * BEAM_ARCSEC


def test_no_images_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no images to mosaic"):
        build_mosaic([], tmp_path / "none.fits")
    with pytest.raises(FileNotFoundError, match="pb.fits"):
        read_input(tmp_path / "missing.fits")


REGRID_ATOL_JY = 2e-3  # bilinear node-map vs exact: ~1e-3 px shift on a 0.5 Jy source with a 2-px sigma


def test_fast_regrid_matches_reproject_interp(tmp_path):
    """The node-interpolated pixel map gives what reproject_interp gives, pixel by pixel."""
    from reproject import reproject_interp

    from contimg.mosaic.grid import strip_wcs
    from contimg.mosaic.regrid import regrid

    tile = make_tile(tmp_path / "r.fits", 100.0, [(100.2, DEC + 0.1, 0.5)], 2e-3, 3)
    out_wcs, shape, _ = strip_wcs([read_input(tile)], cell_arcsec=17.0)
    with fits.open(tile) as hdul:
        data = hdul[0].data[0, 0].astype(np.float32)
        w_in = WCS(hdul[0].header).celestial
    fast = regrid(data[None], w_in, out_wcs, shape)[0]
    exact, _ = reproject_interp((data, w_in), out_wcs, shape_out=shape, order="bilinear")
    # compare where reproject has data, away from the input's edge (0 outside here, NaN in reproject)
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(np.isfinite(exact), iterations=2)
    assert inner.mean() > 0.7
    np.testing.assert_allclose(fast[inner], exact[inner], rtol=0, atol=REGRID_ATOL_JY)


def test_cli_builds_and_reports_missing_inputs(tmp_path, capsys):
    from contimg.cli import main

    t = make_tile(tmp_path / "c.fits", 200.0, [], 2e-3, 4)
    assert main(["mosaic", str(t), "--out", str(tmp_path / "out" / "m.fits"), "--pb-floor", "0.2"]) == 0
    with fits.open(tmp_path / "out" / "m.fits") as hdul:
        assert hdul[0].header["PBFLOOR"] == 0.2 and hdul[0].header["NIMAGES"] == 1
        assert np.isfinite(hdul[0].data).any()
    assert (tmp_path / "out" / "m.noise.fits").exists() and (tmp_path / "out" / "m.png").exists()
    assert main(["mosaic", str(tmp_path / "nope.fits"), "--out", str(tmp_path / "x.fits")]) == 2
    assert "nope.pb.fits" in capsys.readouterr().err
    assert not (tmp_path / "x.fits").exists()


def test_a_whole_circle_of_ra_is_one_strip(tmp_path):
    """Tiles round all 24 h of RA (a full day): one strip in time order, every source recovered."""
    ras = [5.0, 95.0, 185.0, 275.0, 358.0]
    tiles = [make_tile(tmp_path / f"f{i}.fits", ra, [(ra + 0.2, DEC, 0.5)], 2e-3, 10 + i) for i, ra in enumerate(ras)]
    res = build_mosaic([read_input(t) for t in tiles], tmp_path / "day.fits", cell_arcsec=30.0, png=False)
    span_deg = res.shape[1] * 30.0 / 3600 / np.cos(np.radians(DEC))  # RA span of the strip
    assert 353.0 + 2.0 < span_deg < 353.0 + 2.0 + 2 * 2.0 / np.cos(np.radians(DEC))  # centres' span + one tile
    for ra in ras:
        flux, offset = fit(res.path, (ra + 0.2) % 360, DEC)
        assert flux == pytest.approx(0.5, rel=FLUX_RTOL) and offset < POSITION_FRACTION_OF_BEAM * BEAM_ARCSEC
