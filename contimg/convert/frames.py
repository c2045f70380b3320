"""The sky frames of a chunk's rotation, and the w terms they give (astropy and erfa; no casacore).

Each subband's data are fringe-stopped on a moving centre (HA = 0 at the pointing declination);
the MS is phased to one fixed ICRS field. The phase rotation is exp(2 pi i f (w_old - w_new) / c),
with w = b . s for baseline b and apparent direction s, both in the GCRS at each time stamp.
"""

from __future__ import annotations

import numpy as np

__all__ = ["baseline_w", "sky_frames"]


def sky_frames(subs: list, ra_rad: float, dec_rad: float) -> list[tuple]:
    """Per subband, the time-dependent part of its geometry, all subbands in one vectorised pass.

    Erfa's full terrestrial-to-celestial matrix (precession-nutation, UT1, polar motion from
    astropy's IERS tables) and the apparent (aberrated) directions, in the GCRS, of the old centre
    (HA=0, pointing dec) and of the field, as the sky imprinted the data. Computed in the job's
    main process, which loads the IERS tables anyway for the plan, so that the workers never do.

    Parameters
    ----------
    subs : list of SubbandInput
        One per SPW (missing subbands: a neighbour's, whose times the flagged rows take).
    ra_rad, dec_rad : float
        The field (ICRS), radians.

    Returns
    -------
    list of tuple
        Per entry of ``subs``: (unique times JD (T,), GCRS->ITRS matrices (T, 3, 3), old centre
        (T, 3), field (T, 3)).

    Raises
    ------
    ValueError
        If ``subs`` is empty.
    """
    import erfa
    from astropy import units as u
    from astropy.coordinates import GCRS, EarthLocation, HADec, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    if not subs:
        raise ValueError("sky_frames: no subbands given")
    lat, lon, alt = subs[0].telescope_lat_lon_alt
    loc = EarthLocation.from_geodetic(lon * u.rad, lat * u.rad, alt * u.m)
    uniq = [np.unique(s.time_jd) for s in subs]
    t = Time(np.concatenate(uniq), format="jd", scale="utc", location=loc)
    xp, yp = iers.earth_orientation_table.get().pm_xy(t.jd1, t.jd2)
    tt, ut1 = t.tt, t.ut1
    rc2t = erfa.c2t06a(tt.jd1, tt.jd2, ut1.jd1, ut1.jd2, xp.to_value(u.rad), yp.to_value(u.rad))  # (T, 3, 3)
    gcrs = GCRS(obstime=t)
    s_new = SkyCoord(ra=ra_rad * u.rad, dec=dec_rad * u.rad, frame="icrs").transform_to(gcrs).cartesian.xyz.value.T
    dec_old = np.concatenate([np.full(len(q), np.radians(s.pointing_dec_deg)) for q, s in zip(uniq, subs, strict=True)])
    s_old = (
        SkyCoord(
            ha=np.zeros(len(t)) * u.rad, dec=dec_old * u.rad, frame=HADec(obstime=t, location=loc, pressure=0 * u.hPa)
        )
        .transform_to(gcrs)
        .cartesian.xyz.value.T
    )
    out, i = [], 0
    for q in uniq:
        out.append((q, rc2t[i : i + len(q)], s_old[i : i + len(q)], s_new[i : i + len(q)]))
        i += len(q)
    return out


def antenna_rows(sub) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``sub``'s antenna table for each blt's ant1 and ant2."""
    lookup = np.full(int(np.max(sub.antenna_numbers)) + 1, -1)
    lookup[sub.antenna_numbers] = np.arange(len(sub.antenna_numbers))
    return lookup[sub.ant1], lookup[sub.ant2]


def baseline_w(sub, frames: tuple) -> tuple[np.ndarray, np.ndarray]:
    """W of every blt towards the old centre and towards the field, metres (Nblts,) each.

    Baselines are x_ant2 - x_ant1 (pyuvdata's sense), rotated into the GCRS by the transposed
    matrices of ``frames`` (a :func:`sky_frames` entry).
    """
    t_unique, rc2t, s_old, s_new = frames
    tidx = np.searchsorted(t_unique, sub.time_jd)
    # rc2t maps GCRS -> ITRS; its transpose takes the (relative) antenna positions into GCRS axes
    pos_gcrs = np.einsum("tji,aj->tai", rc2t, sub.antenna_positions_m)  # (T, A, 3)
    i1, i2 = antenna_rows(sub)
    b = pos_gcrs[tidx, i2] - pos_gcrs[tidx, i1]  # (Nblts, 3)
    return np.einsum("ij,ij->i", b, s_old[tidx]), np.einsum("ij,ij->i", b, s_new[tidx])
