"""Post-conversion checks on the written MS, read back with casacore before it is put in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contimg.convert.plan import ChunkPlan
from contimg.core.instrument import load_stations

__all__ = ["ANT_POS_TOL_M", "CHAN_FREQ_TOL_HZ", "PHASE_CENTRE_TOL_ARCSEC", "UVW_LENGTH_TOL_M", "run_checks"]

ANT_POS_TOL_M = 0.05  # antenna positions must match the station table to 5 cm
PHASE_CENTRE_TOL_ARCSEC = 1.0
# CHAN_FREQ is written as float64 from the files' float64 labels, so it is exact; 1 mHz is pyuvdata's
# own tolerance on freq_array.
CHAN_FREQ_TOL_HZ = 1e-3
UVW_LENGTH_TOL_M = 1e-3  # |uvw| is a rotation of the baseline vector: lengths agree to float64 rounding


def run_checks(ms_path: Path, plan: ChunkPlan) -> dict:
    """Post-conversion checks on the written MS (read back with casacore).

    Returns
    -------
    dict
        name -> {"passed": bool, "value": measured, "limit": allowed}; the job refuses the MS
        when any fails.
    """
    from casacore import tables

    p = str(ms_path)
    checks = {}
    with tables.table(p + "::SPECTRAL_WINDOW", ack=False) as spw:
        freqs = np.concatenate([spw.getcell("CHAN_FREQ", k) for k in range(spw.nrows())])
    checks["frequencies_ascending"] = {
        "passed": bool(np.all(np.diff(freqs) > 0)),
        "value": float(np.min(np.diff(freqs))),
        "limit": "> 0 Hz",
    }
    expected = plan.spectral_layout()[0]
    dfreq = float(np.max(np.abs(freqs - expected))) if freqs.shape == expected.shape else float("inf")
    checks["chan_freq_matches_files_hz"] = {
        "passed": bool(dfreq <= CHAN_FREQ_TOL_HZ),
        "value": dfreq,
        "limit": CHAN_FREQ_TOL_HZ,
    }
    with tables.table(p + "::FIELD", ack=False) as field:
        ra, dec = field.getcell("PHASE_DIR", 0)[0]
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    sep = (
        SkyCoord(ra * u.rad, dec * u.rad)
        .separation(SkyCoord(plan.phase_center_ra_deg * u.deg, plan.phase_center_dec_deg * u.deg))
        .arcsec
    )
    checks["phase_centre_offset_arcsec"] = {
        "passed": bool(sep < PHASE_CENTRE_TOL_ARCSEC),
        "value": float(sep),
        "limit": PHASE_CENTRE_TOL_ARCSEC,
    }
    with tables.table(p + "::ANTENNA", ack=False) as ant:
        pos = ant.getcol("POSITION")
        mounts = np.asarray(ant.getcol("MOUNT"))
        diam = ant.getcol("DISH_DIAMETER")
    stations = load_stations()
    present = np.union1d(plan.template.ant1, plan.template.ant2)
    ref = stations.itrf_m[stations.index_of(present + 1)]
    dpos = float(np.max(np.linalg.norm(pos[present] - ref, axis=1)))
    checks["antenna_position_offset_m"] = {"passed": bool(dpos < ANT_POS_TOL_M), "value": dpos, "limit": ANT_POS_TOL_M}
    checks["antenna_mount_and_diameter"] = {
        "passed": bool(all(m == "ALT-AZ" for m in mounts[present]) and np.allclose(diam[present], 4.65)),
        "value": f"{sorted(set(mounts[present]))} {sorted(set(np.round(diam[present], 3)))}",
        "limit": "ALT-AZ, 4.65 m",
    }
    with tables.table(p, ack=False) as ms:
        uvw = ms.getcol("UVW")
        a1, a2 = ms.getcol("ANTENNA1"), ms.getcol("ANTENNA2")
    cross = a1 != a2
    length = np.linalg.norm(uvw[cross], axis=1)
    b_len = np.linalg.norm(pos[a2[cross]] - pos[a1[cross]], axis=1)
    max_dev = float(np.max(np.abs(length - b_len))) if length.size else 0.0
    checks["uvw_length_matches_baseline_m"] = {
        "passed": bool(max_dev < UVW_LENGTH_TOL_M),
        "value": max_dev,
        "limit": UVW_LENGTH_TOL_M,
    }
    checks["uvw_range_m"] = {
        "passed": bool(length.size and length.min() > 1.0 and length.max() < 3300.0),
        "value": [float(length.min()), float(length.max())] if length.size else None,
        "limit": [1.0, 3300.0],
    }
    return checks
