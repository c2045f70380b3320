"""Thumbnails: sky axes, stretch, colour bar, beam and sources, checked on the pixels of the PNG."""

import matplotlib.image as mpimg
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from contimg.image.thumbnail import write_png
from tests.test_science_qa import BMAJ, BMIN, CELL, RMS, synthetic_image


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    path = tmp_path_factory.mktemp("thumb") / "img.fits"
    truth, _ = synthetic_image(path, 256, 9, seed=4)
    header = fits.getheader(path)
    plane = fits.getdata(path)[0, 0]
    return plane, WCS(header).celestial, header, truth


def _red(arr):
    """Pixels drawn in matplotlib's tab:red (the source circles)."""
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    return (np.abs(r - 0xD6 / 255) < 0.08) & (np.abs(g - 0x27 / 255) < 0.08) & (np.abs(b - 0x28 / 255) < 0.08)


def _blue(arr):
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    r0, g0, b0 = 0x1F / 255, 0x77 / 255, 0xB4 / 255  # tab:blue, the beam's fill
    return (np.abs(r - r0) < 0.08) & (np.abs(g - g0) < 0.08) & (np.abs(b - b0) < 0.08)


def test_thumbnail_with_sky_axes_beam_and_sources(field, tmp_path):
    plane, wcs, header, truth = field
    path = write_png(
        plane,
        tmp_path / "t.png",
        title="2026-01-25T00:00  rms 1.00 mJy/beam",
        rms=RMS,
        wcs=wcs,
        beam=(BMAJ / 3600, BMIN / 3600, 10.0),
        sources=(np.asarray(truth["ra"]), np.asarray(truth["dec"])),
    )
    arr = mpimg.imread(path)
    assert arr.ndim == 3 and min(arr.shape[:2]) >= 400
    plain = write_png(plane, tmp_path / "p.png", title="", rms=RMS, wcs=wcs)
    plain_arr = mpimg.imread(plain)
    # the circles: red pixels only where sources were given; each circle (s=80: ~10 px across, ~30 px
    # round) keeps at least a third of its outline within the colour tolerance after anti-aliasing
    assert _red(arr).sum() > 9 * 10 and _red(plain_arr).sum() == 0
    # the beam: a filled ellipse whose blue area, relative to the image area, is the beam's
    # (pi/4 bmaj bmin over the field's (256 x 3")^2), within 30 % (its ~80 px are anti-aliased along an
    # outline of ~50 px, and the axes' frame is a few pixels off the image)
    beam_fraction = np.pi / 4 * BMAJ * BMIN / (256 * CELL) ** 2
    image_px = _image_area_px(arr)
    np.testing.assert_allclose(_blue(arr).sum() / image_px, beam_fraction, rtol=0.3)
    assert _blue(plain_arr).sum() == 0


def _image_area_px(arr):
    """The plotted image's area in PNG pixels: the largest box of non-white, non-transparent pixels."""
    ink = arr[..., :3].sum(axis=-1) < 2.9
    rows, cols = np.flatnonzero(ink.mean(axis=1) > 0.5), np.flatnonzero(ink.mean(axis=0) > 0.5)
    return (rows.max() - rows.min()) * (cols.max() - cols.min())


def test_thumbnail_without_wcs_still_draws(field, tmp_path):
    plane, _, _, _ = field
    arr = mpimg.imread(write_png(plane, tmp_path / "t.png", title="test", rms=None, max_px=128))
    assert arr[..., :3].std() > 0.01
    with pytest.raises(ValueError, match=r"2-d plane, got shape \(1, 256, 256\)"):
        write_png(plane[None], tmp_path / "x.png")
