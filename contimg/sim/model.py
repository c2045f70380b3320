"""Visibilities of a point-source sky for one subband, as the DSA-110 correlator delivers them.

Geometry is done in the hour-angle frame of date: x towards (HA=0, dec=0), y towards the east
(HA=-6h), z towards the celestial pole. Antenna ITRF positions enter that frame by a rotation
about the pole by the site longitude (polar motion, ~0.3", is ignored). The correlator
fringe-stops on s0 = (HA=0, pointing dec), so a source in direction s contributes
``S(nu) A(theta) exp(+2 pi i nu/c b.(s - s0))`` with b = x_ant2 - x_ant1 (pyuvdata's sign; see
docs/conventions.md), and the uvw of a baseline, its projection on s0, never changes.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time

from contimg.core.beam import C_M_S, airy_power
from contimg.core.gaussians import gaussian_components
from contimg.core.instrument import SITE
from contimg.core.predict import point_visibilities, run_single_threaded_blas
from contimg.sim.sky import Source

__all__ = [
    "ha_frame",
    "source_directions",
    "pointing_direction",
    "baseline_uvw",
    "sky_visibilities",
    "sky_visibilities_matrix",
    "gaussian_components",
]

ERA_RATE_RAD_S = 2 * np.pi * 1.00273781191135448 / 86400.0  # Earth rotation angle per UT1 second (IERS 2003)


def ha_frame(itrf_m: np.ndarray) -> np.ndarray:
    """ITRF vectors (..., 3) in the hour-angle frame of the site (x meridian-equator, y east, z pole)."""
    lon = SITE.lon.to_value(u.rad)
    c, s = np.cos(lon), np.sin(lon)
    x, y, z = itrf_m[..., 0], itrf_m[..., 1], itrf_m[..., 2]
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=-1)


def _unit(ha_rad, dec_rad) -> np.ndarray:
    return np.stack([np.cos(dec_rad) * np.cos(ha_rad), -np.cos(dec_rad) * np.sin(ha_rad), np.sin(dec_rad)], axis=-1)


def source_directions(sources: list[Source], times: Time) -> np.ndarray:
    """Unit vectors (T, S, 3) of the sources in the hour-angle frame at each time (apparent, no refraction)."""
    ra = np.array([s.ra_deg for s in sources])
    dec = np.array([s.dec_deg for s in sources])
    n_t = len(times)
    coords = SkyCoord(
        ra=np.broadcast_to(ra, (n_t, len(ra))) * u.deg, dec=np.broadcast_to(dec, (n_t, len(dec))) * u.deg, frame="icrs"
    )
    frame = HADec(obstime=times[:, None], location=SITE, pressure=0 * u.hPa)
    hadec = coords.transform_to(frame)
    return _unit(hadec.ha.to_value(u.rad), hadec.dec.to_value(u.rad))


def pointing_direction(dec_deg: float) -> np.ndarray:
    """Unit vector of the fringe-stop centre and beam pointing: (HA=0, apparent dec)."""
    return _unit(0.0, np.radians(dec_deg))


def baseline_uvw(b_ha: np.ndarray, dec_deg: float) -> np.ndarray:
    """Uvw (..., 3) in metres of hour-angle-frame baselines towards (HA=0, dec): u east, v north, w to s0."""
    d = np.radians(dec_deg)
    u_ = b_ha[..., 1]
    v_ = -b_ha[..., 0] * np.sin(d) + b_ha[..., 2] * np.cos(d)
    w_ = b_ha[..., 0] * np.cos(d) + b_ha[..., 2] * np.sin(d)
    return np.stack([u_, v_, w_], axis=-1)


def sky_visibilities(
    ant_ha_m: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    times: Time,
    freqs_hz: np.ndarray,
    sources: list[Source],
    dec_deg: float,
) -> np.ndarray:
    """Noise-free, gain-free visibilities (T, B, F) complex128 of ``sources`` for one subband.

    ``ant_ha_m`` are antenna positions (A, 3) in the hour-angle frame; ``ant1``/``ant2`` index them
    per baseline. Autocorrelations (ant1 == ant2) get the sources' beam-weighted flux.
    """
    n_t, n_b, n_f = len(times), len(ant1), len(freqs_hz)
    vis = np.zeros((n_t, n_b, n_f), dtype=np.complex128)
    if not sources:
        return vis
    s0 = pointing_direction(dec_deg)
    dirs = source_directions(sources, times)  # (T, S, 3)
    theta = np.arccos(np.clip(dirs @ s0, -1.0, 1.0))  # (T, S) angle from the beam centre
    k = 2.0 * np.pi * np.asarray(freqs_hz, dtype=float) / C_M_S  # (F,)
    for i, src in enumerate(sources):
        proj = ant_ha_m @ (dirs[:, i, :] - s0).T  # (A, T): x_a . (s - s0)
        delay_m = (proj[ant2] - proj[ant1]).T  # (T, B)
        amp = src.flux_at(freqs_hz)[None, :] * airy_power(theta[:, i, None], freqs_hz[None, :])  # (T, F)
        vis += amp[:, None, :] * np.exp(1j * delay_m[:, :, None] * k[None, None, :])
    return vis


def _directions_linear(ra_deg: np.ndarray, dec_deg: np.ndarray, times: Time) -> np.ndarray:
    """Unit vectors (T, S, 3) in the hour-angle frame: astropy at the first and last time, linear between.

    Over a subband's 5 minutes the apparent place moves smoothly (aberration, precession: < 1 mas), so the
    hour angle grows linearly (at about the Earth rotation rate) and the declination barely changes; this
    keeps the many-source path to two astropy transforms per subband.
    """
    coords = SkyCoord(ra=np.asarray(ra_deg) * u.deg, dec=np.asarray(dec_deg) * u.deg, frame="icrs")
    ends = times[[0, -1]] if len(times) > 1 else times[[0]]
    hadec = [coords.transform_to(HADec(obstime=t, location=SITE, pressure=0 * u.hPa)) for t in ends]
    ha0, dec0 = hadec[0].ha.to_value(u.rad), hadec[0].dec.to_value(u.rad)
    dt = (times - times[0]).to_value(u.s)
    if len(times) > 1 and dt[-1] > 0:
        d_ha = np.angle(np.exp(1j * (hadec[1].ha.to_value(u.rad) - ha0)))  # wrapped to (-pi, pi]
        frac = dt / dt[-1]
        ha = ha0[None, :] + d_ha[None, :] * frac[:, None]
        dec = dec0[None, :] + (hadec[1].dec.to_value(u.rad) - dec0)[None, :] * frac[:, None]
    else:
        ha = ha0[None, :] + ERA_RATE_RAD_S * dt[:, None]
        dec = np.broadcast_to(dec0[None, :], ha.shape)
    return _unit(ha, dec)


def sky_visibilities_matrix(
    ant_ha_m: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    times: Time,
    freqs_hz: np.ndarray,
    components: dict,
    dec_deg: float,
    threads: int | None = None,
) -> np.ndarray:
    """Visibilities (T, B, F) of many point components, as per-antenna phasors and a matrix product.

    ``V_ij = sum_s w_s conj(e_is) e_js`` with ``e_as = exp(i k x_a . (s - s0))`` and
    ``w_s = S_s(nu) A(theta_s, nu) >= 0``, so for each time and channel ``V = conj(F) F^T`` with
    ``F = e sqrt(w)``: a Hermitian rank-k update (BLAS ``cherk``, complex64;
    ``contimg.core.predict.point_visibilities``). ``components`` holds arrays ``ra_deg``, ``dec_deg``,
    ``flux_jy`` (at 1.4 GHz) and ``spectral_index``.

    Integrations run on ``threads`` Python threads (default: the cores this process may use), each
    with single-threaded BLAS (``contimg.core.predict.run_single_threaded_blas``); the result does not
    depend on it.
    """
    from contimg.sim.sky import REF_FREQ_HZ

    freqs = np.asarray(freqs_hz, dtype=float)
    n_t, n_b, n_f = len(times), len(ant1), len(freqs)
    vis = np.zeros((n_t, n_b, n_f), dtype=np.complex128)
    if len(components["flux_jy"]) == 0:
        return vis
    s0 = pointing_direction(dec_deg)
    dirs = _directions_linear(components["ra_deg"], components["dec_deg"], times)  # (T, S, 3)
    theta = np.arccos(np.clip(dirs @ s0, -1.0, 1.0))  # (T, S)
    spec = components["flux_jy"][None, :] * (freqs[:, None] / REF_FREQ_HZ) ** components["spectral_index"][None, :]
    k = 2.0 * np.pi * freqs / C_M_S

    def one_time(t: int) -> None:
        d = ant_ha_m @ (dirs[t] - s0).T  # (A, S) metres
        w = spec * airy_power(theta[t][None, :], freqs[:, None])  # (F, S)
        vis[t] = point_visibilities(d, k, w, ant1, ant2)

    run_single_threaded_blas(one_time, range(n_t), threads)
    return vis
