"""Meridian geometry: where (HA=0, pointing dec) lies on the sky at a given time.

DSA-110 data arrive fringe-stopped at hour angle 0 and the pointing declination; the converter
rephases each chunk to one fixed ICRS direction, the meridian at the chunk's midpoint.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, HADec, SkyCoord
from astropy.time import Time
from astropy.utils import iers

from contimg.core.instrument import SITE

__all__ = ["meridian_icrs", "lst_rad"]

# Never download IERS tables: the bundled astropy-iers-data is used (no network here or at the site).
iers.conf.auto_download = False
iers.conf.auto_max_age = None


def meridian_icrs(time: Time, dec_deg: float) -> SkyCoord:
    """ICRS direction of (HA=0, apparent dec = ``dec_deg``) seen from the site at ``time``.

    The pointing declination is a topocentric (apparent, no refraction) declination, as the
    correlator fringe-stops in the HA/Dec frame of date.
    """
    t = Time(time)
    frame = HADec(obstime=t, location=SITE, pressure=0 * u.hPa)
    ha = np.zeros(t.shape) * u.deg
    dec = np.full(t.shape, dec_deg) * u.deg
    return SkyCoord(ha=ha, dec=dec, frame=frame).transform_to(ICRS())


def lst_rad(time: Time) -> np.ndarray:
    """Apparent local sidereal time at the site, in radians."""
    return Time(time).sidereal_time("apparent", longitude=SITE.lon).to_value(u.rad)
