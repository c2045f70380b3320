"""The catalogue's sources where the masked clean may go deeper (contimg.image.known_sources), against astropy.

Pure numpy and astropy: no CASA, no WSClean. The image job's use of it is measured on the 32-antenna counts sky
(tests/test_image_sky.py).
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time
from astropy.wcs import WCS
from scipy.special import j1

from contimg.core.instrument import SITE
from contimg.core.refcat import ReferenceCatalog
from contimg.image.known_sources import KnownSources, known_in_field, local_rms_image, pixel_of
from contimg.image.subtract import direction_cosines

C = 299_792_458.0
DISH_M = 4.65


def _sin_wcs(ra0, dec0, size, cell_arcsec):
    """WSClean's image header: SIN about the phase centre, CRPIX size / 2 + 1, RA increasing to the left."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [size / 2 + 1, size / 2 + 1]
    w.wcs.cdelt = [-cell_arcsec / 3600.0, cell_arcsec / 3600.0]
    return w


def test_pixels_agree_with_astropy_on_wscleans_grid():
    rng = np.random.default_rng(3)
    ra0, dec0, size, cell = 128.7, 55.5, 2138, 6.35
    ra = ra0 + rng.uniform(-3, 3, 50)
    dec = dec0 + rng.uniform(-1.8, 1.8, 50)
    lmn = direction_cosines(ra, dec, ra0, dec0)
    x, y = pixel_of(lmn[:, 0], lmn[:, 1], size, cell)
    ax, ay = _sin_wcs(ra0, dec0, size, cell).world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
    assert np.max(np.abs(x - ax)) < 1e-6 and np.max(np.abs(y - ay)) < 1e-6


def test_the_rms_image_is_lower_within_the_radius_and_only_there():
    size, cell, noise, factor = 200, 4.0, 1e-3, 0.6
    pixel = np.radians(cell / 3600.0)
    # one point at (x, y) = (60.3, 140.7), one 40" Gaussian at the centre, one hanging over the edge
    known = KnownSources(
        l=np.array([(100 - 60.3) * pixel, 0.0, (100 - 199.5) * pixel]),
        m=np.array([(140.7 - 100) * pixel, 0.0, 0.0]),
        apparent_jy=np.array([0.01, 0.02, 0.01]),
        maj_arcsec=np.array([0.0, 40.0, 0.0]),
    )
    rms = local_rms_image(known, size, cell, noise, factor, radius_arcsec=10.0)
    assert rms.shape == (size, size) and rms.dtype == np.float32
    yy, xx = np.mgrid[:size, :size]
    near = (
        (np.hypot(xx - 60.3, yy - 140.7) <= 10.0 / cell)
        | (np.hypot(xx - 100, yy - 100) <= 20.0 / cell)  # half the Gaussian's FWHM, beyond the radius
        | (np.hypot(xx - 199.5, yy - 100) <= 10.0 / cell)
    )
    np.testing.assert_allclose(rms[near], noise * factor, rtol=1e-6)
    np.testing.assert_allclose(rms[~near], noise, rtol=1e-6)
    with pytest.raises(ValueError, match="factor"):
        local_rms_image(known, size, cell, noise, 0.0, 10.0)


def _airy_power(theta_rad, freq_hz):
    x = np.pi * DISH_M * np.sin(theta_rad) * freq_hz / C
    return np.where(x == 0, 1.0, (2 * j1(x) / np.where(x == 0, 1, x)) ** 2)


def test_apparent_flux_is_the_airy_beam_over_the_chunk_and_band():
    """A source transiting 0.8 deg north of the pointing mid-chunk: its apparent flux against the textbook Airy beam."""
    mid = Time("2025-06-15T23:52:00", scale="utc")
    offsets_s = np.linspace(-150, 150, 7)[1:-1]
    dec_ptg = 55.5  # the beam's centre on the meridian, in the frame of date
    frame = HADec(obstime=mid, location=SITE, pressure=0 * u.hPa)
    src = SkyCoord(ha=0 * u.deg, dec=(dec_ptg + 0.8) * u.deg, frame=frame).icrs
    freqs = np.array([1.32e9, 1.40e9, 1.48e9])
    ra, dec = float(src.ra.deg), float(src.dec.deg)
    cat = ReferenceCatalog(
        source_id=np.array(["a", "beyond", "faint"]),
        ra_deg=np.array([ra, ra + 10.0, ra]),
        dec_deg=np.array([dec, dec - 0.8, dec - 1.3]),
        flux_jy=np.array([0.2, 5.0, 1e-4]),
        spectral_index=np.array([-0.7, 0.0, 0.0]),
    )
    times = (mid + offsets_s * u.s).mjd
    known = known_in_field(cat, ra, dec - 0.8, dec_ptg, times, freqs, 1.9, min_apparent_jy=1e-3)
    assert len(known) == 1  # the one 10 deg away is beyond the image, the faint one below the threshold
    # the offset from the beam's centre along a great circle: the hour angle grows at the sidereal rate
    ha = np.radians(offsets_s * 360.0 / 86164.0905)
    d0, d1 = np.radians(dec_ptg), np.radians(dec_ptg + 0.8)
    theta = np.arccos(np.sin(d0) * np.sin(d1) + np.cos(d0) * np.cos(d1) * np.cos(ha))
    spec = 0.2 * (freqs / 1.4e9) ** -0.7
    expected = np.mean(_airy_power(theta[:, None], freqs[None, :]) * spec[None, :])
    assert known.apparent_jy[0] == pytest.approx(expected, rel=1e-3)
    lmn = direction_cosines([ra], [dec], ra, dec - 0.8)
    assert (known.l[0], known.m[0]) == pytest.approx((lmn[0, 0], lmn[0, 1]))
