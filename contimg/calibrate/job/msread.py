"""Reading the calibrator chunk's Measurement Set with casatools (child process only).

Small columns and subtables for planning (time span, pointing, geometry, antennas with data); the
averaging workers read the data themselves with python-casacore (``avgworker.read_cross_rows``).
Nothing here writes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["antennas_with_data", "ms_geometry", "time_span"]


def antennas_with_data(ms: str) -> list[int]:
    """Sorted 0-based ids of the antennas in at least one unflagged cross-correlation row of ``ms``."""
    import casatools

    tb = casatools.table()
    tb.open(ms)
    a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
    flag_row = tb.getcol("FLAG_ROW")
    tb.close()
    cross = (a1 != a2) & ~flag_row
    return sorted(set(a1[cross].tolist()) | set(a2[cross].tolist()))


def time_span(ms: str) -> dict:
    """Start/end MJD and the pointing declination keyword (reads two small columns, not the data).

    Returns ``{"start_mjd", "end_mjd", "pointing_dec_deg"}``; the declination is None when the MS
    was not made by ``contimg convert`` (no ``CONTIMG_POINTING_DEC_DEG`` keyword).
    """
    import casatools

    tb = casatools.table()
    tb.open(ms)
    try:
        times, interval = tb.getcol("TIME"), tb.getcol("INTERVAL")
        pointing = tb.getkeywords().get("CONTIMG_POINTING_DEC_DEG")
    finally:
        tb.close()
    half = float(np.median(interval)) / 2  # TIME is the integration's centre; the span is its edges
    return {
        "start_mjd": (times.min() - half) / 86400.0,
        "end_mjd": (times.max() + half) / 86400.0,
        "pointing_dec_deg": float(pointing) if pointing is not None else None,
    }


def ms_geometry(ms: str) -> dict:
    """What every SPW worker needs to know about ``ms``, read once.

    That is: antenna positions, phase centre, SPW of each data description, channel frequencies,
    observatory, and which rows hold each data description.

    Keys: ``POSITION`` (3, nant) ITRF m, ``PHASE_DIR`` (2, 1, nfield) rad, ``PHASE_DIR_REF`` (its
    frame, e.g. ``ICRS``; ``J2000`` when the column does not say), ``SPECTRAL_WINDOW_ID``
    per data description, ``freqs`` (Hz per SPW), ``telescope``, ``has_wspec``, ``blocks``
    (data description -> row numbers).
    """
    import casatools

    tb = casatools.table()
    out = {}
    for sub, col in (("ANTENNA", "POSITION"), ("FIELD", "PHASE_DIR"), ("DATA_DESCRIPTION", "SPECTRAL_WINDOW_ID")):
        tb.open(f"{ms}/{sub}")
        out[col] = tb.getcol(col)
        if col == "PHASE_DIR":
            out["PHASE_DIR_REF"] = str(tb.getcolkeywords(col).get("MEASINFO", {}).get("Ref", "J2000"))
        tb.close()
    tb.open(ms + "/SPECTRAL_WINDOW")
    out["freqs"] = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
    tb.close()
    tb.open(ms + "/OBSERVATION")
    out["telescope"] = str(tb.getcell("TELESCOPE_NAME", 0))
    tb.close()
    tb.open(ms)
    out["has_wspec"] = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
    dd_all = tb.getcol("DATA_DESC_ID")
    tb.close()
    out["blocks"] = {dd: np.flatnonzero(dd_all == dd) for dd in range(len(out["SPECTRAL_WINDOW_ID"]))}
    return out
