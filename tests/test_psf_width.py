"""contimg.image.psf_width: the PSF main lobe's half-power ellipse, against the Fourier pair of a Gaussian.

Weights W(u, v) = exp(-(u'^2 / 2 s_a^2 + v'^2 / 2 s_b^2)) on a dense uv grid (u', v' rotated by the position
angle) make the PSF exp(-2 pi^2 (s_a^2 x'^2 + s_b^2 y'^2)): a Gaussian of FWHM sqrt(8 ln 2) / (2 pi s) along each
axis (the Fourier transform of a Gaussian; Bracewell, The Fourier Transform and its Applications, ch. 6). The
wider uv spread gives the minor axis.
"""

import numpy as np
import pytest

from contimg.image.psf_width import half_power_radii, main_lobe_beam

FWHM_PER_SIGMA = np.sqrt(8.0 * np.log(2.0))


def gaussian_uv(s_major_axis_wl, s_minor_axis_wl, pa_deg, cell_wl=50.0, half=320):
    """Samples on a uv grid whose weights make a PSF with its major axis at ``pa_deg`` (east of north).

    The PSF's major axis is along the uv direction of the smaller spread, ``s_major_axis_wl``. The grid reaches
    6.4 of the larger spread (2500 wavelengths): a truncated Gaussian would widen the PSF.
    """
    iu, iv = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1))
    u, v = iu.ravel() * cell_wl, iv.ravel() * cell_wl
    pa = np.radians(pa_deg)
    along = u * np.sin(pa) + v * np.cos(pa)  # u east, v north: the uv direction at position angle pa
    across = u * np.cos(pa) - v * np.sin(pa)
    w = np.exp(-0.5 * ((along / s_major_axis_wl) ** 2 + (across / s_minor_axis_wl) ** 2))
    return u, v, w, cell_wl


@pytest.mark.parametrize("pa_deg", [0.0, 30.0, 72.5, 135.0])
def test_main_lobe_beam_of_a_gaussian_psf(pa_deg):
    s_a, s_b = 1000.0, 2500.0  # wavelengths: major axis FWHM 1/s_a, minor 1/s_b (times sqrt(8 ln 2) / 2 pi)
    u, v, w, cell = gaussian_uv(s_a, s_b, pa_deg)
    bmaj, bmin, pa = main_lobe_beam(u, v, w, cell)
    assert bmaj == pytest.approx(FWHM_PER_SIGMA / (2 * np.pi * s_a), rel=2e-3)
    assert bmin == pytest.approx(FWHM_PER_SIGMA / (2 * np.pi * s_b), rel=2e-3)
    assert abs((pa - pa_deg + 90.0) % 180.0 - 90.0) < 0.5


def test_a_finer_cell_than_the_main_lobe_needs_gives_the_same_beam():
    """Told a uv cell 10x finer than the samples' spacing, the search gathers them on coarser cells (~25
    wavelengths for this lobe): each sample moves by < 13 wavelengths, the beam by < 0.2 %."""
    u, v, w, cell = gaussian_uv(1000.0, 2500.0, 30.0)
    bmaj, bmin, pa = main_lobe_beam(u, v, w, cell / 10.0)
    assert bmaj == pytest.approx(FWHM_PER_SIGMA / (2 * np.pi * 1000.0), rel=2e-3)
    assert bmin == pytest.approx(FWHM_PER_SIGMA / (2 * np.pi * 2500.0), rel=2e-3)
    assert abs(pa - 30.0) < 0.5


def test_half_power_radii_of_a_round_psf():
    u, v, w, cell = gaussian_uv(1500.0, 1500.0, 0.0)
    angles, radii = half_power_radii(u, v, w, cell, n_angles=8)
    assert np.allclose(radii, FWHM_PER_SIGMA / (2 * np.pi * 1500.0) / 2, rtol=2e-3)
    assert np.allclose(angles, np.arange(8) * np.pi / 8)


def test_flagged_and_conjugate_samples():
    """Zero weights count for nothing, and a sample's conjugate is the same cosine."""
    u, v, w, cell = gaussian_uv(1000.0, 2500.0, 30.0)
    ref = main_lobe_beam(u, v, w, cell)
    flip = np.arange(u.size) % 2 == 0
    noise = np.where(flip, 0.0, 1.0)
    u2 = np.concatenate([np.where(flip, -u, u), u * 3.7])  # conjugates, and far samples flagged
    v2 = np.concatenate([np.where(flip, -v, v), v * 3.7])
    w2 = np.concatenate([w, 0.0 * noise])
    assert main_lobe_beam(u2, v2, w2, cell) == pytest.approx(ref, rel=1e-6)


def test_bad_input_is_refused():
    u, v, w, cell = gaussian_uv(1000.0, 2500.0, 0.0, half=20)
    with pytest.raises(ValueError, match="cell_wl"):
        main_lobe_beam(u, v, w, 0.0)
    with pytest.raises(ValueError, match="differ in size"):
        main_lobe_beam(u, v[:-1], w, cell)
    with pytest.raises(ValueError, match="no sample"):
        main_lobe_beam(u, v, np.zeros_like(w), cell)
