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
        (median), ``interval_s`` (median), ``start_mjd``, ``end_mjd``, ``flagged_fraction`` (of the
        cross-correlations), ``n_unflagged_cross`` (samples), ``unflagged_cross_seconds`` (samples x
        their exposure), ``max_baseline_m``, ``n_spw``, ``field_ra_deg``, ``field_dec_deg``,
        ``pointing_dec_deg`` (None when the converter did not record it).

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


def load_gains(caltables: list[str], n_ant: int, spw_nchan: list[int]) -> tuple[list, list]:
    """Per SPW, the product of the tables' complex gains (n_ant, nchan, npol) and their flags.

    B (per channel) and G (per SPW) tables with one solution per antenna and SPW (solint=inf, as the
    calibration job writes them) apply exactly by division (contimg.image.applycal.fold_solutions).

    Raises
    ------
    UnsupportedTables
        When a table is neither B nor G Jones, or holds several solutions per antenna and SPW: its
        application needs CASA's interpolation.
    """
    import casatools

    from contimg.image.applycal import fold_solutions

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
        if len(set(zip(ant.tolist(), spw.tolist(), strict=True))) != len(ant):
            raise UnsupportedTables(f"{path}: several solutions per antenna and SPW ({len(set(times.tolist()))} times)")
        fold_solutions(gains, bad, cparam, flag, ant, spw)
    return gains, bad
