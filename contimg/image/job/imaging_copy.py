"""The imaging copy of a chunk: calibrated, averaged in channels and time, weighted, in one window.

The product MS is read, never written. Its windows are calibrated and averaged by worker processes
(``workers``) while this process reads the row layout, decides whether the windows share rows
(``contimg.image.parts``), writes the copy's skeleton and, with its arrays still in memory, makes
the copy's Briggs weights and WSClean's initial images.
"""

from __future__ import annotations

import shutil
import time

import numpy as np

from contimg.childjobs.mscolumns import ensure_weight_spectrum
from contimg.childjobs.pool import pool_with_scratch
from contimg.image.job.errors import UnsupportedTables
from contimg.image.job.msread import ROW_COLUMNS, load_gains, read_rows, read_windows
from contimg.image.job.workers import (
    averaging_pool,
    cpu_seconds,
    in_worker,
    stash,
    submit_averaging,
    unstash,
    workers_cpu_seconds,
    write_rows,
)
from contimg.image.parts import (
    binned_channels,
    image_grid,
    merge_loss,
    put_briggs_weights,
    restoring_beam,
    windows_as_parts,
    windows_line_up,
)

__all__ = ["make_imaging_ms"]


def make_imaging_ms(
    ms_path: str, out: str, caltables: list[str], chan_bin: int, cfg, initial_images: bool = False, outside=None
) -> dict:
    """A compact copy of ``ms_path`` for imaging, with the figures of how it was made.

    Calibrated (B, G by division; weights x |g_i g_j|^2, as CASA's calwt; failed solutions flag the
    data), ``chan_bin`` channels averaged (weighted), in DATA. The subbands' spectral windows go into
    one window (rows on the subbands' mean time and uvw) when their rows line up and
    ``time_merge_loss`` allows it: WSClean grids each window in a pass of its own, so one window
    images ~2.7x faster. Each baseline is then averaged over as many integrations as its time
    smearing allows (``cfg.max_time_smearing_loss``, contimg.image.bda). The image grid (cell, size)
    follows from the copy's longest unflagged baseline and band; with Briggs weighting the copy
    carries the imaging weights for that grid (contimg.image.weighting).

    Parameters
    ----------
    ms_path, out : str
        The product MS (read only) and the copy to write.
    caltables : list of str
        In apply order; empty: uncalibrated.
    chan_bin : int
        Channels averaged; 1 when it does not divide every window's channels.
    cfg : ImagingConfig
    initial_images : bool
        Also make the copy's PSF and dirty image for WSClean (contimg.image.gridding) from its arrays
        while a worker writes them, when WSClean will weight the copy naturally and its uv plane is
        filled well enough (``cfg.initial_images_min_uv_cells``).
    outside : contimg.image.subtract.OutsideSources, optional
        Sources beyond the image's edge, subtracted from the data by the averaging workers.

    Returns
    -------
    dict
        ``chan_bin``, ``applied``, ``flagged_fraction_after_apply``, ``merged_spws``, ``merge_loss``,
        ``rows_kept_fraction``, ``max_time_bin``, ``cell_arcsec`` and ``size_px`` (None when nothing
        is unflagged), ``weights_noise_factor`` and ``effective_uv_cells`` (None unless Briggs weights
        are in the copy), ``restoring_beam`` ((major arcsec, minor arcsec, position angle deg) of the
        PSF's main lobe, or None: the imager fits its own), ``workers_cpu_s``; with initial images,
        ``initial_images`` (a tuple of contimg.image.gridding.InitialImages, one per output channel, or
        None) and the wall and CPU seconds they took
        (``initial_images_s``, ``initial_images_cpu_s``).

    Raises
    ------
    UnsupportedTables
        When the tables need CASA's interpolation or a window's rows are not contiguous.
    """
    pool = averaging_pool(cfg.threads)  # spawned now: the workers import while the layout is read
    with pool_with_scratch(pool, out, ".averaging-") as scratch:
        return _make_imaging_ms(ms_path, out, caltables, chan_bin, cfg, pool, scratch, initial_images, outside)


def _make_imaging_ms(
    ms_path: str,
    out: str,
    caltables: list[str],
    chan_bin: int,
    cfg,
    pool,
    scratch: str,
    initial_images: bool,
    outside=None,
) -> dict:
    import casatools

    freqs, widths, spw_of_dd, n_ant = read_windows(ms_path)
    if any(len(f) % chan_bin for f in freqs):
        chan_bin = 1
    tb = casatools.table()
    tb.open(ms_path)
    try:
        layout = {c: tb.getcol(c) for c in ("ANTENNA1", "ANTENNA2", "DATA_DESC_ID")}
        time_s = tb.getcol("TIME")  # the chunk's span: which of a table's solution times apply
        span = (float(time_s.min()), float(time_s.max()))
        gains, gain_flags = (
            load_gains(caltables, n_ant, [len(f) for f in freqs], freqs, span) if caltables else (None, None)
        )
        has_wspec = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
        dd = layout["DATA_DESC_ID"]
        blocks = {k: np.flatnonzero(dd == k) for k in range(len(spw_of_dd)) if np.any(dd == k)}
        if not all(b[-1] - b[0] + 1 == b.size for b in blocks.values()):
            raise UnsupportedTables(f"{ms_path}: rows of a spectral window are not contiguous")
        order = sorted(blocks, key=lambda k: float(np.min(freqs[spw_of_dd[k]])))  # ascending frequency
        plans, rows, first_rows = _time_averaging_plans(tb, layout, blocks, order, freqs, cfg.max_time_smearing_loss)
    finally:
        tb.close()
    pending = submit_averaging(
        pool,
        ms_path,
        blocks,
        order,
        layout["ANTENNA1"],
        layout["ANTENNA2"],
        has_wspec,
        chan_bin,
        gains,
        gain_flags,
        spw_of_dd,
        plans,
        scratch,
        outside,
        freqs,
    )
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
    loss = merge_loss(rows, blocks, order, [float(np.mean(freqs[spw_of_dd[k]])) for k in order])
    merged = loss is not None and loss <= cfg.max_merge_loss
    if not merged and first_rows is not None:  # each window keeps its own rows: all their columns
        tb.open(ms_path)
        try:
            rows = read_rows(tb, layout)
        finally:
            tb.close()
    reports = [f.result() for f in pending]
    results = [r[0] for r in reports]
    averaged = {k: unstash(paths) for k, (paths, _, _) in zip(order, results, strict=True)}
    n_flag, n_all = (sum(r[i] for r in results) for i in (1, 2))
    binned = binned_channels(freqs, widths, chan_bin)  # (frequencies, widths) of the copy's channels
    window_freqs = [binned[spw_of_dd[k]][0] for k in order]
    parts = windows_as_parts(rows, first_rows, blocks, order, averaged, plans, window_freqs, merged)
    del averaged
    figures = [plans[order[0]].figures] if merged else [plans[k].figures for k in order]
    rows_in, rows_out = (sum(f[key] for f in figures) for key in ("rows_in", "rows_out"))
    time_figures = {
        "rows_kept_fraction": rows_out / max(rows_in, 1),
        "max_time_bin": max(f["max_bin"] for f in figures),
    }
    cell, size = image_grid(parts, cfg)
    noise_over_natural, uv_cells, gridded = None, None, None
    if cfg.weighting == "briggs" and cfg.briggs_in_copy and cell is not None:
        noise_over_natural, uv_cells, gridded = put_briggs_weights(parts, size, cell, cfg.robust, cfg.threads)
    # Whether the imager weights the copy as written (naturally: the copy carries any Briggs weights). Only
    # then is the PSF of the copy's weights the imager's, for the restoring beam and the initial images.
    imaged_as_written = cfg.weighting == "natural" or noise_over_natural is not None
    # the restoring beam from the PSF's main lobe (ImagingConfig.restoring_beam): WSClean's own fit of a
    # sparse chunk's PSF followed its near sidelobes (issue #22)
    wanted_beam = cfg.restoring_beam == "main_lobe" and cell is not None and imaged_as_written
    beam = restoring_beam(parts, size, cell, gridded) if wanted_beam else None
    ot = casatools.table()
    ot.open(out, nomodify=False)
    try:
        ensure_weight_spectrum(ot)
    finally:
        ot.close()
    # written by an averaging worker with python-casacore, while this process grids the initial images
    stashed = [
        (part.rows, stash(f"{scratch}/part{i}", part.data, part.weights, part.flags)) for i, part in enumerate(parts)
    ]
    writing = pool.submit(in_worker, write_rows, out, stashed)
    # contimg.image.gridding weights naturally, so WSClean must (imaged_as_written), and only a well-filled uv
    # plane's exact PSF agrees with WSClean's later residuals (ImagingConfig)
    well_filled = (uv_cells or 0.0) >= cfg.initial_images_min_uv_cells
    wanted = initial_images and cell is not None and imaged_as_written and well_filled
    initial = _initial_images(parts, size, cell, cfg) if wanted else {}
    reports.append(writing.result())
    for name in subtables:  # norows empties the subtables too: bring them over whole
        shutil.rmtree(f"{out}/{name}")
        tb.open(f"{ms_path}/{name}")
        tb.copy(f"{out}/{name}", deep=True, valuecopy=True, returnobject=False)
        tb.close()
    _rewrite_windows(out, binned, [int(spw_of_dd[k]) for k in order] if merged else None)
    return {
        "chan_bin": chan_bin,
        "applied": bool(caltables),
        "flagged_fraction_after_apply": n_flag / max(n_all, 1),
        "merged_spws": merged,
        "merge_loss": loss,
        **time_figures,
        "cell_arcsec": cell,
        "size_px": size,
        "weights_noise_factor": noise_over_natural,
        "effective_uv_cells": uv_cells,
        "restoring_beam": beam,
        "workers_cpu_s": workers_cpu_seconds(reports),
        **initial,
    }


def _time_averaging_plans(
    tb, layout: dict, blocks: dict, order: list, freqs: list, max_loss: float
) -> tuple[dict, dict | None, dict | None]:
    """(plans, rows, first_rows): the time-averaging plan of each window of the product table ``tb``.

    Per window, the plan is the contimg.image.bda.TimeAveraging the workers apply to it (so that they
    hand back a third of the rows), planned from the row columns (ROW_COLUMNS) of the open product table
    ``tb`` for a loss of at most ``max_loss`` at the primary beam's half-power radius. Windows whose
    rows line up share one plan, made from the first window's rows, which are returned as ``first_rows``
    (``rows`` None); otherwise each gets its own, from all the rows, returned as ``rows``
    (``first_rows`` None).
    """
    from contimg.core.beam import fwhm_rad
    from contimg.image.bda import plan_time_averaging

    radius = 0.5 * fwhm_rad(min(float(f.min()) for f in freqs))
    freq_max = max(float(f.max()) for f in freqs)
    if windows_line_up(layout, blocks, order):
        first = blocks[order[0]]
        rows = {c: layout[c][first] if c in layout else tb.getcol(c, int(first[0]), first.size) for c in ROW_COLUMNS}
        plan = plan_time_averaging(rows, freq_max, radius, max_loss)
        return {k: plan for k in order}, None, rows
    rows = read_rows(tb, layout)
    return (
        {
            k: plan_time_averaging({c: v[..., blocks[k]] for c, v in rows.items()}, freq_max, radius, max_loss)
            for k in order
        },
        rows,
        None,
    )


def _initial_images(parts: list, size: int, cell: float, cfg) -> dict:
    """The initial PSF and dirty image of the copy's ``parts``, with the wall and CPU seconds they took.

    They are contimg.image.gridding.channel_images of the ``parts`` (after their imaging weights), one
    per WSClean output channel;
    the CPU seconds are this process's (ducc0's threads).
    """
    from contimg.image.gridding import channel_images

    ts, cs = time.perf_counter(), cpu_seconds()
    grid_parts = [
        (rows["UVW"], freqs, data, weights, flags, rows["ANTENNA1"] != rows["ANTENNA2"])
        for rows, data, weights, flags, freqs in parts
    ]
    # one PSF and dirty image per WSClean output channel (cfg.channels_out), as WSClean names and reads them
    images = channel_images(grid_parts, size, cell, cfg.wgridder_accuracy, cfg.threads, cfg.channels_out)
    return {
        "initial_images": images,
        "initial_images_s": time.perf_counter() - ts,
        "initial_images_cpu_s": cpu_seconds() - cs,
    }


def _rewrite_windows(out: str, binned: list, merged_spws: list | None) -> None:
    """SPECTRAL_WINDOW after averaging (``binned``: contimg.image.parts.binned_channels).

    With ``merged_spws`` (ascending), one window holds them all, and DATA_DESCRIPTION and FEED are
    reduced to it.
    """
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
    """Window ``i`` of the open SPECTRAL_WINDOW ``tb`` given the channel frequencies ``fb`` and widths ``wb`` (Hz)."""
    tb.putcell("NUM_CHAN", i, len(fb))
    tb.putcell("TOTAL_BANDWIDTH", i, float(np.abs(wb).sum()))
    for col, value in (("CHAN_FREQ", fb), ("CHAN_WIDTH", wb), ("EFFECTIVE_BW", np.abs(wb)), ("RESOLUTION", np.abs(wb))):
        tb.putcell(col, i, value)
