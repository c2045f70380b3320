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


# A gain solution's amplitude error is about 1 / its SNR and its phase error 57 deg / SNR: 100 keeps
# them near 1 % and 0.6 deg, half the 2 % / 2 deg the set must reach at mid-chunk. Bins are lengthened
# beyond solint_s until a solution gets there.
MIN_SOLUTION_SNR = 100.0


def solution_snr_per_integration(
    data: np.ndarray, flags: np.ndarray, t_idx, b_idx, n_t: int, n_bl: int, n_ant: int
) -> float:
    """Expected SNR of one antenna's gain from one integration of one SPW and polarization.

    Signal: the median amplitude of the chunk-averaged visibilities (the calibrator dominates them,
    phased to it). Noise per real part: from differences of consecutive integrations of a baseline
    (1.4826 MAD / sqrt 2), which a gain drifting over minutes barely changes. An antenna's solution
    combines its n_ant - 1 baselines and the SPW's channels.
    """
    grid = np.full((n_t, n_bl) + data.shape[1:], np.nan, np.complex64)
    grid[t_idx, b_idx] = np.where(flags, np.nan, data)
    diff = np.diff(grid, axis=0).real
    diff = diff[np.isfinite(diff)]
    mean = np.nanmean(grid, axis=0)
    if diff.size < 10 or not np.isfinite(mean).any():
        return 0.0
    sigma = 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / np.sqrt(2)
    signal = float(np.nanmedian(np.abs(mean)))
    if sigma <= 0:
        return np.inf
    return signal / (sigma * np.sqrt(2)) * np.sqrt(max(n_ant - 1, 1) * data.shape[1])


def time_bins(
    n_times: int, interval_s: float, solint_s: float | None, snr_per_integration: float = np.inf
) -> np.ndarray:
    """The time bin of each of ``n_times`` consecutive integrations.

    As many equal bins as fit ``solint_s`` (at least one; None: one bin, the whole chunk), each long
    enough for a solution SNR of ``MIN_SOLUTION_SNR`` at ``snr_per_integration``; the integrations
    split as evenly as they go.
    """
    if solint_s is None or n_times <= 1:
        return np.zeros(n_times, int)
    n_for_snr = (MIN_SOLUTION_SNR / snr_per_integration) ** 2 if snr_per_integration > 0 else np.inf
    n_bins = int(np.clip(min(round(n_times * interval_s / solint_s), n_times / max(n_for_snr, 1e-9)), 1, n_times))
    return np.concatenate([np.full(len(c), i) for i, c in enumerate(np.array_split(np.arange(n_times), n_bins))])


def spw_average(
    ms: str, dd: int, geo: dict, ra_deg: float, dec_deg: float, rfi: bool, solint_s: float | None = None
) -> dict | None:
    """One data description: read, phase to (ra, dec), flag, average in time bins (a worker process).

    Bins of about ``solint_s`` (None: the whole chunk). None when the data description has no cross-correlation rows.
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
    times, t_idx, baselines, b_idx, _ = grid_index(time_s, a1, a2)
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
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    n_ant = len(np.union1d(a1, a2))
    snr1 = solution_snr_per_integration(data, flags, t_idx, b_idx, len(times), len(baselines), n_ant)
    bin_of_time = time_bins(len(times), step, solint_s, snr1)
    n_bins = int(bin_of_time.max()) + 1
    group = bin_of_time[t_idx] * len(baselines) + b_idx  # (time bin, baseline) of each row
    vis, wsum = average_in_time(data, weight, flags, group, n_bins * len(baselines))
    present, first = np.unique(group, return_index=True)  # groups with a row, and their first row
    bin_mid = np.array([times[bin_of_time == b].mean() for b in range(n_bins)])
    bin_span = np.array([float(np.ptp(times[bin_of_time == b])) + step for b in range(n_bins)])
    uvw = np.empty((n_bins * len(baselines), 3))
    for b in range(n_bins):
        uc = _antenna_uvw(me, qa, rel, float(bin_mid[b]), ra_c, dec_c)
        uvw[b * len(baselines) : (b + 1) * len(baselines)] = uc[baselines[:, 0]] - uc[baselines[:, 1]]
    g_bin = present // len(baselines)
    return {
        "dd": dd,
        "rows": rows[first],  # one source row per (bin, baseline) with data: the template of its output row
        "vis": vis[present],
        "wsum": wsum[present],
        "uvw": uvw[present],
        "time": bin_mid[g_bin],
        "span": bin_span[g_bin],
        "samples": flags.size,
        "flagged_before": n_before,
        "flagged_rfi": n_rfi,
        "uvw_dev": uvw_dev,
        "n_bins": n_bins,
        "snr_per_integration": snr1,
    }


def average_at_calibrator(
    ms: str,
    avg: str,
    ra_deg: float,
    dec_deg: float,
    *,
    rfi: bool = True,
    workers: int = 2,
    solint_s: float | None = None,
) -> FlaggingStats:
    """Write ``avg``, the chunk phased to (ra, dec), flagged and averaged in time; return flagging figures.

    One row per cross baseline, SPW and time bin of about ``solint_s`` (None: one bin, the chunk); its
    FIELD is the calibrator.

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
            args = [(ms, dd, geo, ra_deg, dec_deg, rfi, solint_s) for dd in dds]
            found = list(pool.map(spw_average, *zip(*args, strict=True)))
    else:
        found = [spw_average(ms, dd, geo, ra_deg, dec_deg, rfi, solint_s) for dd in dds]
    results = {r["dd"]: r for r in found if r is not None}
    if not results:
        raise CalibrationError(f"{ms}: no cross-correlation rows")
    uvw_dev = max(r["uvw_dev"] for r in results.values())
    if uvw_dev > MAX_UVW_COLUMN_DEV_M:
        raise CalibrationError(
            f"{ms}: the UVW column differs from CASA's uvw for its phase centre by "
            f"{uvw_dev:.3f} m; not a Measurement Set this job can phase-shift"
        )
    bins = sorted({r["n_bins"] for r in results.values()})
    snr = float(np.median([r["snr_per_integration"] for r in results.values()]))
    print(f"{ms}: {bins} time bins per SPW for solutions of ~{solint_s} s; one integration's solution SNR ~{snr:.0f}")
    _write_averaged_ms(ms, avg, results, np.radians(ra_deg), np.radians(dec_deg))
    n = max(sum(r["samples"] for r in results.values()), 1)
    return FlaggingStats(
        flagged_fraction_input=sum(r["flagged_before"] for r in results.values()) / n,
        rfi_flagged_fraction=sum(r["flagged_rfi"] for r in results.values()) / n,
        uvw_column_vs_casa_m=uvw_dev,
    )


def _write_averaged_ms(ms: str, avg: str, results: dict, ra_c: float, dec_c: float) -> None:
    """A copy of one row per (time bin, baseline) and SPW of ``ms``, filled with the averages; FIELD: the calibrator."""
    import casatools

    from contimg.calibrate.calavg import sigma_from_weight
    from contimg.childjobs.mscolumns import ensure_weight_spectrum

    src_rows = np.concatenate([r["rows"] for r in results.values()])
    which = np.concatenate(
        [np.stack([np.full(len(r["rows"]), dd), np.arange(len(r["rows"]))], 1) for dd, r in results.items()]
    )
    order = np.argsort(src_rows, kind="stable")  # the copy keeps the source's row order
    src_rows, which = src_rows[order], which[order]
    tb = casatools.table()
    tb.open(ms)
    try:
        ref = tb.selectrows(src_rows.tolist())
        ref.copy(avg, deep=True, valuecopy=True, returnobject=False)
        ref.close()
    finally:
        tb.close()
    tb.open(avg, nomodify=False)
    try:
        nrow = tb.nrows()
        first = next(iter(results.values()))
        vis = np.zeros((nrow,) + first["vis"].shape[1:], np.complex64)
        wsum = np.zeros(vis.shape, np.float32)
        uvw, t_mid, span = np.zeros((nrow, 3)), np.zeros(nrow), np.zeros(nrow)
        for dd, r in results.items():
            out_rows = np.flatnonzero(which[:, 0] == dd)
            idx = which[out_rows, 1]
            vis[out_rows], wsum[out_rows], uvw[out_rows] = r["vis"][idx], r["wsum"][idx], r["uvw"][idx]
            t_mid[out_rows], span[out_rows] = r["time"][idx], r["span"][idx]
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
