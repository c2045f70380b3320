"""Phase to the calibrator, flag and time-average a chunk into a small MS (casatools; child process only).

Per spectral window, in one read of DATA (the product MS is never modified): rotate the
visibilities to the calibrator's true position (a 54' offset from the phase centre once cost
upstream 73% of its bandpass solutions), flag autocorrelations, zeros, NaNs and RFI (robust
time-frequency outliers, ``contimg.calibrate.rfi``), and average over the chunk (solint is inf and
the calibrator is now at the centre, so nothing decorrelates), into an MS of one row per baseline
and SPW whose field is the calibrator. The numpy parts are ``contimg.calibrate.calavg``.
"""

from __future__ import annotations

import numpy as np

from contimg.calibrate.job.msread import ms_geometry, read_cross_rows
from contimg.calibrate.report import FlaggingStats
from contimg.calibrate.solutions import CalibrationError

__all__ = ["MAX_UVW_COLUMN_DEV_M", "average_at_calibrator"]

# The phase shift trusts CASA's uvw for the old phase centre to match the UVW column: contimg's
# converter agrees to ~1e-12 m, another uvw convention (sign, frame) differs by metres, and 1 cm is
# already 18 deg of phase at 1.5 GHz.
MAX_UVW_COLUMN_DEV_M = 0.01


# The frame of calibrator positions: the VLA list's J2000 positions are on the ICRF (VLBI positions;
# code A is better than 2 mas), so they are ICRS coordinates, not FK5 J2000 ones. Read as FK5 J2000
# they sit 14-23 mas (the frame bias) from where the data have them: 0.15 deg of phase on a 2.5 km
# outrigger baseline at 1.5 GHz (tests/test_calibrate_phase_centre.py measured it).
CALIBRATOR_FRAME = "ICRS"


def _antenna_uvw(
    me, qa, rel_xyz: np.ndarray, time_s: float, ra_rad: float, dec_rad: float, frame: str = CALIBRATOR_FRAME
) -> np.ndarray:
    """Per-antenna uvw (nant, 3) in metres for phase centre (ra, dec) in ``frame`` at ``time_s`` (MJD s, UTC)."""
    me.doframe(me.epoch("UTC", qa.quantity(time_s, "s")))
    me.doframe(me.direction(frame, qa.quantity(ra_rad, "rad"), qa.quantity(dec_rad, "rad")))
    b = me.baseline(
        "ITRF", qa.quantity(rel_xyz[:, 0], "m"), qa.quantity(rel_xyz[:, 1], "m"), qa.quantity(rel_xyz[:, 2], "m")
    )
    return np.array(me.touvw(b)[1]["value"]).reshape(-1, 3)


def spw_average(ms: str, dd: int, geo: dict, ra_deg: float, dec_deg: float, rfi: bool) -> dict | None:
    """One data description: read, phase to (ra, dec), flag, average in time (runs in a worker process).

    None when the data description has no cross-correlation rows.
    """
    import casatools

    from contimg.calibrate.calavg import average_in_time, grid_index, rotate_to
    from contimg.calibrate.rfi import flag_outliers

    block = geo["blocks"][dd]
    if block.size == 0:
        return None
    me, qa = casatools.measures(), casatools.quanta()
    me.doframe(me.observatory(geo["telescope"]))
    pos = geo["POSITION"].T
    rel = pos - pos.mean(axis=0)  # baselines only need differences; keeps the numbers small
    ra0, dec0 = geo["PHASE_DIR"][:, 0, 0]
    ra_c, dec_c = np.radians(ra_deg), np.radians(dec_deg)
    cross = read_cross_rows(ms, block, geo["has_wspec"])
    rows, a1, a2, data, flags, weight = (cross[k] for k in ("rows", "a1", "a2", "data", "flags", "weight"))
    time_s, uvw_col = cross["time_s"], cross["uvw"]
    if rows.size == 0:
        return None
    times, t_idx, baselines, b_idx, first = grid_index(time_s, a1, a2)
    dw, uvw_dev = np.empty(len(rows)), 0.0
    for i, t in enumerate(times):
        sel = t_idx == i
        u0 = _antenna_uvw(me, qa, rel, t, ra0, dec0, geo["PHASE_DIR_REF"])  # the MS's own frame (ICRS)
        uc = _antenna_uvw(me, qa, rel, t, ra_c, dec_c)
        w0 = u0[a1[sel], 2] - u0[a2[sel], 2]  # CASA's sense: antenna1 - antenna2
        uvw_dev = max(uvw_dev, float(np.max(np.abs(w0 - uvw_col[sel, 2]))))
        dw[sel] = (uc[a1[sel], 2] - uc[a2[sel], 2]) - w0
    data = rotate_to(np.ascontiguousarray(data, dtype=np.complex64), dw, geo["freqs"][geo["SPECTRAL_WINDOW_ID"][dd]])
    flags = flags | (data == 0) | ~np.isfinite(data) | (weight <= 0)
    n_before, n_rfi = int(np.count_nonzero(flags)), 0
    if rfi:
        amp = np.full((len(times), len(baselines)) + data.shape[1:], np.nan, np.float32)
        amp[t_idx, b_idx] = np.abs(data)
        grid_flags = np.ones(amp.shape, bool)  # (time, baseline) cells without a row are missing, not data
        grid_flags[t_idx, b_idx] = flags
        new = flag_outliers(amp, grid_flags)[t_idx, b_idx]
        n_rfi = int(np.count_nonzero(new & ~flags))
        flags = new
    vis, wsum = average_in_time(data, weight, flags, b_idx, len(baselines))
    mid = float(times.mean())
    uc = _antenna_uvw(me, qa, rel, mid, ra_c, dec_c)
    span = float(times.max() - times.min()) + float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return {
        "dd": dd,
        "rows": rows[first],
        "vis": vis,
        "wsum": wsum,
        "uvw": uc[baselines[:, 0]] - uc[baselines[:, 1]],
        "time": mid,
        "span": span,
        "baselines": baselines,
        "samples": flags.size,
        "flagged_before": n_before,
        "flagged_rfi": n_rfi,
        "uvw_dev": uvw_dev,
    }


def average_at_calibrator(
    ms: str, avg: str, ra_deg: float, dec_deg: float, *, rfi: bool = True, workers: int = 2
) -> FlaggingStats:
    """Write ``avg``: one row per cross baseline and SPW, the chunk's data phased to (ra, dec) and
    time-averaged after flagging; its FIELD is the calibrator. Returns flagging figures.

    The SPWs are independent: ``workers`` processes (the machine's cores) take them in turn.

    Raises
    ------
    CalibrationError
        If ``ms`` has no cross-correlation rows, or its UVW column disagrees with CASA's uvw for
        its phase centre by more than ``MAX_UVW_COLUMN_DEV_M``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    geo = ms_geometry(ms)
    dds = list(geo["blocks"])
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            found = list(pool.map(spw_average, *zip(*[(ms, dd, geo, ra_deg, dec_deg, rfi) for dd in dds], strict=True)))
    else:
        found = [spw_average(ms, dd, geo, ra_deg, dec_deg, rfi) for dd in dds]
    results = {r["dd"]: r for r in found if r is not None}
    if not results:
        raise CalibrationError(f"{ms}: no cross-correlation rows")
    uvw_dev = max(r["uvw_dev"] for r in results.values())
    if uvw_dev > MAX_UVW_COLUMN_DEV_M:
        raise CalibrationError(
            f"{ms}: the UVW column differs from CASA's uvw for its phase centre by "
            f"{uvw_dev:.3f} m; not a Measurement Set this job can phase-shift"
        )
    _write_averaged_ms(ms, avg, results, np.radians(ra_deg), np.radians(dec_deg))
    n = max(sum(r["samples"] for r in results.values()), 1)
    return FlaggingStats(
        flagged_fraction_input=sum(r["flagged_before"] for r in results.values()) / n,
        rfi_flagged_fraction=sum(r["flagged_rfi"] for r in results.values()) / n,
        uvw_column_vs_casa_m=uvw_dev,
    )


def _write_averaged_ms(ms: str, avg: str, results: dict, ra_c: float, dec_c: float) -> None:
    """A copy of one row per baseline and SPW of ``ms``, filled with the averages; FIELD = the calibrator."""
    import casatools

    from contimg.calibrate.calavg import sigma_from_weight
    from contimg.childjobs.mscolumns import ensure_weight_spectrum

    tb = casatools.table()
    tb.open(ms)
    try:
        ref = tb.selectrows(np.concatenate([r["rows"] for r in results.values()]).tolist())
        ref.copy(avg, deep=True, valuecopy=True, returnobject=False)
        ref.close()
    finally:
        tb.close()
    tb.open(avg, nomodify=False)
    try:
        dd_col, a1, a2 = tb.getcol("DATA_DESC_ID"), tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        nrow = len(dd_col)
        first = next(iter(results.values()))
        vis = np.zeros((nrow,) + first["vis"].shape[1:], np.complex64)
        wsum = np.zeros(vis.shape, np.float32)
        uvw, t_mid, span = np.zeros((nrow, 3)), np.zeros(nrow), np.zeros(nrow)
        for dd, r in results.items():
            lookup = {(int(x), int(y)): i for i, (x, y) in enumerate(r["baselines"])}
            rows = np.flatnonzero(dd_col == dd)
            idx = np.array([lookup[(int(a1[k]), int(a2[k]))] for k in rows], dtype=int)
            vis[rows], wsum[rows], uvw[rows] = r["vis"][idx], r["wsum"][idx], r["uvw"][idx]
            t_mid[rows], span[rows] = r["time"], r["span"]
        wt = wsum.mean(axis=1)  # (nrow, npol)
        tb.putcol("DATA", np.transpose(vis, (2, 1, 0)))
        tb.putcol("FLAG", np.transpose(wsum <= 0, (2, 1, 0)))
        ensure_weight_spectrum(tb)  # weights vary over channels after flagging and averaging
        tb.putcol("WEIGHT_SPECTRUM", np.transpose(wsum, (2, 1, 0)))
        tb.putcol("WEIGHT", wt.T)
        tb.putcol("SIGMA", sigma_from_weight(wt).T)
        tb.putcol("FLAG_ROW", np.all(wsum <= 0, axis=(1, 2)))
        tb.putcol("UVW", uvw.T)
        for col in ("TIME", "TIME_CENTROID"):
            tb.putcol(col, t_mid)
        for col in ("INTERVAL", "EXPOSURE"):
            tb.putcol(col, span)
    finally:
        tb.close()
    tb.open(avg + "/FIELD", nomodify=False)
    direction = np.array([[[ra_c]], [[dec_c]]])
    for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
        tb.putcell(col, 0, direction[:, :, 0])
        keywords = tb.getcolkeywords(col)
        keywords.setdefault("MEASINFO", {"type": "direction"})["Ref"] = CALIBRATOR_FRAME  # the calibrator's frame
        tb.putcolkeywords(col, keywords)
    tb.close()
