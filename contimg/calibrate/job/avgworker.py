"""The averaging step's worker processes: one spectral window phased, flagged and averaged; the rows written.

The workers are spawned and use python-casacore only (tables and measures), never casatools; the
job's process holds casatools (as the image job's workers, ``contimg.image.job.workers``). casacore
hands DATA back as the stored complex64 in (row, chan, pol) order, read into an array of ours:
casatools' getcol converts to complex128 in (pol, chan, row) order, which then had to be transposed
and converted back (1.1 s of a window's 4 s at full size). The numpy parts are
``contimg.calibrate.calavg`` and ``contimg.calibrate.rfi``.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["spw_average", "start_pool", "write_rows", "read_cross_rows", "OUTPUT_ROW_COLUMNS"]

# The columns the averaged rows take from their template row (the first source row of their time
# bin and baseline); the others are the averages, computed, or left empty (FLAG_CATEGORY).
OUTPUT_ROW_COLUMNS = (
    "ANTENNA1",
    "ANTENNA2",
    "ARRAY_ID",
    "DATA_DESC_ID",
    "FEED1",
    "FEED2",
    "FIELD_ID",
    "OBSERVATION_ID",
    "PROCESSOR_ID",
    "SCAN_NUMBER",
    "STATE_ID",
)


def start_pool(workers: int):
    """A pool of ``workers`` spawned processes, started now and importing what their tasks need.

    Always spawned, even one: this process holds casatools, the workers casacore.
    """
    from contimg.childjobs.pool import spawned_pool

    return spawned_pool(workers, _imports)


def _imports() -> None:
    """Worker start-up: the tasks' modules (~0.4 s) while the job reads the geometry; freed memory kept."""
    import casacore.measures
    import casacore.tables  # noqa: F401

    import contimg.calibrate.calavg
    import contimg.calibrate.rfi  # noqa: F401

    _reuse_freed_memory()


def _reuse_freed_memory() -> None:
    """Make glibc's malloc keep freed memory for the next allocation instead of giving it back.

    glibc serves every array above 32 MB by its own mmap and unmaps it when freed, so each of the
    ~20 temporaries of 40-90 MB a window allocates faults in fresh zeroed pages; with mmap off
    (M_MMAP_MAX 0) and no trimming below 2 GB (M_TRIM_THRESHOLD) a worker reuses its heap: 17 % less
    CPU over the 16 full-size windows (21-22 -> 17-18 s, load 5-6). The workers exit after the step,
    which returns the memory. Nothing is done where the C library is not glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX
        libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def read_cross_rows(ms: str, block: np.ndarray, has_wspec: bool) -> dict:
    """The cross-correlation rows among ``block`` (row numbers of one data description), row-major.

    Returns ``rows`` (MS row numbers), ``a1``, ``a2``, ``data`` (nrow, nchan, npol) complex64,
    ``flags`` (bool) and ``weight`` (float32) of the same shape (WEIGHT broadcast over channels when
    the MS has no WEIGHT_SPECTRUM), ``time_s`` (MJD seconds), ``uvw`` (nrow, 3) m and ``columns``
    (``OUTPUT_ROW_COLUMNS`` present in the MS, per cross row).
    """
    from casacore.tables import table

    with table(ms, ack=False) as tb:
        contiguous = bool(block[-1] - block[0] + 1 == block.size)  # contimg's layout: one block per SPW
        src = tb if contiguous else tb.selectrows(block.tolist())
        start, n = (int(block[0]), int(block.size)) if contiguous else (0, int(block.size))
        try:
            a1, a2 = src.getcol("ANTENNA1", start, n), src.getcol("ANTENNA2", start, n)
            cross = a1 != a2
            if src.getcoldesc("DATA")["valueType"] == "complex":  # into an array of ours, as stored
                data = np.empty((n, *src.getcell("DATA", start).shape), np.complex64)
                src.getcolnp("DATA", data, start, n)
            else:
                data = src.getcol("DATA", start, n).astype(np.complex64)
            flags = src.getcol("FLAG", start, n)
            if has_wspec:
                weight = src.getcol("WEIGHT_SPECTRUM", start, n).astype(np.float32, copy=False)[cross]
            else:
                weight = np.broadcast_to(
                    src.getcol("WEIGHT", start, n).astype(np.float32, copy=False)[cross][:, None, :],
                    (int(np.count_nonzero(cross)), *data.shape[1:]),
                )
            names = set(src.colnames())
            columns = {c: src.getcol(c, start, n)[cross] for c in OUTPUT_ROW_COLUMNS if c in names}
            time_s, uvw = src.getcol("TIME", start, n)[cross], src.getcol("UVW", start, n)[cross]
        finally:
            if not contiguous:
                src.close()
    return {
        "rows": block[cross],
        "a1": a1[cross],
        "a2": a2[cross],
        "data": data[cross] if not cross.all() else data,
        "flags": flags[cross] if not cross.all() else flags,
        "weight": weight,
        "time_s": time_s,
        "uvw": uvw,
        "columns": columns,
    }


class _Uvw:
    """Per-antenna uvw (nant, 3) m by casacore's measures, the code CASA's ``me.touvw`` runs.

    Agrees with the job process's casatools (``average._antenna_uvw``) to 1e-12 m on the same casadata.
    """

    def __init__(self, telescope: str, rel_xyz: np.ndarray):
        from casacore.measures import measures
        from casacore.quanta import quantity

        self._q = quantity
        self._dm = measures()
        self._dm.do_frame(self._dm.observatory(telescope))
        self._baseline = self._dm.baseline("itrf", *(quantity(rel_xyz[:, k], "m") for k in range(3)))
        self._n = len(rel_xyz)

    def __call__(self, time_s: float, ra_rad: float, dec_rad: float, frame: str) -> np.ndarray:
        q, dm = self._q, self._dm
        dm.do_frame(dm.epoch("utc", q(float(time_s), "s")))
        dm.do_frame(dm.direction(frame, q(float(ra_rad), "rad"), q(float(dec_rad), "rad")))
        uvw = dm.to_uvw(self._baseline)["xyz"]
        return np.asarray(uvw.get_value() if hasattr(uvw, "get_value") else uvw, dtype=float).reshape(self._n, 3)


def spw_average(
    ms: str,
    dd: int,
    geo: dict,
    ra_deg: float,
    dec_deg: float,
    rfi: bool,
    solint_s: float | None,
    calibrator_frame: str,
    stash_prefix: str,
) -> dict | None:
    """One data description: read, phase to (ra, dec), flag, average in time bins (a worker's task).

    Bins of about ``solint_s`` (None: the whole chunk). The averages (one row per time bin and
    baseline with data: ``vis`` and ``wsum``, (row, chan, pol)) are saved under ``stash_prefix`` as
    .npy files (134 MB through the page cache took 0.07 s where the pool's pipe took 0.6 s); the
    returned dict holds their paths, the rows' other columns and the flagging figures. None when the
    data description has no cross-correlation rows.

    Raises
    ------
    CalibrationError
        If two rows of the data description hold the same time and baseline.
    """
    from contimg.calibrate.calavg import (
        average_bins,
        cell_rows,
        grid_index,
        on_grid,
        rotate_to,
        solution_snr_per_integration,
        time_bins,
    )
    from contimg.calibrate.rfi import flag_outliers
    from contimg.calibrate.solutions import CalibrationError

    clock = {"start": time.process_time()}

    def lap(name):
        now = time.process_time()
        clock[name] = now - clock.pop("start")
        clock["start"] = now

    block = geo["blocks"][dd]
    if block.size == 0:
        return None
    cross = read_cross_rows(ms, block, geo["has_wspec"])
    rows, a1, a2 = cross["rows"], cross["a1"], cross["a2"]
    if rows.size == 0:
        return None
    lap("read")
    pos = geo["POSITION"].T
    uvw_of = _Uvw(geo["telescope"], pos - pos.mean(axis=0))  # baselines only need differences: small numbers
    ra0, dec0 = geo["PHASE_DIR"][:, 0, 0]
    ra_c, dec_c = np.radians(ra_deg), np.radians(dec_deg)
    times, t_idx, baselines, b_idx, _ = grid_index(cross["time_s"], a1, a2)
    try:
        cells = cell_rows(t_idx, b_idx, len(times), len(baselines))
    except ValueError as err:
        raise CalibrationError(f"{ms}: data description {dd}: {err}") from None
    have = cells >= 0
    # (time, antenna) w for the MS's own centre (in its frame, ICRS) and the calibrator's
    w0_ant = np.array([uvw_of(t, ra0, dec0, geo["PHASE_DIR_REF"])[:, 2] for t in times])
    wc_ant = np.array([uvw_of(t, ra_c, dec_c, calibrator_frame)[:, 2] for t in times])
    i1, i2 = baselines[:, 0], baselines[:, 1]
    w0 = w0_ant[:, i1] - w0_ant[:, i2]  # (time, baseline), CASA's sense: antenna1 - antenna2
    dw = (wc_ant[:, i1] - wc_ant[:, i2]) - w0
    uvw_dev = float(np.max(np.abs(w0[have] - on_grid(cross["uvw"][:, 2], cells, 0.0)[have])))
    lap("uvw")
    data = on_grid(cross["data"], cells, 0)  # the rows themselves in the usual layout: rotated in place
    freqs = geo["freqs"][geo["SPECTRAL_WINDOW_ID"][dd]]
    grid_shape = data.shape
    rotate_to(data.reshape((-1,) + grid_shape[2:]), dw.ravel(), freqs)
    weight = on_grid(cross["weight"], cells, 0)
    flags = on_grid(cross["flags"], cells, True) | (data == 0) | ~np.isfinite(data) | (weight <= 0)
    flags[~have] = True  # a cell without a row is missing, not data
    lap("rotate")
    n_before, n_rfi = int(np.count_nonzero(flags[have])), 0
    if rfi:
        new = flag_outliers(np.abs(data), flags)
        n_rfi = int(np.count_nonzero(new & ~flags))  # a missing cell is flagged before and after
        flags = new
    lap("rfi")
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    n_ant = len(np.union1d(a1, a2))
    snr1 = solution_snr_per_integration(data, flags, n_ant)
    bin_of_time = time_bins(len(times), step, solint_s, snr1)
    n_bins = int(bin_of_time.max()) + 1
    lap("snr")
    vis, wsum = average_bins(data, weight, flags, bin_of_time, n_bins)
    # a (bin, baseline) with a row becomes an output row; its template: the bin's first row of the baseline
    big = np.iinfo(np.int64).max
    first = np.stack([np.min(np.where(have, cells, big)[bin_of_time == b], axis=0) for b in range(n_bins)])
    present = first < big  # (bin, baseline)
    g_bin, g_bl = np.nonzero(present)
    first = first[present]
    lap("average")
    bin_mid = np.array([times[bin_of_time == b].mean() for b in range(n_bins)])
    bin_span = np.array([float(np.ptp(times[bin_of_time == b])) + step for b in range(n_bins)])
    uvw = np.empty((n_bins, len(baselines), 3))
    for b in range(n_bins):
        uc = uvw_of(float(bin_mid[b]), ra_c, dec_c, calibrator_frame)
        uvw[b] = uc[i1] - uc[i2]
    np.save(f"{stash_prefix}.vis.npy", vis[g_bin, g_bl])
    np.save(f"{stash_prefix}.wsum.npy", wsum[g_bin, g_bl])
    lap("stash")
    clock.pop("start")
    return {
        "dd": dd,
        "rows": rows[first],  # one source row per (bin, baseline) with data: the template of its output row
        "columns": {c: v[first] for c, v in cross["columns"].items()},
        "stashed": (f"{stash_prefix}.vis.npy", f"{stash_prefix}.wsum.npy"),
        "uvw": uvw[g_bin, g_bl],
        "time": bin_mid[g_bin],
        "span": bin_span[g_bin],
        "samples": int(np.count_nonzero(have)) * int(np.prod(grid_shape[2:])),
        "flagged_before": n_before,
        "flagged_rfi": n_rfi,
        "uvw_dev": uvw_dev,
        "n_bins": n_bins,
        "snr_per_integration": snr1,
        "cpu_s": clock,
    }


def write_rows(out: str, columns: dict, stashed: list[tuple[str, str]], order: np.ndarray | None = None) -> float:
    """Append the averaged rows to ``out``, an empty copy of the MS's layout with WEIGHT_SPECTRUM (a worker's task).

    ``columns``: every row column but the data's, (row, ...) in output order; ``stashed``: per part,
    the .npy files of its ``vis`` and ``wsum`` (row, chan, pol), parts one after the other in output
    order, or, given ``order``, concatenated and then taken in ``order``. FLAG is where no weight is
    left, WEIGHT the mean of WEIGHT_SPECTRUM over channels, SIGMA 1/sqrt of it. python-casacore's
    putcol of the stored types (casatools' converted complex64 to complex128 and back: 6.6 s of the
    full-size copy's 10). Returns the task's CPU seconds.
    """
    from casacore.tables import table

    from contimg.calibrate.calavg import sigma_from_weight

    cpu = time.process_time()
    nrow = len(next(iter(columns.values())))
    parts = [(np.load(v, mmap_mode="r"), np.load(w, mmap_mode="r")) for v, w in stashed]
    if order is not None:  # rows of the parts interleave in the source: one permuted part
        parts = [tuple(np.concatenate([p[k] for p in parts])[order] for k in range(2))]
    with table(out, readonly=False, ack=False) as ot:
        ot.addrows(nrow)
        for col, value in columns.items():
            ot.putcol(col, value, 0, nrow)
        start = 0
        for vis, wsum in parts:
            vis, wsum = np.ascontiguousarray(vis), np.ascontiguousarray(wsum)
            n = len(vis)
            flags = wsum <= 0
            row_w = wsum.mean(axis=1)  # (row, pol)
            ot.putcol("DATA", vis, start, n)
            ot.putcol("FLAG", flags, start, n)
            ot.putcol("WEIGHT_SPECTRUM", wsum, start, n)
            ot.putcol("WEIGHT", row_w, start, n)
            ot.putcol("SIGMA", sigma_from_weight(row_w).astype(np.float32), start, n)
            ot.putcol("FLAG_ROW", flags.all(axis=(1, 2)), start, n)
            start += n
    return time.process_time() - cpu


def reduced_sums(avg: str, stash_prefix: str) -> dict:
    """The averaged MS's rows as the reduced solve's sums, ``w conj(M) V`` and ``w |M|^2`` (a worker's task).

    Reads DATA, MODEL_DATA, FLAG and WEIGHT_SPECTRUM of ``avg`` once (python-casacore: the stored
    types in (row, chan, pol) order; casatools' complex128 copies of the two data columns took 7 of the
    reduce step's 10 CPU s at full size) and computes the sums in the precision
    ``reduced.read_reduced`` always did (products in float64, kept in complex64 and float32). Non-finite
    sums are zeroed. ``num`` and ``den`` are saved as .npy under ``stash_prefix``; returns their paths
    and the row columns ``ANTENNA1``, ``ANTENNA2``, ``DATA_DESC_ID``, ``TIME``, ``INTERVAL``.
    """
    from casacore.tables import table

    with table(avg, ack=False) as tb:
        n = tb.nrows()
        shape = (n, *tb.getcell("DATA", 0).shape)
        out = {c: tb.getcol(c) for c in ("ANTENNA1", "ANTENNA2", "DATA_DESC_ID", "TIME", "INTERVAL")}
        w = tb.getcol("WEIGHT_SPECTRUM").astype(np.float64)
        w[tb.getcol("FLAG")] = 0
        model = np.empty(shape, np.complex64)
        tb.getcolnp("MODEL_DATA", model)
        den = (w * (model.real**2 + model.imag**2)).astype(np.float32)
        num = np.conj(model, out=model)
        data = np.empty(shape, np.complex64)
        tb.getcolnp("DATA", data)
    np.multiply(num, data, out=num, dtype=np.complex128)  # in float64 and back, as with casatools' complex128
    del data
    np.multiply(num, w, out=num, dtype=np.complex128)
    del w
    bad = ~np.isfinite(num) | ~np.isfinite(den)
    num[bad], den[bad] = 0, 0
    out["num"], out["den"] = f"{stash_prefix}.num.npy", f"{stash_prefix}.den.npy"
    np.save(out["num"], num)
    np.save(out["den"], den)
    return out
