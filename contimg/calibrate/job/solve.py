"""The CASA solve on a calibrator chunk: average, model, delays, bandpass, gains, quality (child process only).

After ``contimg.calibrate.job.average`` has written the small calibrator-centred MS (time bins of
~60 s), set the model (``ft`` of the calibrator at its apparent flux; with a reference catalogue,
the calibrator and the field's bright sources predicted bin by bin, ``job/model.py``) and solve K
(one delay per antenna over the band), a phase-only G per bin for the bandpass solve only, B (per
channel, one per SPW) and G (amplitude and phase per bin, or once over the chunk when the gains
are steady). By default (``solver='reduced'``, ``job/reduced.py``) the data are summed to one row per
baseline and every step is solved in numpy: K by ``contimg.calibrate.delaysolve``, B and the gains by
``contimg.calibrate.gainsolve``; CASA only writes the tables' templates.
``solver='casa'`` makes every step a CASA call on the binned MS, the previous path (benchmarks and the
cross-check in tests/test_calibrate_reduced.py). The tables are written into a temporary folder beside
``out_dir`` and renamed to it;
``caltables.json`` beside them lists them in apply order (docs/conventions.md, Calibration).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.calibrate.job.average import CALIBRATOR_FRAME, average_at_calibrator
from contimg.calibrate.job.msread import antennas_with_data
from contimg.calibrate.job.quality import bandpass_verdict, flag_cells, plot_bandpass, solution_columns, table_quality
from contimg.calibrate.registry_rules import APPLY_ORDER
from contimg.calibrate.report import CalibrateReport, CalTable, SolveModel, SolvePlan
from contimg.calibrate.solutions import CalibrationError, choose_refant, quality_problems, unsolved_spw_problems

__all__ = ["MIN_BASELINES_PER_ANTENNA", "MIN_SNR", "SOLVERS", "solve"]

SOLVERS = ("reduced", "casa")

MIN_SNR = 3.0  # CASA flags solutions below this SNR
MIN_BASELINES_PER_ANTENNA = 3  # fewer unflagged baselines to an antenna: no solution for it
# Gains drift by tens of degrees within a chunk at DSA-110 (periods of 10-60 min): solved once per
# chunk they decorrelate the bandpass and miss the gain at any one time. The solve averages the data
# in bins of about this long, solves a phase-only gain per bin before the bandpass (applied in the
# bandpass solve only) and the registered amplitude-and-phase gains per bin after it. 60 s: a few
# degrees of drift per bin, ~5 integrations (SNR sqrt(5) x one integration's).
GAIN_SOLINT_S = 60.0
# Gains that move less than this between solutions (in units of the solutions' noise, see
# gain_drift_significance; ~1 for noise alone) are steady: G is re-solved once over the chunk, with
# sqrt(bins) more SNR per solution.
MIN_DRIFT_SIGNIFICANCE = 3.0
MODEL_REF_FREQ = "1.4GHz"  # the catalogue flux's frequency (20 cm), where the spectral index pivots


def _set_point_model(avg: str, work: Path, plan: SolvePlan) -> None:
    """MODEL_DATA of ``avg``: the calibrator as a point source at its position, with the plan's flux and index."""
    import casatasks
    import casatools

    cl = casatools.componentlist()
    cl_path = str(work / "model.cl")
    cl.addcomponent(
        flux=plan.apparent_flux_jy,
        fluxunit="Jy",
        shape="point",
        dir=f"{CALIBRATOR_FRAME} {plan.ra_deg}deg {plan.dec_deg}deg",
        spectrumtype="spectral index",
        index=plan.spectral_index,
        freq=MODEL_REF_FREQ,
    )
    cl.rename(cl_path)
    cl.close()
    casatasks.ft(vis=avg, complist=cl_path, usescratch=True)


def _delay(avg: str, table: str, refant: int) -> None:
    """K: one delay per antenna and polarization over the whole band, written for every SPW.

    CASA's multi-band delay (``combine='spw'``), then ``_spread_over_spws``.

    Over the band (187 MHz) a delay is resolved to a few ps on a calibrator; one SPW alone sees the
    bandpass's phase ripple as a delay of several ns (the simulator's 5 deg ripple per subband is
    +-2.8 ns), which B must keep instead.
    """
    import casatasks

    casatasks.gaincal(
        vis=avg,
        caltable=table,
        solint="inf",
        combine="scan,spw",
        refant=str(refant),
        gaintype="K",
        minsnr=MIN_SNR,
        minblperant=MIN_BASELINES_PER_ANTENNA,
    )
    if not Path(table).exists():
        raise CalibrationError("gaincal (K) produced no table")
    _spread_over_spws(table)


def _spread_over_spws(table: str) -> None:
    """A multi-band K table made to apply to every SPW without an ``spwmap``.

    CASA writes its rows in SPW 0 only, referenced to the band's centre. SPW 0's rows are copied to
    every SPW and every SPW's
    reference frequency (the table's CHAN_FREQ, which CASA's K Jones takes as its reference) set to
    SPW 0's. The registry, CASA's applycal and the image job's numpy path then read it as any table.
    """
    import casatools

    tb = casatools.table()
    tb.open(table + "/SPECTRAL_WINDOW", nomodify=False)
    try:
        n_spw = tb.nrows()
        ref = tb.getcell("CHAN_FREQ", 0)
        for k in range(1, n_spw):
            tb.putcell("CHAN_FREQ", k, ref)
    finally:
        tb.close()
    tb.open(table, nomodify=False)
    try:
        spw = tb.getcol("SPECTRAL_WINDOW_ID")
        if np.any(spw != 0):
            raise CalibrationError(f"{table}: a multi-band delay table with rows outside SPW 0")
        n = tb.nrows()
        columns = {c: tb.getcol(c) for c in tb.colnames() if tb.iscelldefined(c, 0)}
        tb.addrows(n * (n_spw - 1))
        for c, v in columns.items():
            full = np.concatenate([v] * n_spw, axis=-1)
            if c == "SPECTRAL_WINDOW_ID":
                full = np.repeat(np.arange(n_spw), n).astype(v.dtype)
            tb.putcol(c, full)
    finally:
        tb.close()


def _delay_numpy(one: str, red, n_sum, d_sum, order: list[int], table: str, work: Path) -> None:
    """K in numpy (``contimg.calibrate.delaysolve``) on the chunk sums, written as ``_delay`` writes CASA's.

    ``n_sum``, ``d_sum`` (dd, baseline, chan, pol): the model-divided whole-chunk sums (``chunk_sums``)
    of the one-row MS ``one``. The table's template is CASA's K of one channel of ``one`` (~0.7 s; its
    columns, keywords and subtables are CASA's); every SPW gets the band's delays and the band's
    middle as its CHAN_FREQ (the reference), the layout ``_delay`` gives CASA's. Unlike CASA's K
    (SNR and PARAMERR 0, ANTENNA2 -1, INTERVAL 0) the rows carry the fit's SNR and 1-sigma error (ns),
    the reference antenna and the chunk's span, as the B and G tables do.
    """
    import casatasks
    import casatools

    from contimg.calibrate.delaysolve import solve_delays
    from contimg.calibrate.job.reduced import write_gain_table

    spw_of_dd = {int(d): int(k) for d, k in zip(red.dd, red.spw, strict=True)}
    dds = sorted(spw_of_dd)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = [np.where(d_sum[d] > 0, n_sum[d] / np.where(d_sum[d] > 0, d_sum[d], 1), 0) for d in dds]
    sol = solve_delays(
        r,
        [d_sum[d] for d in dds],
        [red.freqs[spw_of_dd[d]] for d in dds],
        red.baselines[:, 0],
        red.baselines[:, 1],
        red.n_ant,
        order,
        min_baselines=MIN_BASELINES_PER_ANTENNA,
        min_snr=MIN_SNR,
    )
    # the template: CASA's K on the one channel with the most weight (0.7 s; on a whole SPW 2.0 CPU s), so
    # that it has data to solve; its rows are replaced below
    weight = np.stack([d_sum[d].sum(axis=(0, 2)) for d in dds])  # (dd, chan)
    i, c = np.unravel_index(np.argmax(weight), weight.shape)
    k_tpl = spw_of_dd[dds[i]]
    template = str(work / "K.template")
    casatasks.gaincal(
        vis=one, caltable=template, spw=f"{k_tpl}:{c}~{c}", solint="inf", refant=str(order[0]), gaintype="K"
    )
    if not Path(template).exists():
        raise CalibrationError("gaincal (the K table's template) produced no table")
    # CASA's multi-band K references its delays to the middle of the band it combined (measured: the
    # mean of the lowest and highest channel frequency); the template's is its one channel's
    every = np.concatenate([np.asarray(red.freqs[spw_of_dd[d]], np.float64) for d in dds])
    ref = np.array([(every.min() + every.max()) / 2])
    f_tpl = np.asarray(red.freqs[k_tpl], np.float64)
    width = np.array([abs(f_tpl[-1] - f_tpl[0]) * len(f_tpl) / max(len(f_tpl) - 1, 1)])  # its SPW's, as CASA's rows
    tb = casatools.table()
    tb.open(template + "/SPECTRAL_WINDOW", nomodify=False)
    try:
        n_spw = tb.nrows()
        for k in range(n_spw):
            tb.putcell("CHAN_FREQ", k, ref)
        for col in ("CHAN_WIDTH", "EFFECTIVE_BW"):
            tb.putcell(col, k_tpl, width)
    finally:
        tb.close()
    t_lo, t_hi = float(np.min(red.time - red.interval / 2)), float(np.max(red.time + red.interval / 2))
    per_spw = [np.broadcast_to(x.T, (n_spw,) + x.T.shape) for x in (sol.delays_ns, sol.flags, sol.snr, sol.errors_ns)]
    write_gain_table(
        template,
        table,
        np.full(n_spw, (t_lo + t_hi) / 2),
        np.full(n_spw, t_hi - t_lo),
        np.arange(n_spw),
        *per_spw[:3],
        np.full(n_spw, sol.refant),
        errors=per_spw[3],
    )


def _phase_only(avg: str, table: str, refant: int, prior_tables: list[str]) -> None:
    """Phase-only gains per time bin (``solint='int'`` on the binned MS), for the bandpass solve only."""
    import casatasks

    casatasks.gaincal(
        vis=avg,
        caltable=table,
        solint="int",
        refant=str(refant),
        calmode="p",
        minsnr=MIN_SNR,
        gaintable=prior_tables,
        minblperant=MIN_BASELINES_PER_ANTENNA,
    )
    if not Path(table).exists():
        raise CalibrationError("gaincal (phase-only) produced no table")


def _bandpass(avg: str, table: str, refant: int, prior_tables: list[str]) -> None:
    import casatasks

    casatasks.bandpass(
        vis=avg,
        caltable=table,
        solint="inf",
        combine="scan",
        refant=str(refant),
        minsnr=MIN_SNR,
        solnorm=False,
        bandtype="B",
        minblperant=MIN_BASELINES_PER_ANTENNA,
        gaintable=prior_tables,
    )
    if not Path(table).exists():
        raise CalibrationError("bandpass produced no table")


def gain_drift_significance(table: str) -> float:
    """How far a time-variable G table's phases move between its solutions, in units of their noise.

    Per antenna, SPW and polarization with 3 or more unflagged solutions: the rms of the phase
    differences between consecutive solutions over sqrt(2) x the noise of one (1 / SNR, radians);
    the median of those. About 1 for steady gains and noise alone; more as they drift.
    """
    import casatools

    tb = casatools.table()
    tb.open(table)
    try:
        g, f, snr = tb.getcol("CPARAM"), tb.getcol("FLAG"), tb.getcol("SNR")
        ant, spw, t = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID"), tb.getcol("TIME")
    finally:
        tb.close()
    ratios = []
    for key in set(zip(ant.tolist(), spw.tolist(), strict=True)):
        rows = np.flatnonzero((ant == key[0]) & (spw == key[1]))
        rows = rows[np.argsort(t[rows])]
        for p in range(g.shape[0]):
            ok = rows[~f[p, 0, rows] & (snr[p, 0, rows] > 0)]
            if len(ok) < 3:
                continue
            dphi = np.diff(np.unwrap(np.angle(g[p, 0, ok])))
            noise = np.sqrt(2) / np.median(snr[p, 0, ok])
            ratios.append(np.sqrt(np.mean(dphi**2)) / noise)
    return float(np.median(ratios)) if ratios else 0.0


def _gaincal(avg: str, table: str, refant: int, prior_tables: list[str], solint: str) -> None:
    import casatasks

    casatasks.gaincal(
        vis=avg,
        caltable=table,
        solint=solint,
        combine="scan",
        refant=str(refant),
        calmode="ap",
        minsnr=MIN_SNR,
        gaintable=prior_tables,
        minblperant=MIN_BASELINES_PER_ANTENNA,
    )
    if not Path(table).exists():
        raise CalibrationError("gaincal produced no table")


def _solver_params(rfi: bool, solver: str = "casa") -> dict:
    """What the registry records about how the set was solved."""
    gains = "casa on the binned MS" if solver == "casa" else "B and G: numpy StEFCal (contimg.calibrate.gainsolve)"
    return {
        "solver": solver,
        "gain_solver": gains,
        "delay": {"solint": "inf", "combine": "scan,spw", "gaintype": "K", "minsnr": MIN_SNR}
        if solver == "casa"
        else {"solver": "numpy multi-band (contimg.calibrate.delaysolve)", "minsnr": MIN_SNR},
        "bandpass": {"solint": "inf", "minsnr": MIN_SNR, "bandtype": "B"},
        "pre_bandpass_phase": {"solint_s": GAIN_SOLINT_S, "calmode": "p", "minsnr": MIN_SNR, "applied": "bandpass"},
        "gaincal": {"solint_s": GAIN_SOLINT_S, "calmode": "ap", "minsnr": MIN_SNR},
        "rfi": "contimg.calibrate.rfi 5 sigma, grow 0.5" if rfi else "off",
    }


# Field sources from the reference catalogue join the model when they lie within this radius of the
# calibrator (the primary beam's first null is 3.3 deg at 1.31 GHz) and are brighter than this fraction of
# its apparent flux through the beam at the chunk's middle, the brightest first, at most MAX_FIELD_SOURCES.
# A source costs the model ~0.03 CPU s since it became per-antenna phasors (job/model.py). Measured on the
# full-size counts sky (benchmarks/field_model.py, docs/benchmarks.md "Field model"): K x B x G at mid-chunk
# 0.499 % / 0.625 deg median with 30 field sources, 0.489 % / 0.617 deg with 100, 0.485 % / 0.614 deg with
# 300 (model 3.8, 7.4, 10.2 CPU s). The catalogue's sources within 3.5 deg sum to 109 % of the calibrator's
# apparent flux; the brightest 30 to 57 %, 100 to 78 % (~3 CPU s more), 300 to 95 % for a gain in the noise.
FIELD_RADIUS_DEG = 3.5
FIELD_MIN_APPARENT_FRACTION = 0.001
MAX_FIELD_SOURCES = 100


def _field(plan: SolvePlan, reference, pointing_dec_deg: float) -> list[tuple]:
    """The model's sources: the calibrator, then the catalogue's brightest apparent ones near it.

    ``reference``: a :class:`contimg.core.refcat.ReferenceCatalog`, or None (the calibrator alone).
    """
    from contimg.calibrate.job.model import drift_averaged_beams
    from contimg.calibrate.refcat import field_sources

    cal = (plan.ra_deg, plan.dec_deg, plan.flux_jy, plan.intrinsic_spectral_index, 0.0, 0.0, 0.0)
    if reference is None:
        return [cal]
    near = field_sources(
        reference, plan.ra_deg, plan.dec_deg, radius_deg=FIELD_RADIUS_DEG, min_flux_jy=0.0, exclude_within_deg=1 / 60
    )
    if not len(near):
        return [cal]
    t0, t1 = plan.transit_mjd - 1e-3, plan.transit_mjd + 1e-3
    seen = drift_averaged_beams([s.ra_deg for s in near], [s.dec_deg for s in near], t0, t1, pointing_dec_deg)
    bright = []
    for s, beam in zip(near, seen, strict=True):
        apparent = s.flux_jy * beam
        if apparent >= FIELD_MIN_APPARENT_FRACTION * plan.apparent_flux_jy:
            shape = (s.maj_arcsec, s.min_arcsec or s.maj_arcsec, s.pa_deg)
            bright.append((apparent, (s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index, *shape)))
    bright.sort(key=lambda x: -x[0])
    return [cal] + [b[1] for b in bright[:MAX_FIELD_SOURCES]]


def _add_model_column(avg: str) -> None:
    """An empty MODEL_DATA column in ``avg``, shaped like DATA, for the numpy model to fill."""
    import casatools

    tb = casatools.table()
    tb.open(avg, nomodify=False)
    try:
        if "MODEL_DATA" not in tb.colnames():
            desc = dict(tb.getcoldesc("DATA"), dataManagerGroup="Tiled_MODEL_DATA")
            spec = {"TYPE": "TiledShapeStMan", "NAME": "Tiled_MODEL_DATA", "SPEC": {}, "COLUMNS": ["MODEL_DATA"]}
            tb.addcols({"MODEL_DATA": desc}, {"*1": spec})
    finally:
        tb.close()


def _solve_reduced(avg, work, refant, refants, k_table, b_table, g_table, timings) -> None:
    """K, B and the per-bin gains in numpy on the chunk summed to one row per baseline and SPW.

    The steps of ``contimg.calibrate.job.reduced``; the K, B and G tables keep CASA's layout (their
    templates are CASA's ``gaincal`` K, ``bandpass`` and ``gaincal`` of one SPW on the one-row MS).
    """
    import casatasks

    from contimg.calibrate.gainsolve import GainSolution, phase_step_ratios, solve_gains
    from contimg.calibrate.job.reduced import (
        chunk_sums,
        corrected_channel_sums,
        per_group,
        read_reduced,
        write_gain_table,
        write_one_row_ms,
    )
    from contimg.image.job.msread import load_gains

    t = time.perf_counter()
    red = read_reduced(avg)
    nchans = [len(f) for f in red.freqs]
    order = [refant] + [a for a in refants if a != refant]
    a1b, a2b = red.baselines[:, 0], red.baselines[:, 1]
    one = str(work / "one.ms")
    first, n_sum, d_sum = chunk_sums(red, red.num, red.den)
    write_one_row_ms(avg, one, red, first, n_sum, d_sum)
    timings["reduce"] = time.perf_counter() - t

    t = time.perf_counter()
    _delay_numpy(one, red, n_sum, d_sum, order, k_table, work)
    timings["delay"] = time.perf_counter() - t

    def group_solve(gains, bad, phase_only):
        num, den = corrected_channel_sums(red, gains, bad)  # (row, pol): one value per baseline, bin and SPW
        with np.errstate(invalid="ignore", divide="ignore"):
            r, w = np.where(den > 0, num / np.where(den > 0, den, 1), 0), den
        sol = solve_gains(
            np.moveaxis(per_group(red, r), 2, 1),
            np.moveaxis(per_group(red, w), 2, 1),
            a1b,
            a2b,
            red.n_ant,
            order,
            phase_only=phase_only,
            min_baselines=MIN_BASELINES_PER_ANTENNA,
            min_snr=MIN_SNR,
        )  # (group, pol, ant)
        return sol, num, den

    t = time.perf_counter()
    k_gains, k_bad = load_gains([k_table], red.n_ant, nchans, red.freqs)
    gp, _, _ = group_solve(k_gains, k_bad, phase_only=True)
    gi, gj = gp.gains[red.group, :, red.a1], gp.gains[red.group, :, red.a2]  # (row, pol)
    ok = ~(gp.flags[red.group, :, red.a1] | gp.flags[red.group, :, red.a2])
    factor = np.where(ok, np.conj(gi) * gj, 0)  # unit phasors; 0: a flagged phase flags the data (calflag)
    first, n_sum, d_sum = chunk_sums(red, red.num, red.den, factor=factor)
    write_one_row_ms(avg, one, red, first, n_sum, d_sum)
    timings["pre_bandpass_phase"] = time.perf_counter() - t

    t = time.perf_counter()
    # B per channel in numpy on the K-corrected whole-chunk sums (CASA's per-channel solver took most of
    # the reduced solve); CASA's bandpass on one SPW gives the table's template
    spw_of_dd = {int(d): int(k) for d, k in zip(red.dd, red.spw, strict=True)}
    dds = sorted(spw_of_dd)
    b_n, b_d = n_sum[dds], d_sum[dds]  # (dd, bl, chan, pol)
    for i, d in enumerate(dds):
        k = spw_of_dd[d]
        ok = ~(k_bad[k][a1b] | k_bad[k][a2b])
        b_n[i] = np.where(ok, b_n[i] * np.conj(k_gains[k][a1b]) * k_gains[k][a2b], 0)
        b_d[i] = np.where(ok, b_d[i], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rb = np.where(b_d > 0, b_n / np.where(b_d > 0, b_d, 1), 0)
    parts = [  # one SPW at a time: the batch's (chan, pol, ant, ant) matrices of all 16 would be ~1 GB
        solve_gains(
            np.moveaxis(rb[i], 0, 2),
            np.moveaxis(b_d[i], 0, 2),
            a1b,
            a2b,
            red.n_ant,
            order,
            min_baselines=MIN_BASELINES_PER_ANTENNA,
            min_snr=MIN_SNR,
        )
        for i in range(len(dds))
    ]  # each (chan, pol, ant)
    bs = GainSolution(*(np.stack([getattr(p, a) for p in parts]) for a in ("gains", "flags", "snr", "refant")))
    b_template = str(work / "B.template")
    casatasks.bandpass(
        vis=one, caltable=b_template, spw="0", solint="inf", combine="scan", refant=str(refant), bandtype="B"
    )
    if not Path(b_template).exists():
        raise CalibrationError("bandpass (the B table's template) produced no table")
    t_lo, t_hi = float(np.min(red.time - red.interval / 2)), float(np.max(red.time + red.interval / 2))
    write_gain_table(
        b_template,
        b_table,
        np.full(len(dds), (t_lo + t_hi) / 2),
        np.full(len(dds), t_hi - t_lo),
        np.array([spw_of_dd[d] for d in dds]),
        np.moveaxis(bs.gains, 3, 1),  # (dd, ant, chan, pol)
        np.moveaxis(bs.flags, 3, 1),
        np.moveaxis(bs.snr, 3, 1),
        np.maximum(bs.refant[:, 0, 0], 0),
    )
    timings["bandpass"] = time.perf_counter() - t

    t = time.perf_counter()
    kb_gains, kb_bad = load_gains([k_table, b_table], red.n_ant, nchans, red.freqs)
    g, num, den = group_solve(kb_gains, kb_bad, phase_only=False)
    spw_of_group = red.spw[np.unique(red.group, return_index=True)[1]]
    g_dd = red.groups[:, 0].astype(int)
    ratios = []
    for d in np.unique(g_dd):  # each SPW's solutions in time order (groups are sorted by dd, then time)
        sel = np.flatnonzero(g_dd == d)
        ratios.append(phase_step_ratios(g.gains[sel], g.flags[sel], g.snr[sel]))
    ratios = np.concatenate(ratios)
    drift = float(np.median(ratios)) if ratios.size else 0.0
    if drift < MIN_DRIFT_SIGNIFICANCE:  # steady gains: one solution for the chunk has the most SNR
        _, n_sum, d_sum = chunk_sums(red, num, den)  # the channel sums summed over the bins: (dd, bl, pol)
        with np.errstate(invalid="ignore", divide="ignore"):
            r, w = np.where(d_sum > 0, n_sum / np.where(d_sum > 0, d_sum, 1), 0), d_sum
        g = solve_gains(
            np.moveaxis(r, 2, 1),
            np.moveaxis(w, 2, 1),
            a1b,
            a2b,
            red.n_ant,
            order,
            min_baselines=MIN_BASELINES_PER_ANTENNA,
            min_snr=MIN_SNR,
        )
        spw_of_dd = {int(d): int(k) for d, k in zip(red.dd, red.spw, strict=True)}
        sols = [d for d in range(r.shape[0]) if d in spw_of_dd]
        times, spans = np.full(len(sols), (t_lo + t_hi) / 2), np.full(len(sols), t_hi - t_lo)
        spws = [spw_of_dd[d] for d in sols]
        gains, flags, snr, refs = (x[sols] for x in (g.gains, g.flags, g.snr, g.refant))
    else:
        first_of_group = np.unique(red.group, return_index=True)[1]
        times, spans, spws = red.time[first_of_group], red.interval[first_of_group], spw_of_group
        gains, flags, snr, refs = g.gains, g.flags, g.snr, g.refant
    print(f"gains: drift significance {drift:.1f}; {len(times)} solutions per antenna and polarization")
    template = str(work / "G.template")
    casatasks.gaincal(vis=one, caltable=template, solint="inf", spw="0", refant=str(refant), calmode="ap")
    if not Path(template).exists():
        raise CalibrationError("gaincal (the G table's template) produced no table")
    order_rows = np.lexsort((spws, times))  # CASA's order: by time, then SPW
    write_gain_table(
        template,
        g_table,
        np.asarray(times)[order_rows],
        np.asarray(spans)[order_rows],
        np.asarray(spws)[order_rows],
        np.moveaxis(gains, 1, 2)[order_rows],
        np.moveaxis(flags, 1, 2)[order_rows],
        np.moveaxis(snr, 1, 2)[order_rows],
        np.maximum(np.asarray(refs)[order_rows, 0], 0),
    )
    timings["gaincal"] = time.perf_counter() - t


def _solve_casa(avg, work, refant, k_table, b_table, g_table, set_name, timings) -> None:
    """K, the pre-bandpass phases, B and G, each a CASA call on the binned ``avg`` (the previous path)."""
    t = time.perf_counter()
    _delay(avg, k_table, refant)
    timings["delay"] = time.perf_counter() - t
    t = time.perf_counter()
    p_table = str(work / f"{set_name}.Gp")  # not part of the set: it only steadies the bandpass solve
    _phase_only(avg, p_table, refant, [k_table])
    timings["pre_bandpass_phase"] = time.perf_counter() - t
    t = time.perf_counter()
    _bandpass(avg, b_table, refant, [k_table, p_table])
    timings["bandpass"] = time.perf_counter() - t
    t = time.perf_counter()
    _gaincal(avg, g_table, refant, [k_table, b_table], "int")
    drift = gain_drift_significance(g_table)
    if drift < MIN_DRIFT_SIGNIFICANCE:  # steady gains: one solution for the chunk has the most SNR
        shutil.rmtree(g_table)
        _gaincal(avg, g_table, refant, [k_table, b_table], "inf")
    timings["gaincal"] = time.perf_counter() - t


def solve(
    ms: str,
    out_dir: str,
    plan: SolvePlan,
    *,
    refants: list[int],
    set_name: str,
    rfi: bool = True,
    reference=None,
    pointing_dec_deg: float | None = None,
    solver: str = "reduced",
) -> CalibrateReport:
    """Solve B and G tables for ``set_name`` on the calibrator of ``plan`` in ``ms``; write them to ``out_dir``.

    ``out_dir`` is replaced whole, only once the tables, plot and ``caltables.json`` are complete.
    ``solver``: ``reduced`` (the chunk summed to one row per baseline, K, B and the gains in numpy:
    ``_solve_reduced``) or ``casa`` (every step a CASA call on the binned MS: the previous path,
    kept for the benchmark's comparison and as the independent check of the reduced one).

    Raises
    ------
    CalibrationError
        If the chunk has no cross-correlations, its UVW column cannot be trusted, or CASA
        produces no table.
    """
    import casatasks

    if solver not in SOLVERS:
        raise CalibrationError(f"unknown solver {solver!r}; one of {SOLVERS}")
    timings = {}
    out = Path(out_dir).absolute()
    ms = str(Path(ms).absolute())  # the job changes directory below
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chdir(work)  # CASA drops scratch tables in the working directory
    try:
        t = time.perf_counter()
        avg = str(work / "avg.ms")
        flagging = average_at_calibrator(ms, avg, plan.ra_deg, plan.dec_deg, rfi=rfi, solint_s=GAIN_SOLINT_S)
        timings["flag_shift_average"] = time.perf_counter() - t  # one read of DATA
        t = time.perf_counter()
        if pointing_dec_deg is None:  # the calibrator alone at its drift-averaged flux
            _set_point_model(avg, work, plan)
        else:  # bin by bin: the beam at each bin's time, and the catalogue's field
            from contimg.calibrate.job.model import write_field_model

            _add_model_column(avg)  # write_field_model fills it: CASA's ft of the calibrator first was a wasted pass

            # per-bin gains would otherwise absorb the calibrator's beam (3-4 % between the chunk's middle and
            # its ends), and the image job applies the nearest bin's gain to other chunks
            field = _field(plan, reference, pointing_dec_deg)
            write_field_model(avg, field, (plan.ra_deg, plan.dec_deg), pointing_dec_deg)
            print(f"model: the calibrator and {len(field) - 1} field sources from the reference catalogue")
        timings["model"] = time.perf_counter() - t
        present = antennas_with_data(avg)
        refant = choose_refant(refants, present)
        tables_dir = work / "tables"
        tables_dir.mkdir()
        k_table = str(tables_dir / f"{set_name}.K")
        b_table = str(tables_dir / f"{set_name}.B")
        g_table = str(tables_dir / f"{set_name}.G")
        if solver == "casa":
            _solve_casa(avg, work, refant, k_table, b_table, g_table, set_name, timings)
        else:
            _solve_reduced(avg, work, refant, refants, k_table, b_table, g_table, timings)
        t = time.perf_counter()
        bp_qa = bandpass_verdict(b_table, present)  # smoothness and per-antenna outliers gate the set too
        flag_cells(b_table, bp_qa.outlier_cells)  # and an outlier (antenna, spw) is not applied
        quality = {
            kind: table_quality(path, present) for kind, path in (("K", k_table), ("B", b_table), ("G", g_table))
        }
        problems = quality_problems(quality) + bp_qa.problems
        problems += unsolved_spw_problems(
            {k: solution_columns(t) for k, t in (("B", b_table), ("G", g_table))}, present
        )
        plot_bandpass(b_table, tables_dir / f"{set_name}.bandpass.png", present, bp_qa)
        timings["quality_plot"] = time.perf_counter() - t
        report = CalibrateReport(
            set_name=set_name,
            calibrator=plan.name,
            refant=refant,
            tables=[
                CalTable(
                    name=f"{set_name}.{kind}",
                    type=kind,
                    order=APPLY_ORDER[kind],
                    quality=quality[kind],
                    path=str(out / f"{set_name}.{kind}"),
                )
                for kind in ("K", "B", "G")
            ],
            model=SolveModel(
                flux_jy=plan.apparent_flux_jy,
                spectral_index=plan.spectral_index,
                ra_deg=plan.ra_deg,
                dec_deg=plan.dec_deg,
            ),
            quality_ok=not problems,
            problems=problems,
            out_dir=str(out),
            source_ms=ms,
            bandpass_png=str(out / f"{set_name}.bandpass.png"),
            bandpass_qa=bp_qa,
            timings_s=timings,
            solver_version=f"casatasks {casatasks.version_string()}; contimg {__version__}",
            solver_params=_solver_params(rfi, solver),
            flagging=flagging,
            plan=plan,
        )
        (tables_dir / "caltables.json").write_text(json.dumps(report.set_index(), indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tables_dir, out)
    finally:
        os.chdir(out.parent)  # never leave CASA in a deleted directory (it asserts getcwd at exit)
        shutil.rmtree(work, ignore_errors=True)
    return report
