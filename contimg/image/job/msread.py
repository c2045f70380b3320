"""What the image job reads from a Measurement Set and its caltables (casatools, in the job's process).

The averaging workers read the visibilities themselves with python-casacore (``workers``); this
module reads the small columns and subtables the job plans with.
"""

from __future__ import annotations

import numpy as np

from contimg.image.job.errors import UnsupportedTables

__all__ = [
    "POINTING_KEYWORD",
    "ROW_COLUMNS",
    "describe_ms",
    "apply_calibration",
    "load_gains",
    "read_rows",
    "read_windows",
]

POINTING_KEYWORD = "CONTIMG_POINTING_DEC_DEG"  # the main table's keyword the converter writes the dish's dec in

# the per-row columns the imaging copy carries over (averaged in time by contimg.image.bda)
ROW_COLUMNS = (
    "UVW",
    "TIME",
    "TIME_CENTROID",
    "INTERVAL",
    "EXPOSURE",
    "ANTENNA1",
    "ANTENNA2",
    "FEED1",
    "FEED2",
    "DATA_DESC_ID",
    "FIELD_ID",
    "SCAN_NUMBER",
    "STATE_ID",
    "ARRAY_ID",
    "OBSERVATION_ID",
    "PROCESSOR_ID",
)


def describe_ms(ms_path: str, with_flags: bool = True) -> dict:
    """What imaging needs from the MS: band, longest baseline, times, flags, pointing.

    Parameters
    ----------
    ms_path : str
        The Measurement Set.
    with_flags : bool
        False skips the FLAG column (a third of a GB at full size): the longest baseline is then
        that of any cross-correlation row, and the flag figures (``flagged_fraction``,
        ``n_unflagged_cross``, ``unflagged_cross_seconds``) are None.

    Returns
    -------
    dict
        ``freq_min_hz``, ``freq_max_hz``, ``freqs_hz`` (every channel), ``channel_width_hz``
        (median), ``interval_s`` (median), ``times_s`` (the rows' distinct TIME values, MJD seconds),
        ``start_mjd``, ``end_mjd``, ``flagged_fraction`` (of the cross-correlations), ``n_unflagged_cross``
        (samples), ``unflagged_cross_seconds`` (samples x their exposure), ``max_baseline_m``, ``n_spw``,
        ``field_ra_deg``, ``field_dec_deg``, ``pointing_dec_deg`` (None when the converter did not record
        it), ``n_cross_rows``, ``n_antennas`` (those with a cross-correlation row).

    Raises
    ------
    RuntimeError
        From casatools, when ``ms_path`` is not a readable table.
    """
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
        "freq_min_hz": float(freqs.min()),
        "freq_max_hz": float(freqs.max()),
        "freqs_hz": freqs,
        "channel_width_hz": float(np.median(np.abs(widths))),
        "interval_s": interval,
        "times_s": np.unique(times),
        "start_mjd": float((times - intervals / 2).min()) / 86400.0,
        "end_mjd": float((times + intervals / 2).max()) / 86400.0,
        "flagged_fraction": None if not with_flags else float(flags[:, :, cross].mean()) if cross.any() else 1.0,
        "n_unflagged_cross": unflagged,
        "unflagged_cross_seconds": unflagged_s,
        "max_baseline_m": float(lengths.max()) if lengths.size else 0.0,
        "n_spw": len(widths_per_spw),
        "field_ra_deg": float(np.degrees(field_dir[0]) % 360.0),
        "field_dec_deg": float(np.degrees(field_dir[1])),
        "pointing_dec_deg": float(pointing) if pointing is not None else None,
        "n_cross_rows": int(np.count_nonzero(cross)),
        "n_antennas": int(np.unique(np.concatenate([a1[cross], a2[cross]])).size),
    }


def read_windows(ms_path: str) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, int]:
    """The spectral windows and the antenna count of ``ms_path``.

    Returns
    -------
    tuple
        (channel frequencies per SPW (Hz), channel widths per SPW (Hz), the SPW of each data
        description, the number of antennas).

    Raises
    ------
    RuntimeError
        From casatools, when a subtable cannot be read.
    """
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
    return freqs, widths, spw_of_dd, n_ant


def read_rows(tb, layout: dict) -> dict:
    """The row columns (ROW_COLUMNS) of the open casatools table ``tb``, reusing those already in ``layout``."""
    return {c: layout[c] if c in layout else tb.getcol(c) for c in ROW_COLUMNS}


def apply_calibration(ms_path: str, caltables: list[str]) -> None:
    """CASA's applycal in place (CORRECTED_DATA): the fallback for tables ``load_gains`` cannot apply.

    Raises
    ------
    RuntimeError
        From casatasks, when applycal fails.
    """
    import casatasks

    casatasks.applycal(
        vis=ms_path,
        gaintable=caltables,
        interp=["linear"] * len(caltables),
        calwt=True,
        applymode="calflag",
        flagbackup=False,
    )


def load_gains(
    caltables: list[str],
    n_ant: int,
    spw_nchan: list[int],
    spw_freqs_hz: list[np.ndarray] | None = None,
    time_range_s: tuple[float, float] | None = None,
) -> tuple[list, list]:
    """Per SPW, the product of the tables' complex gains (n_ant, nchan, npol) and their flags.

    B (per channel) and G (per SPW) tables with one solution per antenna and SPW (solint=inf, as the
    calibration job writes them) apply exactly by division (contimg.image.applycal.fold_solutions).
    K tables (delays, ns) become per-channel phases exp(2 pi i tau (nu - nu_ref)), CASA's K Jones
    (contimg.image.applycal.delay_gains), for which the MS's channel frequencies ``spw_freqs_hz``
    are needed.

    A table with several solution times per antenna and SPW (the calibration job's G, one per ~60 s
    of the calibrator chunk) applies to a chunk whose ``time_range_s`` (MJD seconds, first and last
    TIME) lies wholly before or after them as CASA's linear interpolation does there: the nearest
    solution, constant (contimg.image.applycal.nearest_solutions).

    Raises
    ------
    UnsupportedTables
        When a table is not B, G or K Jones; holds several solutions per antenna and SPW and the
        chunk's times overlap them (or are not given): CASA interpolates those row by row; or is a
        K table and ``spw_freqs_hz`` is not given.
    """
    import casatools

    from contimg.image.applycal import delay_gains, fold_solutions, nearest_solutions

    tb = casatools.table()
    gains = [np.ones((n_ant, n, 2), np.complex64) for n in spw_nchan]
    bad = [np.zeros((n_ant, n, 2), bool) for n in spw_nchan]
    for path in caltables:
        tb.open(path)
        try:
            kind = str(tb.getkeyword("VisCal")) if "VisCal" in tb.keywordnames() else "?"
            if kind not in ("B Jones", "G Jones", "K Jones"):
                raise UnsupportedTables(f"{path}: {kind}")
            col = "FPARAM" if kind == "K Jones" else "CPARAM"
            cparam, flag = tb.getcol(col), tb.getcol("FLAG")  # (npol, nchan, nrow)
            ant, spw, times = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID"), tb.getcol("TIME")
        finally:
            tb.close()
        if len(set(zip(ant.tolist(), spw.tolist(), strict=True))) != len(ant):
            t0, t1 = float(times.min()), float(times.max())
            if time_range_s is None or not (time_range_s[1] < t0 or time_range_s[0] > t1):
                raise UnsupportedTables(
                    f"{path}: several solutions per antenna and SPW ({len(set(times.tolist()))} times) "
                    "over the chunk's own times"
                )
            keep = nearest_solutions(ant, spw, times, after=time_range_s[0] > t1)
            cparam, flag, ant, spw = cparam[:, :, keep], flag[:, :, keep], ant[keep], spw[keep]
        if kind == "K Jones":
            if spw_freqs_hz is None:
                raise UnsupportedTables(f"{path}: a K table needs the MS's channel frequencies")
            tb.open(path + "/SPECTRAL_WINDOW")
            try:  # CASA's K Jones references each SPW's delay phase to the table's CHAN_FREQ
                ref_hz = np.array([tb.getcell("CHAN_FREQ", i)[0] for i in range(tb.nrows())])
            finally:
                tb.close()
            for k in sorted(set(spw.tolist())):
                rows = spw == k
                phasors = delay_gains(cparam[:, 0, rows], np.asarray(spw_freqs_hz[k]), float(ref_hz[k]))
                fold_solutions(
                    gains[k : k + 1],
                    bad[k : k + 1],
                    phasors,
                    np.repeat(flag[:, :1, rows], phasors.shape[1], 1),
                    ant[rows],
                    np.zeros(int(rows.sum()), int),
                )
            for k in set(range(len(gains))) - set(spw.tolist()):
                bad[k][...] = True  # an SPW the delays do not cover stays uncalibrated
            continue
        fold_solutions(gains, bad, cparam, flag, ant, spw)
    return gains, bad
