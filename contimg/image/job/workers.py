"""The image job's worker processes: the pool, their two tasks, the arrays they hand over, their CPU.

The workers are spawned and import this module first, so it imports numpy only: each task imports
what it needs (python-casacore, contimg.image.applycal, ...), and ``_import_worker_modules`` does that
at start-up while the job's process reads the layout. The job's process holds casatools and never
imports casacore; the workers never import casatools.
"""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = [
    "averaging_pool",
    "submit_averaging",
    "write_rows",
    "in_worker",
    "workers_cpu_seconds",
    "stash",
    "unstash",
    "cpu_seconds",
    "thread_cpu",
]


def averaging_pool(workers: int):
    """A pool of ``workers`` spawned processes, started at once and importing what their tasks need.

    Always spawned, even one: this process holds casatools, the workers casacore.
    """
    from contimg.childjobs.pool import spawned_pool

    return spawned_pool(workers, _import_worker_modules)


def _import_worker_modules() -> None:
    """Worker start-up: import the modules of the averaging and writing tasks.

    They take ~0.6 s (scipy.sparse for the time-averaging plans the most), imported while the job's
    process reads the layout.
    """
    import casacore.tables  # noqa: F401

    import contimg.calibrate.calavg
    import contimg.calibrate.rfi
    import contimg.image.applycal
    import contimg.image.bda  # noqa: F401


def submit_averaging(
    pool,
    ms_path: str,
    blocks: dict,
    order: list,
    a1: np.ndarray,
    a2: np.ndarray,
    has_wspec: bool,
    chan_bin: int,
    gains,
    gain_flags,
    spw_of_dd,
    plans: dict,
    scratch: str,
    outside=None,
    freqs: list | None = None,
) -> list:
    """Submit ``_calibrated_average`` of every window to ``pool``; return the futures in ``order``.

    The tasks run through ``in_worker`` and stash into the folder ``scratch``. ``outside``
    (contimg.image.subtract.OutsideSources) is subtracted from every window, whose channel frequencies
    ``freqs`` (per spectral window, as read_windows gives them) it then needs.
    """
    return [
        pool.submit(
            in_worker,
            _calibrated_average,
            ms_path,
            int(blocks[k][0]),
            int(blocks[k].size),
            a1[blocks[k]],
            a2[blocks[k]],
            has_wspec,
            chan_bin,
            None if gains is None else gains[spw_of_dd[k]],
            None if gains is None else gain_flags[spw_of_dd[k]],
            plans[k],
            f"{scratch}/window{k}",
            None if outside is None else (outside, freqs[spw_of_dd[k]]),
        )
        for k in order
    ]


def _calibrated_average(
    ms_path: str,
    start: int,
    n: int,
    a1: np.ndarray,
    a2: np.ndarray,
    has_wspec: bool,
    chan_bin: int,
    gain,
    gain_flag,
    plan,
    stash_prefix: str,
    outside=None,
) -> tuple[list[str], int, int]:
    """Rows [start, start + n) of one spectral window read, calibrated, averaged and stashed.

    They are flagged for RFI (``contimg.calibrate.rfi.flag_rows``), calibrated (gains (ant, chan, pol)),
    averaged over ``chan_bin`` channels with weights, then
    in time by ``plan`` (a contimg.image.bda.TimeAveraging): (data, weight, flag), each (row, chan /
    chan_bin, pol) as the table stores them, stashed under ``stash_prefix``. Returns their paths and the
    numbers of flagged and all samples after calibration (before the time averaging). With ``outside``
    ((contimg.image.subtract.OutsideSources, the window's channel frequencies)), those sources, times the
    gains, are subtracted first, at full resolution (``_subtract_outside``).

    Opens the table itself with python-casacore, which hands back the stored complex64 (casatools
    converts to complex128: 2.5x slower per window).
    """
    from casacore.tables import table

    from contimg.calibrate.rfi import baselines_per_time, flag_rows
    from contimg.image.applycal import baseline_gains, calibrate_and_bin

    with table(ms_path, ack=False) as tb:  # (row, chan, pol), as stored
        if tb.getcoldesc("DATA")["valueType"] == "complex":  # into an array of ours: 2.6x faster than getcol
            data = _read_buffer("DATA", (n, *tb.getcell("DATA", start).shape), np.complex64)
            tb.getcolnp("DATA", data, start, n)
        else:
            data = tb.getcol("DATA", start, n).astype(np.complex64)
        flag = _read_buffer("FLAG", data.shape, bool)
        tb.getcolnp("FLAG", flag, start, n)
        weight = tb.getcol("WEIGHT_SPECTRUM", start, n).astype(np.float32) if has_wspec else None
        row_weight = None if has_wspec else tb.getcol("WEIGHT", start, n)  # (row, pol)
        geometry = (tb.getcol("TIME", start, n), tb.getcol("UVW", start, n)) if outside is not None else None
    gg, nbl = baseline_gains(gain, gain_flag, a1, a2) if gain is not None else (None, None)
    if outside is not None:
        _subtract_outside(data, outside, *geometry, a1, a2, gg, nbl)
    # the chunk's RFI, flagged as the calibrate job flags the calibrator's (amplitudes: the gains do not move it)
    flag = flag_rows(data, flag, baselines_per_time(a1, a2))
    avg, wsum, flags = calibrate_and_bin(
        data, flag, chan_bin, row_weight=row_weight, weight=weight, gg=gg, n_baselines=nbl
    )
    return stash(stash_prefix, *plan.average(avg, wsum)), int(np.count_nonzero(flags)), flags.size


def _subtract_outside(data: np.ndarray, outside, time_s, uvw, a1, a2, gg, nbl) -> None:
    """Subtract the model of ``outside`` (sources, channel frequencies) from the raw ``data`` (row, chan, pol) in place.

    The model is corrupted by the gain products ``gg`` (baseline_gains'; None: no calibration) as the
    data are, so the calibration and the channel and time averaging after it treat the residual exactly
    as they would the data: a source's smearing in the averaged copy is then no approximation.
    """
    from threadpoolctl import threadpool_limits

    from contimg.image.subtract import model_visibilities

    sources, freqs = outside
    with threadpool_limits(limits=1, user_api="blas"):  # the pool's workers already use every core
        model = model_visibilities(sources, time_s, uvw, a1, a2, freqs)
    nr, nchan, npol = data.shape
    if gg is None:
        data -= model[:, :, None]
    else:
        data.reshape(nr // nbl, nbl, nchan, npol)[...] -= model.reshape(nr // nbl, nbl, nchan, 1) * gg


def write_rows(out: str, parts: list) -> None:
    """Append each part's rows to the copy ``out``.

    A worker's task, with python-casacore: casatools' putcol took 1.3 s, this 0.2 s. A part is (row
    columns as casatools' getcol laid them out (..., row), the stashed data, weights and flags (row,
    chan, pol)).
    """
    from casacore.tables import table

    from contimg.calibrate.calavg import sigma_from_weight

    with table(out, readonly=False, ack=False) as ot:
        for row_values, stashed in parts:
            data, wsum, flags = unstash(stashed)
            start, n = ot.nrows(), data.shape[0]
            ot.addrows(n)
            for col, value in row_values.items():
                ot.putcol(col, np.moveaxis(value, -1, 0), start, n)
            row_w = wsum.mean(axis=1)  # (row, pol)
            ot.putcol("DATA", data, start, n)
            ot.putcol("FLAG", flags, start, n)
            ot.putcol("WEIGHT_SPECTRUM", wsum, start, n)
            ot.putcol("WEIGHT", row_w.astype(np.float32), start, n)
            ot.putcol("SIGMA", sigma_from_weight(row_w).astype(np.float32), start, n)
            ot.putcol("FLAG_ROW", flags.all(axis=(1, 2)), start, n)


def stash(prefix: str, *arrays: np.ndarray) -> list[str]:
    """``arrays`` saved as .npy files for another process to ``unstash``.

    Through the page cache 134 MB moved in 0.07 s, where the pool's pipe (pickled) took 0.6 s.
    """
    paths = [f"{prefix}.{i}.npy" for i in range(len(arrays))]
    for path, a in zip(paths, arrays, strict=True):
        np.save(path, a)
    return paths


def unstash(paths: list[str]) -> list[np.ndarray]:
    """The stashed arrays, mapped from their files (copy-on-write: the files stay as they were)."""
    return [np.load(path, mmap_mode="c") for path in paths]


_BUFFERS: dict = {}


def _read_buffer(column: str, shape: tuple, dtype) -> np.ndarray:
    """The array a worker process reads ``column`` into, kept while the shape holds.

    Every subband has the same shape: fresh pages for each subband's 100 MB cost 0.4 s of the 4.1 s
    that two workers took over the 16 subbands of a full-size chunk.
    """
    buf = _BUFFERS.get(column)
    if buf is None or buf.shape != shape or buf.dtype != np.dtype(dtype):
        buf = _BUFFERS[column] = np.empty(shape, dtype)
    return buf


def in_worker(fn, *args):
    """``fn(*args)`` run in a pool worker: (its result, the worker's pid, the worker's CPU seconds so far).

    The workers exit after the job's step, so their CPU is reported rather than waited for.
    """
    return fn(*args), os.getpid(), time.process_time()


def workers_cpu_seconds(reports: list) -> float:
    """The CPU seconds of the workers that sent ``reports`` (``in_worker``'s), each counted once."""
    latest = {}
    for _, pid, cpu in reports:
        latest[pid] = max(cpu, latest.get(pid, 0.0))
    return sum(latest.values())


def cpu_seconds() -> float:
    """CPU time of this process, seconds.

    Its children's (WSClean, the averaging workers) are reported with their results. Steadier than
    the wall clock on a shared machine whose speed wanders.
    """
    t = os.times()
    return t.user + t.system


def thread_cpu(fn, *args):
    """(``fn(*args)``, the CPU seconds this thread spent on it)."""
    start = time.thread_time()
    return fn(*args), time.thread_time() - start
