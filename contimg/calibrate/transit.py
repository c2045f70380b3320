"""Which calibrator transits during a chunk (pure: astropy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time

from contimg.calibrate.calibrators import Calibrator, load_vla_calibrators
from contimg.core.beam import airy_power
from contimg.core.instrument import SITE

__all__ = ["Transit", "find_transits", "DEFAULT_RADIUS_DEG"]

DEFAULT_RADIUS_DEG = 1.0  # calibrators within 1 deg of the pointing declination
SIDEREAL_PER_SOLAR = 1.002737909350795


@dataclass(frozen=True)
class Transit:
    """A calibrator's meridian transit within a chunk (:func:`find_transits`).

    ``transit_mjd`` is the transit time (MJD, UTC), ``offset_deg`` the calibrator's distance from the
    pointing declination (degrees) and ``pb_flux_jy`` its 20 cm flux through the primary beam there (Jy).
    """

    calibrator: Calibrator
    transit_mjd: float
    offset_deg: float  # |dec - pointing dec| at transit
    pb_flux_jy: float  # 20 cm flux seen through the primary beam at transit

    def as_dict(self) -> dict:
        """A flat dict: the calibrator's name, position, flux and spectral index, and the transit figures."""
        return {
            "name": self.calibrator.name,
            "ra_deg": self.calibrator.ra_deg,
            "dec_deg": self.calibrator.dec_deg,
            "flux_jy": self.calibrator.flux_jy,
            "spectral_index": self.calibrator.spectral_index,
            "transit_mjd": self.transit_mjd,
            "offset_deg": self.offset_deg,
            "pb_flux_jy": self.pb_flux_jy,
        }


def find_transits(
    start_mjd: float,
    end_mjd: float,
    pointing_dec_deg: float,
    *,
    radius_deg: float = DEFAULT_RADIUS_DEG,
    calibrators=None,
    min_flux_jy: float = 0.0,
) -> list[Transit]:
    """Calibrators with a 20 cm flux that transit during the chunk, brightest through the primary beam first.

    A transit is a crossing of the meridian (HA = 0) between ``start_mjd`` and ``end_mjd``, within
    ``radius_deg`` of the pointing dec.
    """
    cals = [
        c
        for c in (calibrators if calibrators is not None else load_vla_calibrators())
        if c.flux_jy and c.flux_jy >= min_flux_jy and abs(c.dec_deg - pointing_dec_deg) <= radius_deg + 0.5
    ]
    if not cals:
        return []
    t = Time([start_mjd, end_mjd], format="mjd", scale="utc")
    coords = SkyCoord(ra=[c.ra_deg for c in cals] * u.deg, dec=[c.dec_deg for c in cals] * u.deg)
    frame = HADec(obstime=t[:, None], location=SITE, pressure=0 * u.hPa)
    hadec = coords[None, :].transform_to(frame)
    ha = hadec.ha.wrap_at(12 * u.hourangle).to_value(u.hourangle)  # (2, N)
    dec_app = hadec.dec.deg.mean(axis=0)
    crossing = (ha[0] <= 0) & (ha[1] > 0)
    out = []
    for i in np.flatnonzero(crossing):
        offset = abs(dec_app[i] - pointing_dec_deg)
        if offset > radius_deg:
            continue
        frac = -ha[0, i] / (ha[1, i] - ha[0, i])  # HA runs linearly over minutes
        transit = start_mjd + frac * (end_mjd - start_mjd)
        pb = float(airy_power(np.radians(offset), 1.4e9))
        out.append(Transit(cals[i], float(transit), float(offset), float(cals[i].flux_jy * pb)))
    return sorted(out, key=lambda tr: -tr.pb_flux_jy)
