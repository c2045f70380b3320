"""contimg.image.gridding without CASA: WSClean's Stokes I, and a point source's dirty image where astropy's
WCS puts it. (WSClean's own PSF and dirty image of a simulated chunk: tests/test_image.py.)"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from contimg.core.constants import C_M_S
from contimg.image.gridding import (
    channel_images,
    initial_images,
    output_channel_edges,
    stokes_i,
    wsclean_keywords,
)


def test_stokes_i_takes_wscleans_weight_and_drops_flagged_autos_and_nans():
    data = np.array([[[2 + 2j, 4 + 0j]], [[1 + 0j, 3 + 0j]], [[np.nan + 0j, 1 + 0j]], [[5 + 0j, 5 + 0j]]], np.complex64)
    weight = np.array([[[1.0, 3.0]], [[2.0, 2.0]], [[1.0, 1.0]], [[1.0, 1.0]]], np.float32)
    flags = np.zeros(data.shape, bool)
    flags[1, 0, 1] = True  # one polarization flagged: the Stokes I sample goes
    cross = np.array([True, True, True, False])  # the last row is an autocorrelation
    vis, w = stokes_i(data, weight, flags, cross)
    assert vis[0, 0] == pytest.approx(3 + 1j) and w[0, 0] == pytest.approx(4.0)  # 4 x min(1, 3)
    assert w[1:, 0].tolist() == [0.0, 0.0, 0.0] and vis[2, 0] == 0


def test_point_source_lands_where_the_wcs_puts_it():
    rng = np.random.default_rng(3)
    n_row, size, cell = 4000, 256, 20.0
    uvw = np.vstack([rng.normal(0, 150, n_row), rng.normal(0, 150, n_row), rng.normal(0, 30, n_row)])
    freqs = np.array([1.35e9, 1.45e9])
    centre = SkyCoord(150.0 * u.deg, 55.0 * u.deg)
    source = centre.spherical_offsets_by(-30 * cell * u.arcsec, 12 * cell * u.arcsec)  # 30 pixels west, 12 north
    # direction cosines of the source about the centre, and the MS convention V = S exp(+2 pi i (u l + v m + w (n - 1)))
    dra = (source.ra - centre.ra).rad
    l_ = np.cos(source.dec.rad) * np.sin(dra)
    m_ = np.sin(source.dec.rad) * np.cos(centre.dec.rad) - np.cos(source.dec.rad) * np.sin(centre.dec.rad) * np.cos(dra)
    n_ = np.sqrt(1 - l_**2 - m_**2)
    phase = 2j * np.pi * (uvw[0] * l_ + uvw[1] * m_ + uvw[2] * (n_ - 1))[:, None] * freqs[None, :] / C_M_S
    vis = 1.5 * np.exp(phase)
    data = np.stack([vis, vis], axis=-1).astype(np.complex64)
    weight = np.ones(data.shape, np.float32)
    images = initial_images(
        [(uvw, freqs, data, weight, np.zeros(data.shape, bool), np.ones(n_row, bool))], size, cell, 1e-5, 1
    )
    assert images.psf[size // 2, size // 2] == pytest.approx(1.0)
    assert images.psf.argmax() == (size // 2) * size + size // 2
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [centre.ra.deg, centre.dec.deg]
    wcs.wcs.crpix = [size // 2 + 1, size // 2 + 1]
    wcs.wcs.cdelt = [-cell / 3600, cell / 3600]
    x, y = wcs.world_to_pixel(source)
    peak_y, peak_x = np.unravel_index(images.dirty.argmax(), images.dirty.shape)
    assert (peak_x, peak_y) == (round(float(x)), round(float(y)))
    assert images.dirty.max() == pytest.approx(1.5, rel=0.02)  # Jy/beam: the weight sum divides
    keywords = wsclean_keywords(images)
    assert keywords["WSCIMGWG"] == pytest.approx(4.0 * data[..., 0].size)  # weight 4 x 1 per sample
    assert keywords["WSCNVIS"] == data[..., 0].size and keywords["WSCENVIS"] == pytest.approx(data[..., 0].size)


def test_nothing_unflagged_gives_none():
    data = np.ones((3, 2, 2), np.complex64)
    assert (
        initial_images(
            [
                (
                    np.ones((3, 3)),
                    np.array([1.4e9, 1.41e9]),
                    data,
                    np.ones(data.shape, np.float32),
                    np.ones(data.shape, bool),
                    np.ones(3, bool),
                )
            ],
            64,
            10.0,
            1e-3,
            1,
        )
        is None
    )


def test_output_channels_split_the_distinct_frequencies_as_wsclean_does():
    # WSClean sorts the distinct channel frequencies (n) and gives output channel k of N the indices
    # k n // N .. (k + 1) n // N - 1: with 5 distinct, 2 and 3
    freqs = np.array([1.40e9, 1.30e9, 1.32e9, 1.36e9, 1.32e9, 1.38e9])  # 1.32 twice (two windows), unsorted
    assert output_channel_edges(freqs, 2) == [(1.30e9, 1.32e9), (1.36e9, 1.40e9)]
    assert output_channel_edges(freqs, 1) == [(1.30e9, 1.40e9)]
    with pytest.raises(ValueError, match="cannot make 6 output channels"):
        output_channel_edges(freqs, 6)


def test_each_output_channel_sees_its_own_half_of_the_band():
    """A source at the phase centre with a steep spectrum: each channel's dirty peak is the mean of its own
    channels' fluxes (equal weights), its weight sum 4 x its samples, and the PSFs peak at 1."""
    rng = np.random.default_rng(5)
    n_row, size, cell = 3000, 128, 20.0
    uvw = np.vstack([rng.normal(0, 150, n_row), rng.normal(0, 150, n_row), rng.normal(0, 30, n_row)])
    freqs = np.linspace(1.31e9, 1.50e9, 8)
    flux = 2.0 * (freqs / 1.4e9) ** -0.75
    data = np.repeat(np.broadcast_to(flux, (n_row, freqs.size))[..., None], 2, axis=-1).astype(np.complex64)
    weight = np.ones(data.shape, np.float32)
    flags = np.zeros(data.shape, bool)
    flags[:, 5, :] = True  # a flagged channel leaves its output channel's mean and weights
    # two parts (two windows), the second holding the upper half's channels
    parts = [
        (uvw, freqs[:4], data[:, :4], weight[:, :4], flags[:, :4], np.ones(n_row, bool)),
        (uvw, freqs[4:], data[:, 4:], weight[:, 4:], flags[:, 4:], np.ones(n_row, bool)),
    ]
    low, high = channel_images(parts, size, cell, 1e-6, 1, 2)
    kept_high = [4, 6, 7]
    assert low.dirty[size // 2, size // 2] == pytest.approx(flux[:4].mean(), rel=1e-4)
    assert high.dirty[size // 2, size // 2] == pytest.approx(flux[kept_high].mean(), rel=1e-4)
    assert (low.weight_sum, high.weight_sum) == (4.0 * n_row * 4, 4.0 * n_row * 3)
    assert (low.n_vis, high.n_vis) == (n_row * 4, n_row * 3)
    assert low.psf[size // 2, size // 2] == pytest.approx(1.0) and high.psf.max() == pytest.approx(1.0)
    one = initial_images(parts, size, cell, 1e-6, 1)  # the one-plane image is the weighted mean of the two
    mean = (low.weight_sum * low.dirty + high.weight_sum * high.dirty) / (low.weight_sum + high.weight_sum)
    assert np.abs(one.dirty - mean).max() < 1e-5 * np.abs(one.dirty).max()
