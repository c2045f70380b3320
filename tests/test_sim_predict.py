"""The simulator's many-source predict (#22) against a direct DFT written here from the textbook.

``contimg.sim.model.sky_visibilities_matrix`` (per-antenna phasors, complex64 rank-k updates, hour angles
interpolated, Gaussians as Gauss-Hermite components) is compared with the sum over sources of
``S(nu) A(theta, nu) T(u', v') exp(+2 pi i (nu / c) (u l + v m + w (n - 1)))`` (docs/conventions.md's sign),
with astropy's hour angle at every integration, the Airy beam from scipy's J1 and a Gaussian's analytic
taper ``T`` on the baseline projected onto the source's own tangent plane (Thompson, Moran & Swenson ch. 4).
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time
from scipy.special import j1

from contimg.core.instrument import SITE, load_stations, select_stations, subband_freqs_hz
from contimg.sim.model import gaussian_components, sky_visibilities_matrix
from contimg.sim.sky import Source

C = 299_792_458.0
DISH_M = 4.65
INTEGRATION_S = 96 * 0.134217728
START = Time("2026-01-25T00:00:00")
DEC = 55.0
# Gauss-Hermite components within 1e-4 of a Gaussian's flux (contimg.sim.model.GH_TOL_REL), complex64 sums
# ~1e-6 of the total, the hour angle interpolated between two astropy transforms << 1e-4 rad of phase
REL_TOL = 1e-4


def _ha_frame(itrf_m):
    """ITRF (..., 3) rotated about the pole by the site longitude: x to (HA=0, dec=0), y east, z the pole."""
    lon = SITE.lon.rad
    x, y, z = itrf_m[..., 0], itrf_m[..., 1], itrf_m[..., 2]
    return np.stack([np.cos(lon) * x + np.sin(lon) * y, -np.sin(lon) * x + np.cos(lon) * y, z], axis=-1)


def _airy(theta, freq):
    x = np.pi * DISH_M * np.sin(theta) * freq / C
    return (2 * j1(x) / x) ** 2


def direct_dft(ant_ha, ant1, ant2, times, freqs, sources):
    """V (T, B, F): the textbook sum over sources, one source, time and channel at a time."""
    d0 = np.radians(DEC)
    b = ant_ha[ant2] - ant_ha[ant1]  # (B, 3), pyuvdata's b = x_j - x_i
    uvw = np.stack(  # towards (HA=0, dec0): TMS eq. 4.1 with H = 0
        [b[:, 1], -np.sin(d0) * b[:, 0] + np.cos(d0) * b[:, 2], np.cos(d0) * b[:, 0] + np.sin(d0) * b[:, 2]], axis=-1
    )
    vis = np.zeros((len(times), len(b), len(freqs)), dtype=complex)
    frame = HADec(obstime=times, location=SITE, pressure=0 * u.hPa)

    def unit(ra_deg, dec_deg):  # (T, 3) in the hour-angle frame
        hd = SkyCoord(ra_deg * u.deg, dec_deg * u.deg).transform_to(frame)
        h, d = hd.ha.rad, hd.dec.rad
        return np.stack([np.cos(d) * np.cos(h), -np.cos(d) * np.sin(h), np.sin(d)], axis=-1)

    for src in sources:
        hadec = SkyCoord(src.ra_deg * u.deg, src.dec_deg * u.deg).transform_to(frame)
        h, d = hadec.ha.rad, hadec.dec.rad
        # direction cosines about (HA=0, dec0); RA - RA0 = -H
        ell = -np.cos(d) * np.sin(h)
        m = np.sin(d) * np.cos(d0) - np.cos(d) * np.sin(d0) * np.cos(h)
        n = np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(h)
        for t in range(len(times)):
            phase = 2 * np.pi * (uvw @ [ell[t], m[t], n[t] - 1])[:, None] * freqs[None, :] / C  # (B, F)
            amp = src.flux_jy * (freqs / 1.4e9) ** src.spectral_index * _airy(np.arccos(n[t]), freqs)  # (F,)
            taper = 1.0
            if src.maj_arcsec > 0:
                # ICRS east and north at the source (the catalogue's position angle), seen in the frame of
                # date: precession since J2000 turns them by ~0.1 deg from the apparent place's own axes
                step = 1.0 / 3600.0
                s_c = unit(src.ra_deg, src.dec_deg)[t]
                east = (
                    unit(src.ra_deg + step / np.cos(np.radians(src.dec_deg)), src.dec_deg)[t]
                    - unit(src.ra_deg - step / np.cos(np.radians(src.dec_deg)), src.dec_deg)[t]
                )
                north = unit(src.ra_deg, src.dec_deg + step)[t] - unit(src.ra_deg, src.dec_deg - step)[t]
                east, north = (v - (v @ s_c) * s_c for v in (east, north))
                east, north = east / np.linalg.norm(east), north / np.linalg.norm(north)
                ue = (b @ east)[:, None] * freqs[None, :] / C
                vn = (b @ north)[:, None] * freqs[None, :] / C
                pa = np.radians(src.pa_deg)
                s_maj, s_min = np.radians(np.array([src.maj_arcsec, src.min_arcsec]) / 3600) / np.sqrt(8 * np.log(2))
                along, across = ue * np.sin(pa) + vn * np.cos(pa), ue * np.cos(pa) - vn * np.sin(pa)
                # (flat sky across the source: the w-term through 15" at 2 km is ~3e-6 of its flux)
                taper = np.exp(-2 * np.pi**2 * (s_maj**2 * along**2 + s_min**2 * across**2))
            vis[t] += amp[None, :] * taper * np.exp(1j * phase)
    return vis


@pytest.fixture(scope="module")
def case():
    stations = load_stations()
    numbers = select_stations(20)  # both arms and outriggers: baselines to 2.1 km (2.6 km at full size)
    ant_ha = _ha_frame(stations.itrf_m[stations.index_of(numbers)])
    ant1, ant2 = np.triu_indices(len(numbers))
    times = START + (np.arange(3) + 0.5) * INTEGRATION_S * u.s
    centre = SkyCoord(
        ha=0 * u.deg, dec=DEC * u.deg, frame=HADec(obstime=times[1], location=SITE, pressure=0 * u.hPa)
    ).icrs
    ra, dec = centre.ra.deg, centre.dec.deg
    sources = [
        Source(ra + 0.05, dec - 0.03, 2.0, -0.7, "near"),
        Source(ra - 0.4, dec + 0.2, 1.0, -0.8, "gauss", 15.0, 6.0, 30.0),  # resolved on the long baselines
        Source(ra + 0.3, dec - 0.4, 0.3, 0.1, "gauss2", 8.0, 8.0, 0.0),
        Source(ra + 2.2 / np.cos(np.radians(dec)), dec + 1.0, 0.8, -0.6, "edge"),  # ~2.4 deg: main lobe's edge
        Source(ra - 1.0, dec - 4.8, 6.0, -1.0, "sidelobe"),  # ~4.9 deg: first sidelobe
    ]
    return ant_ha, ant1, ant2, times, sources


@pytest.mark.parametrize(
    "freqs",
    [subband_freqs_hz(0, 8), subband_freqs_hz(15, 6), np.array([1.33e9, 1.41e9, 1.47e9])],
    ids=["sb00-stepped", "sb15-stepped", "uneven"],
)
def test_the_fast_predict_matches_a_direct_dft(case, freqs):
    ant_ha, ant1, ant2, times, sources = case
    b_len = np.linalg.norm(ant_ha[:, None] - ant_ha[None], axis=-1).max()
    assert b_len > 2000, "outriggers in the array: the Gaussian is resolved and far sources wind fast"
    comps = gaussian_components(sources, float(freqs.max()), float(b_len))
    fast = sky_visibilities_matrix(ant_ha, ant1, ant2, times, freqs, comps, DEC)
    dft = direct_dft(ant_ha, ant1, ant2, times, freqs, sources)
    scale = np.abs(dft[:, ant1 == ant2]).max()  # the apparent flux summed over sources (an autocorrelation)
    err = np.abs(fast - dft).max()
    assert err <= REL_TOL * scale, (err, scale)
    # every source matters at that tolerance: dropping any one breaks it by far, so none can be wrong unnoticed
    for k, src in enumerate(sources):
        without = direct_dft(ant_ha, ant1, ant2, times, freqs, sources[:k] + sources[k + 1 :])
        assert np.abs(without - dft).max() > 10 * REL_TOL * scale, src.name


def test_threads_do_not_change_the_result(case):
    ant_ha, ant1, ant2, times, sources = case
    freqs = subband_freqs_hz(3, 4)
    comps = gaussian_components(sources, float(freqs.max()), 3000.0)
    one = sky_visibilities_matrix(ant_ha, ant1, ant2, times, freqs, comps, DEC, threads=1)
    two = sky_visibilities_matrix(ant_ha, ant1, ant2, times, freqs, comps, DEC, threads=2)
    np.testing.assert_array_equal(one, two)
    with pytest.raises(ValueError, match="threads"):
        sky_visibilities_matrix(ant_ha, ant1, ant2, times, freqs, comps, DEC, threads=0)
