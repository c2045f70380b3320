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
from contimg.core.instrument import SITE
from contimg.sim.sky import Source

__all__ = ["ha_frame", "source_directions", "pointing_direction", "baseline_uvw", "sky_visibilities"]


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
