"""Phase to the calibrator, flag and time-average a chunk into a small MS (child process only).

Per spectral window, in one read of DATA (the product MS is never modified): rotate the
visibilities to the calibrator's true position (a 54' offset from the phase centre once cost
upstream 73% of its bandpass solutions), flag autocorrelations, zeros, NaNs and RFI (robust
time-frequency outliers, ``contimg.calibrate.rfi``), and average in time bins (the calibrator is
now at the centre, so nothing decorrelates), into an MS of one row per baseline, SPW and bin whose
field is the calibrator. This process (casatools) plans and lays out the copy; spawned workers
(``avgworker``, python-casacore) read, average and write the rows. The numpy parts are
``contimg.calibrate.calavg``.
"""

from __future__ import annotations

import numpy as np

from contimg.calibrate.job.msread import ms_geometry
from contimg.calibrate.report import FlaggingStats
from contimg.calibrate.solutions import CalibrationError

__all__ = ["MAX_UVW_COLUMN_DEV_M", "average_at_calibrator", "layout_copy"]

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

    The SPWs are independent: ``workers`` spawned processes (the machine's cores) take them in turn
    (``avgworker.spw_average``, python-casacore) while this process lays out the copy; one of them then
    writes its rows.

    Raises
    ------
    CalibrationError
        If ``ms`` has no cross-correlation rows, or its UVW column disagrees with CASA's uvw for
        its phase centre by more than ``MAX_UVW_COLUMN_DEV_M``.
    """
    from contimg.calibrate.job.avgworker import spw_average, start_pool, write_rows
    from contimg.childjobs.pool import pool_with_scratch

    pool = start_pool(workers)
    with pool_with_scratch(pool, avg, ".avg-parts-") as scratch:
        geo = ms_geometry(ms)
        pending = [
            pool.submit(
                spw_average,
                ms,
                dd,
                _one_block(geo, dd),
                ra_deg,
                dec_deg,
                rfi,
                solint_s,
                CALIBRATOR_FRAME,
                f"{scratch}/dd{dd}",
            )
            for dd in geo["blocks"]
        ]
        layout_copy(ms, avg)  # while the workers average
        results = {r["dd"]: r for r in (f.result() for f in pending) if r is not None}
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
        print(
            f"{ms}: {bins} time bins per SPW for solutions of ~{solint_s} s; one integration's solution SNR ~{snr:.0f}"
        )
        columns, stashed, order = _output_rows(results)
        write_cpu = pool.submit(write_rows, avg, columns, stashed, order).result()
        cpu = {k: sum(r["cpu_s"][k] for r in results.values()) for k in next(iter(results.values()))["cpu_s"]}
        steps = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        print(f"averaging workers' CPU s: {steps}, write {write_cpu:.1f}")
    _set_calibrator_field(avg, np.radians(ra_deg), np.radians(dec_deg))
    n = max(sum(r["samples"] for r in results.values()), 1)
    return FlaggingStats(
        flagged_fraction_input=sum(r["flagged_before"] for r in results.values()) / n,
        rfi_flagged_fraction=sum(r["flagged_rfi"] for r in results.values()) / n,
        uvw_column_vs_casa_m=uvw_dev,
    )


def _one_block(geo: dict, dd: int) -> dict:
    """``geo`` with only data description ``dd``'s rows: a task is sent its own (all 16: 14 MB a task)."""
    return {**geo, "blocks": {dd: geo["blocks"][dd]}}


def layout_copy(ms: str, avg: str) -> None:
    """``avg``: ``ms`` without rows (its subtables whole) and with a WEIGHT_SPECTRUM column."""
    import shutil

    import casatools

    from contimg.childjobs.mscolumns import ensure_weight_spectrum

    tb = casatools.table()
    tb.open(ms)
    try:
        tb.copy(avg, deep=True, valuecopy=True, norows=True, returnobject=False)
        subtables = [k for k, v in tb.getkeywords().items() if isinstance(v, str) and v.startswith("Table: ")]
    finally:
        tb.close()
    for name in subtables:  # norows empties the subtables too: bring them over whole
        shutil.rmtree(f"{avg}/{name}")
        tb.open(f"{ms}/{name}")
        try:
            tb.copy(f"{avg}/{name}", deep=True, valuecopy=True, returnobject=False)
        finally:
            tb.close()
    tb.open(avg, nomodify=False)
    try:
        ensure_weight_spectrum(tb)  # weights vary over channels after flagging and averaging
    finally:
        tb.close()


def _output_rows(results: dict) -> tuple[dict, list, np.ndarray | None]:
    """The averaged rows' columns in the source's row order, their stashed parts, and the order to take them in.

    The copy keeps the source's row order. In contimg's layout each SPW's rows are one block, so the
    parts follow each other (the order is None); otherwise the writer permutes their concatenation.
    """
    parts = sorted(results.values(), key=lambda r: int(r["rows"][0]) if len(r["rows"]) else 0)
    src_rows = np.concatenate([r["rows"] for r in parts])
    order = np.argsort(src_rows, kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        order = None
    columns = {c: np.concatenate([r["columns"][c] for r in parts]) for c in parts[0]["columns"]}
    columns["UVW"] = np.concatenate([r["uvw"] for r in parts])
    for col, key in (("TIME", "time"), ("TIME_CENTROID", "time"), ("INTERVAL", "span"), ("EXPOSURE", "span")):
        columns[col] = np.concatenate([r[key] for r in parts])
    if order is not None:
        columns = {c: v[order] for c, v in columns.items()}
    return columns, [r["stashed"] for r in parts], order


def _set_calibrator_field(avg: str, ra_c: float, dec_c: float) -> None:
    """FIELD of ``avg``: the calibrator's direction, in its frame."""
    import casatools

    tb = casatools.table()
    tb.open(avg + "/FIELD", nomodify=False)
    try:
        direction = np.array([[[ra_c]], [[dec_c]]])
        for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            tb.putcell(col, 0, direction[:, :, 0])
            keywords = tb.getcolkeywords(col)
            keywords.setdefault("MEASINFO", {"type": "direction"})["Ref"] = CALIBRATOR_FRAME  # the calibrator's frame
            tb.putcolkeywords(col, keywords)
    finally:
        tb.close()
