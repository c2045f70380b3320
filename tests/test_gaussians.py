"""Gauss-Hermite point components of a Gaussian (contimg.core.gaussians) against its analytic visibility.

An elliptical Gaussian of FWHM axes (maj, min) at position angle pa has the visibility
S exp(-pi^2 / (4 ln 2) (maj^2 q_maj^2 + min^2 q_min^2)) at a baseline of q wavelengths along its axes
(the textbook Fourier pair); the components' sum of S_q exp(-2 pi i (u l_q + v m_q)) must meet it to the
tolerance asked for, on every baseline out to the longest.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from contimg.core.gaussians import gaussian_components

C = 299_792_458.0


def lm(ra_deg, dec_deg, ra0_deg, dec0_deg):
    ra, dec, ra0, dec0 = map(np.radians, (ra_deg, dec_deg, ra0_deg, dec0_deg))
    return (
        np.cos(dec) * np.sin(ra - ra0),
        np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0),
    )


@pytest.mark.parametrize("tol_jy, tol_rel", [(1e-4, 1e-4), (1e-3, 1e-3)])
def test_components_meet_the_analytic_gaussian_to_the_tolerance_asked(tol_jy, tol_rel):
    src = SimpleNamespace(
        ra_deg=128.0, dec_deg=55.5, flux_jy=2.0, spectral_index=0.0, maj_arcsec=18.0, min_arcsec=8.0, pa_deg=30.0
    )
    f_max, b_max = 1.5e9, 2600.0
    comp = gaussian_components([src], f_max, b_max, tol_jy=tol_jy, tol_rel=tol_rel)
    el, em = lm(comp["ra_deg"], comp["dec_deg"], src.ra_deg, src.dec_deg)
    rng = np.random.default_rng(3)
    q = rng.uniform(-1, 1, (4000, 2)) * b_max * f_max / C / np.sqrt(2)  # (u, v) wavelengths out to the longest
    got = np.exp(-2j * np.pi * (q[:, :1] * el + q[:, 1:] * em)) @ comp["flux_jy"]
    pa = np.radians(src.pa_deg)
    q_maj = q[:, 0] * np.sin(pa) + q[:, 1] * np.cos(pa)
    q_min = q[:, 0] * np.cos(pa) - q[:, 1] * np.sin(pa)
    maj, mnr = np.radians([src.maj_arcsec / 3600, src.min_arcsec / 3600])
    want = src.flux_jy * np.exp(-(np.pi**2) / (4 * np.log(2)) * ((maj * q_maj) ** 2 + (mnr * q_min) ** 2))
    assert np.abs(got - want).max() <= max(tol_jy, tol_rel * src.flux_jy)


def test_a_looser_tolerance_takes_fewer_points_and_a_bad_one_is_refused():
    src = SimpleNamespace(
        ra_deg=10.0, dec_deg=40.0, flux_jy=0.5, spectral_index=-0.7, maj_arcsec=20.0, min_arcsec=12.0, pa_deg=0.0
    )
    tight = gaussian_components([src], 1.5e9, 2600.0)
    loose = gaussian_components([src], 1.5e9, 2600.0, tol_jy=1e-3, tol_rel=1e-3)
    assert len(loose["flux_jy"]) < len(tight["flux_jy"])
    assert loose["flux_jy"].sum() == pytest.approx(src.flux_jy, rel=1e-3)  # the zero-spacing flux
    with pytest.raises(ValueError, match="tolerances"):
        gaussian_components([src], 1.5e9, 2600.0, tol_jy=0.0)
