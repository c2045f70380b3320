"""The solve's CASA steps on a one-row-per-baseline MS, its gain solves in numpy (casatools; child process only).

``avg.ms`` (``average``) holds the calibrator chunk in bins of ~60 s with MODEL_DATA (``model``).
CASA's ``gaincal`` and ``bandpass`` read and average every row and channel of the MS they are given:
at full size (96 antennas, 16 x 48 channels, 5 bins) each call on ``avg.ms`` cost tens of seconds,
four of them most of the solve (issue #21). Here the data are read once and reduced in numpy:

- K (numpy, ``contimg.calibrate.delaysolve``; CASA's K on the one-row MS cost ~9 s at full size): on
  the model-divided data summed over the whole chunk, one value per baseline, SPW and channel. A
  delay is steady over a chunk; gains drifting in phase only lower the sum's amplitude.
- the phase-only gain per bin that steadies the bandpass (numpy, ``contimg.calibrate.gainsolve``): on
  the K-corrected data summed over each SPW's channels, one value per baseline, bin and SPW.
- B per channel (numpy): on the K-corrected whole-chunk sum with those phases taken out of each bin
  first (CASA's per-channel bandpass solver on the one-row MS still cost ~40 s at full size).
- G per bin, amplitude and phase (numpy): on the K- and B-corrected channel sums.

K, B and G are written as CASA tables whose templates are CASA's own ``gaincal`` (K), ``bandpass`` and
``gaincal`` of one SPW on the one-row MS, so every column, keyword and subtable is CASA's.

Model division is exact for a least-squares solve: ``sum w |V - g X|^2 = sum w |X|^2 |V / X - g|^2``,
so the sums carry ``w conj(X) V`` and ``w |X|^2`` (``gainsolve.baseline_sums``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Reduced", "read_reduced", "write_one_row_ms", "write_gain_table"]


@dataclass
class Reduced:
    """``avg.ms`` as sums for the solves.

    Attributes: per row ``a1``, ``a2``, ``dd``, ``spw``, ``time``, ``interval``, ``bl`` (index into
    ``baselines``) and ``group`` (index into ``groups``, the (dd, time) bins); ``num`` (row, chan,
    pol) ``w conj(M) V`` and ``den`` ``w |M|^2``; ``freqs`` (Hz per SPW) and ``n_ant``.
    """

    a1: np.ndarray
    a2: np.ndarray
    dd: np.ndarray
    spw: np.ndarray
    time: np.ndarray
    interval: np.ndarray
    bl: np.ndarray
    baselines: np.ndarray  # (n_bl, 2)
    group: np.ndarray
    groups: np.ndarray  # (n_group, 2): dd, time
    num: np.ndarray
    den: np.ndarray
    freqs: list
    n_ant: int


def read_reduced(avg: str) -> Reduced:
    """Read DATA, MODEL_DATA, FLAG and WEIGHT_SPECTRUM of ``avg`` once, as the solves' sums.

    The columns are read and the sums made by a spawned python-casacore process
    (``avgworker.reduced_sums``); this process holds casatools.
    """
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from contimg.calibrate.job.avgworker import reduced_sums
    from contimg.image.job.msread import read_windows  # the subtables' layout, as the image job reads it

    freqs, _, spw_of_dd, n_ant = read_windows(avg)
    with tempfile.TemporaryDirectory(prefix=".reduce-", dir=Path(avg).absolute().parent) as scratch:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            got = pool.submit(reduced_sums, avg, f"{scratch}/sums").result()
        num, den = np.load(got["num"]), np.load(got["den"])
    a1, a2, dd = got["ANTENNA1"], got["ANTENNA2"], got["DATA_DESC_ID"]
    time, interval = got["TIME"], got["INTERVAL"]
    baselines, bl = np.unique(np.stack([a1, a2], 1), axis=0, return_inverse=True)
    groups, group = np.unique(np.stack([dd, time], 1), axis=0, return_inverse=True)
    return Reduced(
        a1=a1,
        a2=a2,
        dd=dd,
        spw=spw_of_dd[dd],
        time=time,
        interval=interval,
        bl=bl.ravel(),
        baselines=baselines,
        group=group.ravel(),
        groups=groups,
        num=num,
        den=den,
        freqs=freqs,
        n_ant=n_ant,
    )


def corrected_channel_sums(red: Reduced, gains: list, bad: list, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``num`` and ``den`` with per-antenna gains ``gains[spw]`` (n_ant, nchan, 2) divided out, channel sums.

    V / (x_i conj x_j) for data, w |x_i x_j|^2 for weights: num conj(x_i) x_j and den |x_i|^2 |x_j|^2.
    Samples of antennas ``bad`` there carry no weight (CASA's applymode 'calflag'). Returns (row, pol)
    complex and float sums; computed in blocks of rows, so no corrected copy of the data is held.
    """
    out_n = np.zeros((len(red.a1), red.num.shape[2]), np.complex128)
    out_d = np.zeros((len(red.a1), red.num.shape[2]), np.float64)
    for k in np.unique(red.spw):
        idx = np.flatnonzero(red.spw == k)
        for s in range(0, len(idx), block):
            rows = idx[s : s + block]
            xi, xj = gains[k][red.a1[rows]], gains[k][red.a2[rows]]
            ok = ~(bad[k][red.a1[rows]] | bad[k][red.a2[rows]])
            out_n[rows] = np.where(ok, red.num[rows] * np.conj(xi) * xj, 0).sum(axis=1)
            out_d[rows] = np.where(ok, red.den[rows] * np.abs(xi) ** 2 * np.abs(xj) ** 2, 0).sum(axis=1)
    return out_n, out_d


def per_group(red: Reduced, values: np.ndarray, fill=0) -> np.ndarray:
    """Rows' ``values`` (row, ...) on a (group, baseline, ...) grid; ``fill`` where a baseline has no row."""
    out = np.full((len(red.groups), len(red.baselines)) + values.shape[1:], fill, values.dtype)
    out[red.group, red.bl] = values
    return out


def chunk_sums(
    red: Reduced, num: np.ndarray, den: np.ndarray, factor: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``num`` (times ``factor`` (row, pol), if given) and ``den`` summed over the chunk's bins per (dd, baseline).

    Where ``factor`` is 0 (a flagged solution) the sample leaves both sums. Returns (the first row of
    ``avg.ms`` of each (dd, baseline), num sums, den sums), the sums
    (n_dd, n_bl, ...) like ``num``'s trailing axes; a (dd, baseline) without rows stays 0.
    """
    n_dd = int(red.dd.max()) + 1
    acc_n = np.zeros((n_dd, len(red.baselines)) + num.shape[1:], np.complex128)
    acc_d = np.zeros((n_dd, len(red.baselines)) + den.shape[1:], np.float64)
    for g in range(len(red.groups)):  # a baseline appears once per (dd, bin): plain fancy-index sums
        rows = np.flatnonzero(red.group == g)
        d = red.dd[rows[0]]
        if factor is None:
            acc_n[d, red.bl[rows]] += num[rows]
            acc_d[d, red.bl[rows]] += den[rows]
        else:
            acc_n[d, red.bl[rows]] += num[rows] * factor[rows][:, None, :]
            acc_d[d, red.bl[rows]] += den[rows] * (factor[rows] != 0)[:, None, :]
    key = red.dd * len(red.baselines) + red.bl
    _, first = np.unique(key, return_index=True)
    return first, acc_n, acc_d


def write_one_row_ms(avg: str, out: str, red: Reduced, first_rows: np.ndarray, acc_n, acc_d) -> None:
    """``out``: rows ``first_rows`` of ``avg`` holding the model-divided sums (MODEL_DATA 1), one per (dd, baseline).

    TIME is the chunk's middle and INTERVAL its span. ``out`` may already exist with these rows (a
    second fill: only the data, weights and flags are rewritten).
    """
    import os

    import casatools

    from contimg.calibrate.calavg import sigma_from_weight

    tb = casatools.table()
    rows = np.sort(first_rows)
    first_fill = not os.path.exists(out)
    if first_fill:  # avg's layout, and the row columns of ``rows`` (a deep copy of them cost 1.4 s)
        from contimg.calibrate.job.average import layout_copy
        from contimg.calibrate.job.avgworker import OUTPUT_ROW_COLUMNS

        layout_copy(avg, out)
        tb.open(avg)
        try:
            names = set(tb.colnames())
            row_columns = {c: tb.getcol(c)[..., rows] for c in (*OUTPUT_ROW_COLUMNS, "UVW") if c in names}
        finally:
            tb.close()
        tb.open(out, nomodify=False)
        try:
            tb.addrows(len(rows))
            for col, value in row_columns.items():
                tb.putcol(col, value)
        finally:
            tb.close()
    d, b = red.dd[rows], red.bl[rows]
    n, w = acc_n[d, b], acc_d[d, b]
    vis = np.zeros(n.shape, np.complex64)
    np.divide(n, w, out=vis, where=w > 0)  # in complex128, stored as complex64
    w = w.astype(np.float32)
    t0 = float(np.min(red.time - red.interval / 2))
    t1 = float(np.max(red.time + red.interval / 2))
    tb.open(out, nomodify=False)
    try:
        tb.putcol("DATA", np.transpose(vis, (2, 1, 0)))
        if first_fill:  # the data are model-divided
            tb.putcol("MODEL_DATA", np.ones(vis.shape[::-1], np.complex64))
        tb.putcol("FLAG", np.transpose(w <= 0, (2, 1, 0)))
        tb.putcol("WEIGHT_SPECTRUM", np.transpose(w, (2, 1, 0)))
        wt = w.mean(axis=1)
        tb.putcol("WEIGHT", wt.T)
        tb.putcol("SIGMA", sigma_from_weight(wt).T)
        tb.putcol("FLAG_ROW", np.all(w <= 0, axis=(1, 2)))
        for col in ("TIME", "TIME_CENTROID"):
            tb.putcol(col, np.full(len(rows), (t0 + t1) / 2))
        for col in ("INTERVAL", "EXPOSURE"):
            tb.putcol(col, np.full(len(rows), t1 - t0))
    finally:
        tb.close()


def write_gain_table(template: str, out: str, times, intervals, spws, gains, flags, snr, refants, errors=None) -> None:
    """A CASA G, B (or K) table ``out`` like ``template`` (one of the same MS and type) holding the given solutions.

    Per solution row: ``times``, ``intervals``, ``spws`` (n,), ``gains`` (n, n_ant, npol) complex (a
    B table: (n, n_ant, nchan, npol); a K table: real delays in ns, its FPARAM),
    ``flags`` and ``snr`` like it, ``refants`` (n,); ``errors`` like it (PARAMERR; default |gains| / snr).
    Rows are written antenna-fastest within each
    (time, SPW), as CASA's gaincal does; columns the template has and this does not set
    (FIELD_ID, SCAN_NUMBER, OBSERVATION_ID) keep the template's first row's value.
    """
    import shutil

    import casatools

    shutil.copytree(template, out)
    gains, flags, snr = (np.asarray(x) for x in (gains, flags, snr))
    if gains.ndim == 3:  # G: one value per SPW
        gains, flags, snr = (x[:, :, None, :] for x in (gains, flags, snr))
    n_sol, n_ant, nchan, npol = gains.shape
    tb = casatools.table()
    tb.open(out, nomodify=False)
    try:
        fixed = {c: tb.getcell(c, 0) for c in ("FIELD_ID", "SCAN_NUMBER", "OBSERVATION_ID")}
        tb.removerows(list(range(tb.nrows())))
        tb.addrows(n_sol * n_ant)
        rep = np.repeat
        tb.putcol("TIME", rep(np.asarray(times, float), n_ant))
        tb.putcol("INTERVAL", rep(np.asarray(intervals, float), n_ant))
        tb.putcol("SPECTRAL_WINDOW_ID", rep(np.asarray(spws, np.int32), n_ant))
        tb.putcol("ANTENNA1", np.tile(np.arange(n_ant, dtype=np.int32), n_sol))
        tb.putcol("ANTENNA2", rep(np.asarray(refants, np.int32), n_ant))
        for c, v in fixed.items():
            tb.putcol(c, np.full(n_sol * n_ant, v, np.int32))
        flat = (n_sol * n_ant, nchan, npol)
        if "FPARAM" in tb.colnames():  # a K table
            tb.putcol("FPARAM", np.asarray(gains, np.float32).reshape(flat).T)
        else:
            tb.putcol("CPARAM", np.asarray(gains, np.complex64).reshape(flat).T)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.where(np.asarray(snr) > 0, np.abs(gains) / np.asarray(snr), 0)
        if errors is not None:
            err = np.asarray(errors, np.float64)
            err = err[:, :, None, :] if err.ndim == 3 else err
        tb.putcol("PARAMERR", np.asarray(err, np.float32).reshape(flat).T)
        tb.putcol("FLAG", np.asarray(flags, bool).reshape(flat).T)
        tb.putcol("SNR", np.asarray(snr, np.float32).reshape(flat).T)
        if "WEIGHT" in tb.colnames():
            tb.putcol("WEIGHT", np.ones((npol, nchan, n_sol * n_ant), np.float32))
    finally:
        tb.close()
