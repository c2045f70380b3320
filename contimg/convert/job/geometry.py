"""uvw of the fixed field by casacore's own measures, and the w terms of the phase rotation."""

from __future__ import annotations

import numpy as np

from contimg.convert.frames import antenna_rows, baseline_w
from contimg.core.instrument import TELESCOPE_NAME

__all__ = ["casacore_uvw", "geometry"]


def geometry(sub, frames: tuple, ra_rad: float, dec_rad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uvw for the fixed field (UVW column), and the old and new w, per blt, in metres.

    The phase rotation uses w = b . s (``contimg.convert.frames.baseline_w``). The UVW column is
    computed by casacore's own measures (``to_uvw``, the code CASA uses, on casadata's tables) so
    that CASA agrees with it.
    """
    t_unique = frames[0]
    tidx = np.searchsorted(t_unique, sub.time_jd)
    i1, i2 = antenna_rows(sub)
    ant_uvw = casacore_uvw(sub.antenna_positions_m, t_unique, ra_rad, dec_rad)  # (T, A, 3)
    uvw = ant_uvw[tidx, i2] - ant_uvw[tidx, i1]
    w_old, w_new = baseline_w(sub, frames)
    return uvw, w_old, w_new


def casacore_uvw(ant_pos_rel_m: np.ndarray, times_jd: np.ndarray, ra_rad: float, dec_rad: float) -> np.ndarray:
    """Per-antenna J2000 uvw (T, A, 3) of positions relative to the array centre, by casacore measures."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    dm = measures()
    dm.do_frame(dm.observatory(TELESCOPE_NAME))
    dm.do_frame(dm.direction("J2000", quantity(ra_rad, "rad"), quantity(dec_rad, "rad")))
    xyz = [quantity(ant_pos_rel_m[:, k], "m") for k in range(3)]
    out = np.empty((len(times_jd), len(ant_pos_rel_m), 3))
    for i, jd in enumerate(times_jd):
        dm.do_frame(dm.epoch("utc", quantity((jd - 2400000.5) * 86400.0, "s")))
        uvw = dm.to_uvw(dm.baseline("itrf", *xyz))["xyz"]
        out[i] = np.asarray(uvw.get_value() if hasattr(uvw, "get_value") else uvw).reshape(-1, 3)
    return out
