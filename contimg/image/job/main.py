"""Child job: apply calibration and make the quick continuum image of one chunk (casatools only).

    python -m contimg.image.job CHUNK.ms --out PREFIX [--caltable T ...] [--calset NAME]
           [--window KEY] [--imager wsclean|tclean] [--config JSON] [--report R.json]

Writes PREFIX.fits (Stokes I, Jy/beam), PREFIX.pbcor.fits, PREFIX.pb.fits (the chunk's effective
primary beam) and PREFIX.png, plus PREFIX.image when tclean made it. Every product is written
under a temporary name and renamed only when all of them exist; a failure leaves none behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.childjobs.mscolumns import ensure_weight_spectrum
from contimg.childjobs.report import report

# contimg.image.rules (scipy, astropy: ~1 s to import) is imported where it is used: the averaging
# workers are spawned and import this module first, and they do not need it.
POINTING_KEYWORD = "CONTIMG_POINTING_DEC_DEG"


class ImagingError(RuntimeError):
    pass


def describe_ms(ms_path: str, with_flags: bool = True) -> dict:
    """What imaging needs from the MS: band, longest baseline, times, flags, pointing.

    ``with_flags=False`` skips the FLAG column (a third of a GB at full size): the longest baseline is
    then that of any cross-correlation row, and the flag figures are None."""
    import casatools

    tb = casatools.table()
    tb.open(ms_path)
    try:
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        times = tb.getcol("TIME")
        flags = tb.getcol("FLAG") if with_flags else None  # (npol, nchan, nrow)
        uvw = tb.getcol("UVW")
        intervals = tb.getcol("INTERVAL")
        exposure = tb.getcol("EXPOSURE") if with_flags else None
        interval = float(np.median(intervals))
        keywords = tb.getkeywords()
    finally:
        tb.close()
    tb.open(ms_path + "/SPECTRAL_WINDOW")
    freqs = np.concatenate([tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())])
    widths_per_spw = [tb.getcell("CHAN_WIDTH", i) for i in range(tb.nrows())]
    widths = np.concatenate(widths_per_spw)
    tb.close()
    tb.open(ms_path + "/FIELD")
    field_dir = tb.getcol("PHASE_DIR")[:, 0, 0]
    tb.close()
    cross = a1 != a2
    unflagged = int(np.count_nonzero(~flags[:, :, cross])) if with_flags else None
    # rows averaged over several integrations count for their exposure (noise goes as 1 / sqrt(dnu t))
    unflagged_s = None
    if with_flags:
        exposure = np.where(exposure > 0, exposure, intervals)
        unflagged_s = float(np.count_nonzero(~flags[:, :, cross], axis=(0, 1)) @ exposure[cross])
    good_rows = cross & ~flags.all(axis=(0, 1)) if with_flags else cross
    lengths = np.linalg.norm(uvw[:, good_rows], axis=0)
    pointing = keywords.get(POINTING_KEYWORD)
    return {
        "freq_min_hz": float(freqs.min()), "freq_max_hz": float(freqs.max()), "freqs_hz": freqs,
        "channel_width_hz": float(np.median(np.abs(widths))), "interval_s": interval,
        "start_mjd": float((times - intervals / 2).min()) / 86400.0, "end_mjd": float((times + intervals / 2).max()) / 86400.0,
        "flagged_fraction": None if not with_flags else float(flags[:, :, cross].mean()) if cross.any() else 1.0,
        "n_unflagged_cross": unflagged, "unflagged_cross_seconds": unflagged_s, "max_baseline_m": float(lengths.max()) if lengths.size else 0.0,
        "n_spw": len(widths_per_spw),
        "field_ra_deg": float(np.degrees(field_dir[0]) % 360.0), "field_dec_deg": float(np.degrees(field_dir[1])),
        "pointing_dec_deg": float(pointing) if pointing is not None else None,
    }


def apply_calibration(ms_path: str, caltables: list[str]) -> None:
    """CASA's applycal in place (CORRECTED_DATA): the fallback for tables ``load_gains`` cannot apply."""
    import casatasks

    casatasks.applycal(vis=ms_path, gaintable=caltables, interp=["linear"] * len(caltables), calwt=True,
                       applymode="calflag", flagbackup=False)


class UnsupportedTables(Exception):
    """Tables whose application needs CASA's interpolation (several solution times, or not B/G)."""


def load_gains(caltables: list[str], n_ant: int, spw_nchan: list[int]) -> tuple[list, list]:
    """Per SPW, the product of the tables' complex gains (n_ant, nchan, npol) and their flags.

    B (per channel) and G (per SPW) tables with one solution per antenna and SPW (solint=inf, as the
    calibration job writes them) apply exactly by division; anything else raises UnsupportedTables.
    """
    import casatools

    tb = casatools.table()
    gains = [np.ones((n_ant, n, 2), np.complex64) for n in spw_nchan]
    bad = [np.zeros((n_ant, n, 2), bool) for n in spw_nchan]
    for path in caltables:
        tb.open(path)
        try:
            kind = str(tb.getkeyword("VisCal")) if "VisCal" in tb.keywordnames() else "?"
            if kind not in ("B Jones", "G Jones"):
                raise UnsupportedTables(f"{path}: {kind}")
            cparam, flag = tb.getcol("CPARAM"), tb.getcol("FLAG")  # (npol, nchan, nrow)
            ant, spw, times = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID"), tb.getcol("TIME")
        finally:
            tb.close()
        if len(set(zip(ant.tolist(), spw.tolist()))) != len(ant):
            raise UnsupportedTables(f"{path}: several solutions per antenna and SPW ({len(set(times.tolist()))} times)")
        has = [np.zeros(n_ant, bool) for _ in spw_nchan]
        for row in range(len(ant)):
            a, k = int(ant[row]), int(spw[row])
            g = cparam[:, :, row].T  # (nchan or 1, npol)
            f = flag[:, :, row].T
            if g.shape[-1] == 1:  # one polarization solved: applies to both
                g, f = np.repeat(g, 2, axis=-1), np.repeat(f, 2, axis=-1)
            gains[k][a] *= g
            bad[k][a] |= f
            has[k][a] = True
        for k in range(len(spw_nchan)):
            bad[k][~has[k]] = True  # an antenna the table does not solve stays uncalibrated: flag it
    return gains, bad


ROW_COLUMNS = ("UVW", "TIME", "TIME_CENTROID", "INTERVAL", "EXPOSURE", "ANTENNA1", "ANTENNA2", "FEED1", "FEED2",
               "DATA_DESC_ID", "FIELD_ID", "SCAN_NUMBER", "STATE_ID", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID")


def make_imaging_ms(ms_path: str, out: str, caltables: list[str], chan_bin: int, cfg,
                    initial_images: bool = False) -> dict:
    """A compact copy of ``ms_path`` for imaging: calibrated (B, G by division; weights x |g_i g_j|^2,
    as CASA's calwt; failed solutions flag the data), ``chan_bin`` channels averaged (weighted), in DATA.

    The subbands' spectral windows go into one window (rows on the subbands' mean time and uvw) when
    their rows line up and ``time_merge_loss`` allows it: WSClean grids each window in a pass of its
    own, so one window images ~2.7x faster. Each baseline is then averaged over as many integrations
    as its time smearing allows (``cfg.max_time_smearing_loss``, contimg.image.bda). The image grid (cell,
    size) follows from the copy's longest unflagged baseline and band; with Briggs weighting the copy
    carries the imaging weights for that grid (contimg.image.weighting). The product MS is read, never
    written. Raises UnsupportedTables when the tables need CASA. ``cfg`` is an ImagingConfig.

    With ``initial_images``, the copy's PSF and dirty image for WSClean (contimg.image.gridding) are made
    from its arrays while a worker writes them, when WSClean will weight the copy naturally and its uv
    plane is filled well enough (``cfg.initial_images_min_uv_cells``): ``initial_images`` (or None)
    and the wall and CPU seconds they took (``initial_images_s``, ``initial_images_cpu_s``) come back too.
    """
    pool = _averaging_pool(cfg.threads)  # spawned now: the workers import while the layout is read
    scratch = tempfile.mkdtemp(prefix=".averaging-", dir=Path(out).parent)  # arrays between processes
    try:
        made = _make_imaging_ms(ms_path, out, caltables, chan_bin, cfg, pool, scratch, initial_images)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # no worker may go on writing the scratch folder or the copy
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pool.shutdown(wait=False)  # every task has ended: the idle workers exit in the background
    return made


def _make_imaging_ms(ms_path: str, out: str, caltables: list[str], chan_bin: int, cfg, pool, scratch: str,
                     initial_images: bool) -> dict:
    import casatools

    tb = casatools.table()
    tb.open(ms_path + "/SPECTRAL_WINDOW")
    freqs = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
    widths = [tb.getcell("CHAN_WIDTH", i) for i in range(tb.nrows())]
    tb.close()
    tb.open(ms_path + "/DATA_DESCRIPTION")
    spw_of_dd = tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(ms_path + "/ANTENNA")
    n_ant = tb.nrows()
    tb.close()
    if any(len(f) % chan_bin for f in freqs):
        chan_bin = 1
    gains, gain_flags = load_gains(caltables, n_ant, [len(f) for f in freqs]) if caltables else (None, None)
    tb.open(ms_path)
    try:
        layout = {c: tb.getcol(c) for c in ("ANTENNA1", "ANTENNA2", "DATA_DESC_ID")}
        has_wspec = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
        dd = layout["DATA_DESC_ID"]
        blocks = {k: np.flatnonzero(dd == k) for k in range(len(spw_of_dd)) if np.any(dd == k)}
        if not all(b[-1] - b[0] + 1 == b.size for b in blocks.values()):
            raise UnsupportedTables(f"{ms_path}: rows of a spectral window are not contiguous")
        order = sorted(blocks, key=lambda k: float(np.min(freqs[spw_of_dd[k]])))  # ascending frequency
        plans, rows, first_rows = _time_averaging_plans(tb, layout, blocks, order, freqs, cfg.max_time_smearing_loss)
    finally:
        tb.close()
    pending = _submit_averaging(pool, ms_path, blocks, order, layout["ANTENNA1"], layout["ANTENNA2"], has_wspec,
                                chan_bin, gains, gain_flags, spw_of_dd, plans, scratch)
    # while the workers average: the copy's skeleton, the one-window test (on every row's uvw; the
    # merged window's times and uvw are the windows' means, its other row columns the first window's)
    tb.open(ms_path)
    try:
        tb.copy(out, deep=True, valuecopy=True, norows=True, returnobject=False)
        subtables = [k for k, v in tb.getkeywords().items() if isinstance(v, str) and v.startswith("Table: ")]
        if rows is None:
            rows = {**layout, "TIME": tb.getcol("TIME"), "UVW": tb.getcol("UVW")}
    finally:
        tb.close()
    merge_loss = _merge_loss(rows, blocks, order, [float(np.mean(freqs[spw_of_dd[k]])) for k in order])
    merged = merge_loss is not None and merge_loss <= cfg.max_merge_loss
    if not merged and first_rows is not None:  # each window keeps its own rows: all their columns
        tb.open(ms_path)
        try:
            rows = _read_rows(tb, layout)
        finally:
            tb.close()
    reports = [f.result() for f in pending]
    results = [r[0] for r in reports]
    averaged = {k: _unstash(paths) for k, (paths, _, _) in zip(order, results)}
    n_flag, n_all = (sum(r[i] for r in results) for i in (1, 2))
    binned = _binned_channels(freqs, widths, chan_bin)  # (frequencies, widths) of the copy's channels
    window_freqs = [binned[spw_of_dd[k]][0] for k in order]
    parts = _windows_as_parts(rows, first_rows, blocks, order, averaged, plans, window_freqs, merged)
    del averaged
    figures = [plans[order[0]].figures] if merged else [plans[k].figures for k in order]
    rows_in, rows_out = (sum(f[key] for f in figures) for key in ("rows_in", "rows_out"))
    time_figures = {"rows_kept_fraction": rows_out / max(rows_in, 1),
                    "max_time_bin": max(f["max_bin"] for f in figures)}
    cell, size = _image_grid(parts, cfg)
    noise_over_natural, uv_cells = None, None
    if cfg.weighting == "briggs" and cfg.briggs_in_copy and cell is not None:
        noise_over_natural, uv_cells = _put_briggs_weights(parts, size, cell, cfg.robust)
    ot = casatools.table()
    ot.open(out, nomodify=False)
    try:
        ensure_weight_spectrum(ot)
    finally:
        ot.close()
    # written by an averaging worker with python-casacore: casatools' putcol took 1.3 s, this 0.2 s
    stashed = [(part[0], _stash(f"{scratch}/part{i}", *part[1:4])) for i, part in enumerate(parts)]
    writing = pool.submit(_in_worker, _write_rows, out, stashed)
    # contimg.image.gridding weights naturally, so WSClean must (the copy carries any Briggs weights), and only
    # a well-filled uv plane's exact PSF agrees with WSClean's later residuals (ImagingConfig)
    naturally = cfg.weighting == "natural" or noise_over_natural is not None
    well_filled = (uv_cells or 0.0) >= cfg.initial_images_min_uv_cells
    wanted = initial_images and cell is not None and naturally and well_filled
    initial = _initial_images(parts, size, cell, cfg) if wanted else {}
    reports.append(writing.result())
    for name in subtables:  # norows empties the subtables too: bring them over whole
        shutil.rmtree(f"{out}/{name}")
        tb.open(f"{ms_path}/{name}")
        tb.copy(f"{out}/{name}", deep=True, valuecopy=True, returnobject=False)
        tb.close()
    _rewrite_windows(out, binned, [int(spw_of_dd[k]) for k in order] if merged else None)
    return {"chan_bin": chan_bin, "applied": bool(caltables), "flagged_fraction_after_apply": n_flag / max(n_all, 1),
            "merged_spws": merged, "merge_loss": merge_loss, **time_figures, "cell_arcsec": cell, "size_px": size,
            "weights_noise_factor": noise_over_natural, "effective_uv_cells": uv_cells,
            "workers_cpu_s": _workers_cpu_seconds(reports), **initial}


def _windows_as_parts(rows: dict, first_rows: dict | None, blocks: dict, order: list, averaged: dict, plans: dict,
                      freqs: list, merged: bool) -> list:
    """The windows, averaged in time by the workers with ``plans``, as parts of the copy, each (row
    columns, data, weights, flags, channel frequencies): one part holding every window's channels on
    their rows' mean time and uvw when ``merged``, else one part per window. ``rows`` holds every
    row's TIME and UVW at least (all ROW_COLUMNS unless ``merged``), ``first_rows`` the first
    window's ROW_COLUMNS (or None: in ``rows``). ``freqs`` are the windows' binned channel
    frequencies, in ``order``."""
    if not merged:
        return [(plans[k].rows({c: v[..., blocks[k]] for c, v in rows.items()}), *averaged[k], f)
                for k, f in zip(order, freqs)]
    first = blocks[order[0]]
    merged_rows = dict(first_rows) if first_rows is not None else {c: v[..., first] for c, v in rows.items()}
    merged_rows["TIME"] = merged_rows["TIME_CENTROID"] = np.mean([rows["TIME"][blocks[k]] for k in order], axis=0)
    merged_rows["UVW"] = np.mean([rows["UVW"][:, blocks[k]] for k in order], axis=0)
    merged_rows["DATA_DESC_ID"] = np.zeros(first.size, np.int32)
    data, wsum, flags = (np.concatenate([averaged[k][i] for k in order], axis=1) for i in range(3))
    return [(plans[order[0]].rows(merged_rows), data, wsum, flags, np.concatenate(freqs))]


def _time_averaging_plans(tb, layout: dict, blocks: dict, order: list, freqs: list,
                          max_loss: float) -> tuple[dict, dict | None, dict | None]:
    """(plans, rows, first_rows): per window, the contimg.bda.TimeAveraging the workers apply to it
    (so that they hand back a third of the rows), planned from the row columns (ROW_COLUMNS) of the
    open product table ``tb`` for a loss of at most ``max_loss`` at the primary beam's half-power
    radius. Windows whose rows line up share one plan, made from the first window's rows, which are
    returned as ``first_rows`` (``rows`` None); otherwise each gets its own, from all the rows,
    returned as ``rows`` (``first_rows`` None)."""
    from contimg.image.bda import plan_time_averaging
    from contimg.core.beam import fwhm_rad

    radius = 0.5 * fwhm_rad(min(float(f.min()) for f in freqs))
    freq_max = max(float(f.max()) for f in freqs)
    if _windows_line_up(layout, blocks, order):
        first = blocks[order[0]]
        rows = {c: layout[c][first] if c in layout else tb.getcol(c, int(first[0]), first.size) for c in ROW_COLUMNS}
        plan = plan_time_averaging(rows, freq_max, radius, max_loss)
        return {k: plan for k in order}, None, rows
    rows = _read_rows(tb, layout)
    return {k: plan_time_averaging({c: v[..., blocks[k]] for c, v in rows.items()}, freq_max, radius, max_loss)
            for k in order}, rows, None


def _windows_line_up(rows: dict, blocks: dict, order: list) -> bool:
    """Whether every window holds the same baselines in the same row order (as the converter writes);
    ``rows`` holds at least ANTENNA1 and ANTENNA2 of every row."""
    first = blocks[order[0]]
    a1, a2 = rows["ANTENNA1"][first], rows["ANTENNA2"][first]
    return all(blocks[k].size == first.size and np.array_equal(rows["ANTENNA1"][blocks[k]], a1)
               and np.array_equal(rows["ANTENNA2"][blocks[k]], a2) for k in order[1:])


def _read_rows(tb, layout: dict) -> dict:
    """The row columns (ROW_COLUMNS) of the open table ``tb``, reusing those already in ``layout``."""
    return {c: layout[c] if c in layout else tb.getcol(c) for c in ROW_COLUMNS}


def _image_grid(parts: list, cfg) -> tuple[float | None, int | None]:
    """(cell arcsec, size px) for the copy: the longest baseline with unflagged data, the band's edges."""
    from contimg.image.rules import cell_arcsec, image_size_px

    longest, f_min, f_max = 0.0, np.inf, 0.0
    for part_rows, _, _, flags, part_freqs in parts:
        good = (part_rows["ANTENNA1"] != part_rows["ANTENNA2"]) & ~flags.all(axis=(1, 2))
        if good.any():
            longest = max(longest, float(np.linalg.norm(part_rows["UVW"][:, good], axis=0).max()))
            f_min, f_max = min(f_min, float(part_freqs.min())), max(f_max, float(part_freqs.max()))
    if longest <= 0:
        return None, None  # nothing to image: the caller says so
    cell = round(cell_arcsec(longest, f_max, cfg.pixels_per_beam), 4)  # as the imagers are told it (run_wsclean)
    return cell, image_size_px(cell, f_min, cfg)


def _initial_images(parts: list, size: int, cell: float, cfg) -> dict:
    """contimg.gridding.initial_images of the copy's ``parts`` (after their imaging weights), with
    the wall and CPU seconds it took (this process: ducc0's threads)."""
    from contimg.image.gridding import initial_images

    ts, cs = time.perf_counter(), _cpu_seconds()
    grid_parts = [(rows["UVW"], freqs, data, weights, flags, rows["ANTENNA1"] != rows["ANTENNA2"])
                  for rows, data, weights, flags, freqs in parts]
    images = initial_images(grid_parts, size, cell, cfg.wgridder_accuracy, cfg.threads)
    return {"initial_images": images, "initial_images_s": time.perf_counter() - ts,
            "initial_images_cpu_s": _cpu_seconds() - cs}


def _put_briggs_weights(parts: list, size: int, cell: float, robust: float) -> tuple[float, float]:
    """Multiply each part's weights (row, chan, pol) by its Briggs factor on the image's uv grid (both
    polarizations by the Stokes I factor); return the image noise over that of natural weighting and
    the effective number of uv cells (contimg.weighting.briggs_weighting)."""
    from contimg.core.constants import C_M_S
    from contimg.image.weighting import briggs_weighting, noise_factor

    u, v, natural = [], [], []
    for part_rows, _, wsum, _, part_freqs in parts:
        per_m = part_freqs / C_M_S
        cross = part_rows["ANTENNA1"] != part_rows["ANTENNA2"]
        u.append(np.outer(part_rows["UVW"][0], per_m).ravel())
        v.append(np.outer(part_rows["UVW"][1], per_m).ravel())
        # autocorrelations are not imaged; a sum over the short polarization axis is slow in numpy (0.1 s here)
        natural.append((sum(wsum[..., p] for p in range(wsum.shape[2])) * cross[:, None]).ravel())
    u, v, natural = np.concatenate(u), np.concatenate(v), np.concatenate(natural)
    factor, uv_cells = briggs_weighting(u, v, natural, 1.0 / (size * np.radians(cell / 3600.0)), size, robust)
    start = 0
    for _, _, wsum, _, _ in parts:
        n = wsum.shape[0] * wsum.shape[1]
        wsum *= factor[start:start + n].reshape(wsum.shape[:2])[:, :, None].astype(wsum.dtype)
        start += n
    return noise_factor(natural, factor), uv_cells


def _merge_loss(rows: dict, blocks: dict, order: list, freqs_hz: list) -> float | None:
    """``time_merge_loss`` at the primary beam's half-power radius, or None when the windows' rows do
    not line up (same baselines in the same order) and so cannot share rows."""
    from contimg.core.beam import fwhm_rad
    from contimg.image.rules import time_merge_loss

    if len(order) < 2 or not _windows_line_up(rows, blocks, order):
        return None
    first = blocks[order[0]]
    cross = rows["ANTENNA1"][first] != rows["ANTENNA2"][first]
    uvw = np.stack([rows["UVW"][:, blocks[k]][:, cross] for k in order])
    return time_merge_loss(uvw, np.array(freqs_hz), 0.5 * fwhm_rad(min(freqs_hz)))


def _calibrated_average(ms_path: str, start: int, n: int, a1: np.ndarray, a2: np.ndarray, has_wspec: bool,
                        chan_bin: int, gain, gain_flag, plan, stash_prefix: str) -> tuple[list[str], int, int]:
    """Rows [start, start + n) of one spectral window read, calibrated (gains (ant, chan, pol)),
    averaged over ``chan_bin`` channels with weights, then in time by ``plan`` (a
    contimg.bda.TimeAveraging): (data, weight, flag), each (row, chan / chan_bin, pol) as the table
    stores them, stashed under ``stash_prefix``. Returns their paths and the numbers of flagged and
    all samples after calibration (before the time averaging).

    Runs in a worker process that opens the table itself with python-casacore, which hands back the
    stored complex64 (casatools converts to complex128: 2.5x slower per window); the worker never
    imports casatools, the job's process never imports casacore."""
    from casacore.tables import table

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
    gg, nbl = baseline_gains(gain, gain_flag, a1, a2) if gain is not None else (None, None)
    avg, wsum, flags = calibrate_and_bin(data, flag, chan_bin, row_weight=row_weight, weight=weight, gg=gg,
                                         n_baselines=nbl)
    return _stash(stash_prefix, *plan.average(avg, wsum)), int(np.count_nonzero(flags)), flags.size


def _stash(prefix: str, *arrays: np.ndarray) -> list[str]:
    """``arrays`` saved as .npy files for another process to ``_unstash``: through the page cache
    134 MB moved in 0.07 s, where the pool's pipe (pickled) took 0.6 s."""
    paths = [f"{prefix}.{i}.npy" for i in range(len(arrays))]
    for path, a in zip(paths, arrays):
        np.save(path, a)
    return paths


def _unstash(paths: list[str]) -> list[np.ndarray]:
    """The stashed arrays, mapped from their files (copy-on-write: the files stay as they were)."""
    return [np.load(path, mmap_mode="c") for path in paths]


_BUFFERS: dict = {}


def _read_buffer(column: str, shape: tuple, dtype) -> np.ndarray:
    """The array a worker process reads ``column`` into, kept while the shape holds (every subband
    has the same): fresh pages for each subband's 100 MB cost 0.4 s of the 4.1 s that two workers
    took over the 16 subbands of a full-size chunk."""
    buf = _BUFFERS.get(column)
    if buf is None or buf.shape != shape or buf.dtype != np.dtype(dtype):
        buf = _BUFFERS[column] = np.empty(shape, dtype)
    return buf


def _in_worker(fn, *args):
    """``fn(*args)`` run in a pool worker: (its result, the worker's pid, the worker's CPU seconds so
    far). The workers exit after the job's step, so their CPU is reported rather than waited for."""
    return fn(*args), os.getpid(), time.process_time()


def _workers_cpu_seconds(reports: list) -> float:
    """The CPU seconds of the workers that sent ``reports`` (_in_worker's), each counted once."""
    latest = {}
    for _, pid, cpu in reports:
        latest[pid] = max(cpu, latest.get(pid, 0.0))
    return sum(latest.values())


def _averaging_pool(workers: int):
    """A pool of ``workers`` spawned processes (always spawned, even one: this process holds
    casatools, the workers casacore), started at once and importing what their tasks need."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = max(1, workers)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_import_worker_modules)
    for _ in range(n):  # a pool spawns a process per task submitted while none is idle
        pool.submit(int)
    return pool


def _import_worker_modules() -> None:
    """Worker start-up: the modules of the averaging and writing tasks (~0.6 s, scipy.sparse for the
    time-averaging plans the most), imported while the job's process reads the layout."""
    import casacore.tables  # noqa: F401

    import contimg.image.applycal  # noqa: F401
    import contimg.image.bda  # noqa: F401
    import contimg.calibrate.calavg  # noqa: F401


def _submit_averaging(pool, ms_path: str, blocks: dict, order: list, a1: np.ndarray, a2: np.ndarray, has_wspec: bool,
                      chan_bin: int, gains, gain_flags, spw_of_dd, plans: dict, scratch: str) -> list:
    """``_calibrated_average`` of every window submitted to ``pool`` (through ``_in_worker``),
    stashing into the folder ``scratch``. Returns the futures in ``order``."""
    return [pool.submit(_in_worker, _calibrated_average, ms_path, int(blocks[k][0]), int(blocks[k].size),
                        a1[blocks[k]], a2[blocks[k]], has_wspec, chan_bin,
                        None if gains is None else gains[spw_of_dd[k]],
                        None if gains is None else gain_flags[spw_of_dd[k]], plans[k], f"{scratch}/window{k}")
            for k in order]


def _write_rows(out: str, parts: list) -> None:
    """Append each part's rows to the copy ``out`` (in a worker process, with python-casacore): a part
    is (row columns as casatools' getcol laid them out (..., row), the stashed data, weights and flags
    (row, chan, pol))."""
    from casacore.tables import table

    from contimg.calibrate.calavg import sigma_from_weight

    with table(out, readonly=False, ack=False) as ot:
        for row_values, stashed in parts:
            data, wsum, flags = _unstash(stashed)
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


def _binned_channels(freqs: list, widths: list, chan_bin: int) -> list:
    """Per window, the (frequencies, widths) of its channels after averaging ``chan_bin`` of them."""
    return [(f.reshape(-1, chan_bin).mean(axis=1), wd.reshape(-1, chan_bin).sum(axis=1)) for f, wd in zip(freqs, widths)]


def _rewrite_windows(out: str, binned: list, merged_spws: list | None) -> None:
    """SPECTRAL_WINDOW after averaging (``binned``: _binned_channels); with ``merged_spws`` (ascending),
    one window holding them all, and DATA_DESCRIPTION and FEED reduced to it."""
    import casatools

    tb = casatools.table()
    tb.open(out + "/SPECTRAL_WINDOW", nomodify=False)
    try:
        if merged_spws is None:
            for i, (fb, wb) in enumerate(binned):
                _put_window(tb, i, fb, wb)
        else:
            fb = np.concatenate([binned[k][0] for k in merged_spws])
            wb = np.concatenate([binned[k][1] for k in merged_spws])
            _put_window(tb, 0, fb, wb)
            tb.putcell("NAME", 0, "+".join(str(tb.getcell("NAME", k)) for k in merged_spws))
            tb.putcell("REF_FREQUENCY", 0, float(fb[0]))
            tb.removerows(list(range(1, tb.nrows())))
    finally:
        tb.close()
    if merged_spws is None:
        return
    tb.open(out + "/DATA_DESCRIPTION", nomodify=False)
    try:
        tb.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        tb.removerows(list(range(1, tb.nrows())))
    finally:
        tb.close()
    tb.open(out + "/FEED", nomodify=False)
    try:
        spw = tb.getcol("SPECTRAL_WINDOW_ID")
        tb.removerows([int(r) for r in np.flatnonzero((spw != -1) & (spw != merged_spws[0]))])
        if tb.nrows():
            tb.putcol("SPECTRAL_WINDOW_ID", np.where(tb.getcol("SPECTRAL_WINDOW_ID") == -1, -1, 0))
    finally:
        tb.close()


def _put_window(tb, i: int, fb: np.ndarray, wb: np.ndarray) -> None:
    tb.putcell("NUM_CHAN", i, len(fb))
    tb.putcell("TOTAL_BANDWIDTH", i, float(np.abs(wb).sum()))
    for col, value in (("CHAN_FREQ", fb), ("CHAN_WIDTH", wb), ("EFFECTIVE_BW", np.abs(wb)), ("RESOLUTION", np.abs(wb))):
        tb.putcell(col, i, value)


def run_wsclean(ms_path: str, prefix: Path, size: int, cell: float, cfg: ImagingConfig, column: str,
                threshold_jy: float, tmpdir: Path, initial=None) -> dict:
    """WSClean's quick image of ``ms_path``; it starts from ``initial`` (contimg.gridding.InitialImages,
    of this MS on this grid) when given, else makes its own PSF and dirty image."""
    # WSClean cleans to the larger of the absolute threshold (threshold_sigma x the radiometer noise,
    # as tclean gets) and threshold_sigma x the rms of the current residual (-auto-threshold): the
    # radiometer is the floor, the residual's own noise (1.2x the radiometer at full size) the
    # usual stop; cleaning to the floor instead took 2-3 s more for the same image. (In a first major
    # cycle the residual's rms is the dirty image's sidelobes: see ImagingConfig.mgain.)
    argv = ["wsclean", "-name", str(prefix), "-size", str(size), str(size), "-scale", f"{cell:.4f}asec",
            "-pol", "I", "-niter", str(cfg.niter), "-mgain", str(cfg.mgain), "-threshold", f"{threshold_jy:.6g}",
            "-auto-threshold", str(cfg.threshold_sigma),
            "-data-column", column, "-reorder", "-use-wgridder", "-j", str(cfg.threads), "-temp-dir", str(tmpdir),
            "-wgridder-accuracy", f"{cfg.wgridder_accuracy:g}", "-nmiter", str(cfg.nmiter),
            "-no-update-model-required", "-no-dirty", "-quiet"]
    if cfg.auto_mask_sigma > 0:
        argv += ["-auto-mask", str(cfg.auto_mask_sigma)]
    argv += ["-weight", "briggs", str(cfg.robust)] if cfg.weighting == "briggs" else ["-weight", "natural"]
    if initial is not None:
        _write_for_reuse(prefix, initial)
        argv += ["-reuse-psf", str(prefix), "-reuse-dirty", str(prefix)]
    log = tmpdir / "wsclean.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv + [ms_path], stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # wait4: WSClean's own CPU time, none of another child's
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise ImagingError(f"wsclean failed ({proc.returncode}): {log.read_text(errors='replace')[-1500:]}")
    residual = Path(f"{prefix}-residual.fits")  # absent when niter is 0: the image is then the residual
    return {"image": Path(f"{prefix}-image.fits"), "residual": residual if residual.exists() else Path(f"{prefix}-image.fits"),
            "casa_image": None, "cpu_s": usage.ru_utime + usage.ru_stime}


def _write_for_reuse(prefix: Path, images) -> None:
    """``images`` (contimg.gridding.InitialImages) as the ``{prefix}-psf.fits`` and ``{prefix}-dirty.fits``
    WSClean loads with -reuse-psf / -reuse-dirty ``prefix`` (scratch files: no WCS; WSClean writes its
    products' headers itself)."""
    from astropy.io import fits

    from contimg.image.gridding import wsclean_keywords

    for kind, plane in (("psf", images.psf), ("dirty", images.dirty)):
        hdu = fits.PrimaryHDU(plane[None, None])
        hdu.header.update(wsclean_keywords(images))
        hdu.writeto(f"{prefix}-{kind}.fits", overwrite=True)


def run_tclean(ms_path: str, prefix: Path, size: int, cell: float, cfg: ImagingConfig, column: str,
               threshold_jy: float) -> dict:
    import casatasks

    casatasks.tclean(vis=ms_path, imagename=str(prefix), imsize=[size, size], cell=f"{cell:.4f}arcsec", stokes="I",
                     specmode="mfs", gridder="wproject", wprojplanes=-1, deconvolver="hogbom",
                     weighting="briggs" if cfg.weighting == "briggs" else "natural", robust=cfg.robust,
                     niter=cfg.niter, gain=0.1, threshold=f"{threshold_jy}Jy", pblimit=-1,
                     datacolumn="corrected" if column == "CORRECTED_DATA" else "data")
    image = Path(f"{prefix}.image")
    if not image.exists():
        raise ImagingError("tclean produced no image")
    casatasks.exportfits(imagename=str(image), fitsimage=f"{prefix}-image.fits", overwrite=True)
    casatasks.exportfits(imagename=f"{prefix}.residual", fitsimage=f"{prefix}-residual.fits", overwrite=True)
    return {"image": Path(f"{prefix}-image.fits"), "residual": Path(f"{prefix}-residual.fits"), "casa_image": image}


def _thread_cpu(fn, *args):
    """(``fn(*args)``, the CPU seconds this thread spent on it)."""
    start = time.thread_time()
    return fn(*args), time.thread_time() - start


def _cpu_seconds() -> float:
    """CPU time of this process; its children's (WSClean, the averaging workers) are reported with
    their results. Steadier than the wall clock on a shared machine whose speed wanders."""
    t = os.times()
    return t.user + t.system


def make_image(ms_path: str, out_prefix: str, caltables: list[str], calset: str | None, window: str | None,
               cfg: ImagingConfig) -> dict:
    from astropy.io import fits
    from astropy.wcs import WCS

    from contimg.image.fitsio import add_provenance
    from contimg.image.rules import cell_arcsec, channel_bin, expected_image_noise_jy, image_size_px
    from contimg.image.pbcor import drift_pointings, effective_beam
    from contimg.image.qa import image_qa
    from contimg.image.thumbnail import write_png

    timings, cpu, warnings = {}, {}, []
    t0 = time.perf_counter()
    out_prefix = Path(out_prefix).absolute()
    ms_path = str(Path(ms_path).absolute())  # the job changes directory below
    caltables = [str(Path(t).absolute()) for t in caltables]
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    source_info = describe_ms(ms_path, with_flags=False)  # flags are counted on the imaging copy below
    imager = cfg.imager
    if imager == "wsclean" and shutil.which("wsclean") is None:
        warnings.append("wsclean not found on PATH: imaged with CASA tclean instead")
        imager = "tclean"
    chan_bin = cfg.chan_average or channel_bin(len(source_info["freqs_hz"]) // max(source_info["n_spw"], 1),
                                               source_info["channel_width_hz"], source_info["freq_min_hz"],
                                               source_info["max_baseline_m"], cfg.max_smearing_loss)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out_prefix.name}.tmp-", dir=out_prefix.parent))
    os.chdir(tmpdir)  # CASA drops TempLattice*/imagesolver* scratch in the working directory
    try:
        ts, cs = time.perf_counter(), _cpu_seconds()
        image_ms, column = str(tmpdir / "imaging.ms"), "DATA"
        try:  # calibrated and averaged in one read of the product, which is never written
            prep = make_imaging_ms(ms_path, image_ms, caltables, chan_bin, cfg,
                                   initial_images=imager == "wsclean" and cfg.initial_images_by_ducc0)
        except UnsupportedTables as why:  # image the product itself, calibrated by CASA if there are tables
            shutil.rmtree(image_ms, ignore_errors=True)
            image_ms, column, prep = ms_path, "DATA", {"chan_bin": 1, "applied": bool(caltables)}
            if caltables:
                warnings.append(f"tables applied by CASA applycal in place ({why}); no channel averaging")
                apply_calibration(ms_path, caltables)
                column = "CORRECTED_DATA"
            else:
                warnings.append(f"imaged the product MS without channel averaging ({why})")
        # the initial images (made with the copy) are imaging: their time counts there
        initial_s, initial_cpu = prep.get("initial_images_s", 0.0), prep.get("initial_images_cpu_s", 0.0)
        timings["apply" if caltables else "prepare"] = time.perf_counter() - ts - initial_s
        cpu["apply" if caltables else "prepare"] = _cpu_seconds() - cs + prep.get("workers_cpu_s", 0.0) - initial_cpu
        data_column = "CORRECTED_DATA" if caltables else "DATA"  # what was imaged (from the copy, or in place)
        info = describe_ms(image_ms)
        if info["n_unflagged_cross"] == 0:
            raise ImagingError(f"{ms_path}: all cross-correlation data are flagged"
                               f"{' (after calibration)' if caltables else ''}; nothing to image")
        if prep.get("cell_arcsec"):  # the grid the copy's imaging weights were made for
            cell, size = prep["cell_arcsec"], prep["size_px"]
        else:
            cell = cell_arcsec(info["max_baseline_m"], info["freq_max_hz"], cfg.pixels_per_beam)
            size = image_size_px(cell, info["freq_min_hz"], cfg)
        weighting, noise_over_natural = cfg.weighting, 1.0
        imager_cfg = replace(cfg, mgain=cfg.major_cycle_gain(prep.get("effective_uv_cells")))
        if prep.get("weights_noise_factor"):  # the copy carries the imaging weights: the imager weights naturally
            noise_over_natural, imager_cfg = prep["weights_noise_factor"], replace(imager_cfg, weighting="natural")
            weighting = f"briggs {cfg.robust:g} (imaging weights in the copy)"
        # in integrations' worth: rows averaged in time count for several
        n_equivalent = info["unflagged_cross_seconds"] / info["interval_s"]
        expected = noise_over_natural * expected_image_noise_jy(n_equivalent, info["channel_width_hz"], info["interval_s"])
        ts, cs = time.perf_counter(), _cpu_seconds()
        work = tmpdir / "img"
        pointing = info["pointing_dec_deg"] if info["pointing_dec_deg"] is not None else info["field_dec_deg"]
        threshold = cfg.threshold_sigma * expected
        with ThreadPoolExecutor(1) as beside:  # WSClean leaves part of a core idle: the beam's pointings meanwhile
            track = beside.submit(_thread_cpu, drift_pointings, info["start_mjd"], info["end_mjd"], pointing,
                                  cfg.pb_time_samples)
            if imager == "wsclean":
                made = run_wsclean(image_ms, work, size, cell, imager_cfg, column, threshold, tmpdir,
                                   initial=prep.get("initial_images"))
            else:
                made = run_tclean(image_ms, work, size, cell, imager_cfg, column, threshold)
            timings["image"] = time.perf_counter() - ts + initial_s
            if initial_s:
                timings["image_initial"] = initial_s  # of which the PSF and dirty image by ducc0
            pointings, pointings_cpu = track.result()
        cpu["image"] = _cpu_seconds() - cs - pointings_cpu + made.get("cpu_s", 0.0) + initial_cpu
        ts = time.perf_counter()
        with fits.open(made["image"]) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data.astype(np.float32)
        residual = fits.getdata(made["residual"]).astype(np.float32)
        plane = data.reshape(data.shape[-2:])
        res_plane = residual.reshape(residual.shape[-2:])
        qa = image_qa(plane, res_plane)
        centre_freqs = np.linspace(info["freq_min_hz"], info["freq_max_hz"], 5)
        pb = effective_beam(WCS(header), plane.shape, pointings, centre_freqs)
        timings["pb"] = time.perf_counter() - ts
        header = add_provenance(header, rms_jy=qa.rms_jy, peak_jy=qa.peak_jy, expected_rms_jy=expected, calset=calset,
                                caltables=caltables, window=window, imager=imager, data_column=data_column, ms_path=ms_path,
                                pb_limit=cfg.pb_limit)
        pb_full = pb.reshape(data.shape).astype(np.float32)
        pbcor = np.where(pb_full >= cfg.pb_limit, data / np.maximum(pb_full, 1e-12), np.nan).astype(np.float32)
        staged = {}
        for suffix, arr in ((".fits", data), (".pbcor.fits", pbcor), (".pb.fits", pb_full)):
            tmp = tmpdir / f"out{suffix}"
            h = header.copy()
            if suffix == ".pb.fits":
                h["BUNIT"] = ("", "primary beam response")
            fits.PrimaryHDU(data=arr, header=h).writeto(tmp)
            staged[suffix] = tmp
        write_png(plane, tmpdir / "out.png", title=f"{window or Path(ms_path).name}  rms {qa.rms_jy * 1e3:.2f} mJy/beam",
                  rms=qa.rms_jy)
        staged[".png"] = tmpdir / "out.png"
        if made["casa_image"] is not None:
            staged[".image"] = made["casa_image"]
        # every product exists: move them into place (each rename is atomic)
        for suffix, tmp in staged.items():
            final = Path(f"{out_prefix}{suffix}")
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        os.chdir(out_prefix.parent)  # never leave CASA in a deleted directory (it asserts getcwd at exit)
        shutil.rmtree(tmpdir, ignore_errors=True)
    timings["total"] = time.perf_counter() - t0
    beam = {"bmaj_arcsec": float(header.get("BMAJ", 0.0)) * 3600.0, "bmin_arcsec": float(header.get("BMIN", 0.0)) * 3600.0,
            "bpa_deg": float(header.get("BPA", 0.0))}
    return {
        "image": f"{out_prefix}.fits", "pbcor": f"{out_prefix}.pbcor.fits", "pb": f"{out_prefix}.pb.fits",
        "png": f"{out_prefix}.png", "casa_image": f"{out_prefix}.image" if made["casa_image"] is not None else None,
        "imager": imager, "calibrated": bool(caltables), "data_column": data_column, "chan_bin": prep["chan_bin"],
        "merged_spws": bool(prep.get("merged_spws")), "merge_loss": prep.get("merge_loss"), "caltables": caltables, "calset": calset,
        "window": window, "cell_arcsec": cell, "size_px": size, "weighting": weighting, "mgain": imager_cfg.mgain,
        "initial_images": "ducc0" if prep.get("initial_images") is not None else imager,
        "rows_kept_fraction": prep.get("rows_kept_fraction", 1.0), "max_time_bin": prep.get("max_time_bin", 1), "effective_uv_cells": prep.get("effective_uv_cells"), **beam, **qa.as_dict(), "expected_rms_jy": expected,
        "flagged_fraction": info["flagged_fraction"], "timings_s": timings, "cpu_s": cpu, "warnings": warnings,
        "config": cfg.to_json(), "code_version": __version__, "mid_mjd": 0.5 * (info["start_mjd"] + info["end_mjd"]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contimg.image.job", description=__doc__.splitlines()[0])
    parser.add_argument("ms")
    parser.add_argument("--out", required=True)
    parser.add_argument("--caltable", action="append", default=[], help="in apply order")
    parser.add_argument("--calset", default=None)
    parser.add_argument("--window", default=None)
    parser.add_argument("--imager", choices=["wsclean", "tclean"], default=None)
    parser.add_argument("--config", default=None, help="JSON overrides of ImagingConfig")
    parser.add_argument("--report", default=None)
    args = parser.parse_args(argv)
    from contimg.image.rules import ImagingConfig

    cfg = ImagingConfig.from_json(args.config)
    if args.imager:
        cfg = replace(cfg, imager=args.imager)
    try:
        metrics = make_image(args.ms, args.out, args.caltable, args.calset, args.window, cfg)
    except ImagingError as err:
        print(f"image: error: {err}", file=sys.stderr)
        return 1
    for w in metrics["warnings"]:
        print(f"WARNING: {w}")
    print(f"wrote {metrics['image']} ({metrics['imager']}, {metrics['size_px']} px at {metrics['cell_arcsec']:.2f}\"), "
          f"rms {metrics['rms_jy'] * 1e3:.2f} mJy/beam (expected {metrics['expected_rms_jy'] * 1e3:.2f}), "
          f"peak {metrics['peak_jy']:.3f} Jy/beam, {metrics['n_sources_5sigma']} sources > 5 sigma")
    report(metrics, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
