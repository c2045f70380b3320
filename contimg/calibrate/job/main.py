"""Child job: solve bandpass and gain tables on a calibrator chunk (casatools/casatasks only).

    python -m contimg.calibrate.job CHUNK.ms --out DIR --calibrator NAME --ra-deg X --dec-deg Y
           --flux-jy S [--spectral-index A] [--refant LIST] [--set-name NAME] [--report R.json]

Steps, in one read of DATA (the product MS is never modified): per spectral window, rotate the
visibilities to the calibrator's true position (a 54' offset from the phase centre once cost
upstream 73% of its bandpass solutions), flag autocorrelations, zeros, NaNs and RFI (robust
time-frequency outliers, ``contimg.calibrate.rfi``), and average over the chunk (solint is inf and the
calibrator is now at the centre, so nothing decorrelates), into a small MS of one row per baseline
and SPW whose field is the calibrator. Then set a point-source model of the apparent flux
(catalogue flux x spectral index x the primary beam averaged over the drift, computed by the
caller) and solve B (per channel, one per SPW) then G (amplitude and phase, with B applied).
The tables are written into a temporary folder and
renamed to DIR; ``caltables.json`` beside them lists them in apply order.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.childjobs.report import report

# Quality thresholds: a set failing any of them is registered as failed and never applied.
MAX_FLAGGED_FRACTION = 0.5  # of bandpass solutions on antennas with data
MIN_MEDIAN_SNR = 5.0


class CalibrationError(RuntimeError):
    pass


def _antennas_with_data(ms: str) -> list[int]:
    import casatools

    tb = casatools.table()
    tb.open(ms)
    a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
    flag_row = tb.getcol("FLAG_ROW")
    tb.close()
    cross = (a1 != a2) & ~flag_row
    return sorted(set(a1[cross].tolist()) | set(a2[cross].tolist()))


def _time_span(ms: str) -> dict:
    """Start/end MJD and the pointing declination keyword (reads two small columns, not the data)."""
    import casatools

    tb = casatools.table()
    tb.open(ms)
    try:
        times, interval = tb.getcol("TIME"), tb.getcol("INTERVAL")
        pointing = tb.getkeywords().get("CONTIMG_POINTING_DEC_DEG")
    finally:
        tb.close()
    half = float(np.median(interval)) / 2
    return {"start_mjd": (times.min() - half) / 86400.0, "end_mjd": (times.max() + half) / 86400.0,
            "pointing_dec_deg": float(pointing) if pointing is not None else None}


def choose_refant(preferred: list[int], present: list[int]) -> int:
    """The first preferred antenna (0-based id) that has data, else the first antenna with data."""
    for a in preferred:
        if a in present:
            return a
    if not present:
        raise CalibrationError("no antenna has unflagged cross-correlations")
    return present[0]


def _table_quality(table: str, present: list[int]) -> dict:
    import casatools

    tb = casatools.table()
    tb.open(table)
    gains = tb.getcol("CPARAM")
    flags = tb.getcol("FLAG")
    snr = tb.getcol("SNR")
    ant = tb.getcol("ANTENNA1")
    tb.close()
    rows = np.isin(ant, present)  # the table has rows for every antenna of the array, most without data
    gains, flags, snr, ant = gains[:, :, rows], flags[:, :, rows], snr[:, :, rows], ant[rows]
    good = ~flags
    amp = np.abs(gains[good])
    phase = np.degrees(np.angle(gains[good]))
    return {"flagged_fraction": float(flags.mean()), "median_snr": float(np.median(snr[good])) if good.any() else 0.0,
            "amp_scatter": float(np.std(amp) / np.mean(amp)) if amp.size else None,
            "phase_scatter_deg": float(np.std(phase)) if phase.size else None, "n_antennas": int(len(set(ant.tolist())))}


def plot_bandpass(table: str, png: Path) -> None:
    import casatools
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tb = casatools.table()
    tb.open(table)
    gains, flags, spw = tb.getcol("CPARAM"), tb.getcol("FLAG"), tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(table + "/SPECTRAL_WINDOW")
    freqs = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
    tb.close()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for row in range(gains.shape[2]):
        f = freqs[spw[row]] / 1e6
        g = np.where(flags[0, :, row], np.nan, gains[0, :, row])
        ax1.plot(f, np.abs(g), ",", color="k", alpha=0.5)
        ax2.plot(f, np.degrees(np.angle(g)), ",", color="k", alpha=0.5)
    ax1.set_ylabel("|B| (X)")
    ax2.set_ylabel("phase (deg)")
    ax2.set_xlabel("frequency (MHz)")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def _antenna_uvw(me, qa, rel_xyz: np.ndarray, time_s: float, ra_rad: float, dec_rad: float) -> np.ndarray:
    """Per-antenna uvw (nant, 3) in metres for phase centre (ra, dec) at ``time_s`` (MJD seconds, UTC)."""
    me.doframe(me.epoch("UTC", qa.quantity(time_s, "s")))
    me.doframe(me.direction("J2000", qa.quantity(ra_rad, "rad"), qa.quantity(dec_rad, "rad")))
    b = me.baseline("ITRF", qa.quantity(rel_xyz[:, 0], "m"), qa.quantity(rel_xyz[:, 1], "m"),
                    qa.quantity(rel_xyz[:, 2], "m"))
    return np.array(me.touvw(b)[1]["value"]).reshape(-1, 3)


def _ms_geometry(ms: str) -> dict:
    """What every SPW worker needs: antenna positions, phase centre, SPW of each data description,
    channel frequencies, observatory, and which rows hold each data description."""
    import casatools

    tb = casatools.table()
    out = {}
    for sub, col in (("ANTENNA", "POSITION"), ("FIELD", "PHASE_DIR"), ("DATA_DESCRIPTION", "SPECTRAL_WINDOW_ID")):
        tb.open(f"{ms}/{sub}")
        out[col] = tb.getcol(col)
        tb.close()
    tb.open(ms + "/SPECTRAL_WINDOW")
    out["freqs"] = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
    tb.close()
    tb.open(ms + "/OBSERVATION")
    out["telescope"] = str(tb.getcell("TELESCOPE_NAME", 0))
    tb.close()
    tb.open(ms)
    out["has_wspec"] = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
    dd_all = tb.getcol("DATA_DESC_ID")
    tb.close()
    out["blocks"] = {dd: np.flatnonzero(dd_all == dd) for dd in range(len(out["SPECTRAL_WINDOW_ID"]))}
    return out


def _spw_average(ms: str, dd: int, geo: dict, ra_deg: float, dec_deg: float, rfi: bool) -> dict | None:
    """One data description: read, phase to (ra, dec), flag, average in time (runs in a worker process)."""
    import casatools

    from contimg.calibrate.calavg import average_in_time, grid_index, rotate_to
    from contimg.calibrate.rfi import flag_outliers

    block = geo["blocks"][dd]
    if block.size == 0:
        return None
    tb, me, qa = casatools.table(), casatools.measures(), casatools.quanta()
    me.doframe(me.observatory(geo["telescope"]))
    pos = geo["POSITION"].T
    rel = pos - pos.mean(axis=0)  # baselines only need differences; keeps the numbers small
    ra0, dec0 = geo["PHASE_DIR"][:, 0, 0]
    ra_c, dec_c = np.radians(ra_deg), np.radians(dec_deg)
    tb.open(ms)
    contiguous = bool(block[-1] - block[0] + 1 == block.size)  # contimg's layout: one block per SPW
    src = tb if contiguous else tb.selectrows(block.tolist())
    try:
        def read(col):
            return src.getcol(col, int(block[0]), int(block.size)) if contiguous else src.getcol(col)

        a1, a2 = read("ANTENNA1"), read("ANTENNA2")
        cross = a1 != a2
        rows, a1, a2 = block[cross], a1[cross], a2[cross]
        data = np.transpose(read("DATA"), (2, 1, 0))[cross]  # (nrow, nchan, npol)
        flags = np.transpose(read("FLAG"), (2, 1, 0))[cross]
        if geo["has_wspec"]:
            weight = np.transpose(read("WEIGHT_SPECTRUM"), (2, 1, 0))[cross]
        else:
            weight = np.broadcast_to(read("WEIGHT").T[cross][:, None, :], data.shape)
        time_s, uvw_col = read("TIME")[cross], read("UVW").T[cross]
    finally:
        if not contiguous:
            src.close()
        tb.close()
    if rows.size == 0:
        return None
    times, t_idx, baselines, b_idx, first = grid_index(time_s, a1, a2)
    dw, uvw_dev = np.empty(len(rows)), 0.0
    for i, t in enumerate(times):
        sel = t_idx == i
        u0 = _antenna_uvw(me, qa, rel, t, ra0, dec0)
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
        grid_flags = np.ones(amp.shape, bool)
        grid_flags[t_idx, b_idx] = flags
        new = flag_outliers(amp, grid_flags)[t_idx, b_idx]
        n_rfi = int(np.count_nonzero(new & ~flags))
        flags = new
    vis, wsum = average_in_time(data, weight, flags, b_idx, len(baselines))
    mid = float(times.mean())
    uc = _antenna_uvw(me, qa, rel, mid, ra_c, dec_c)
    span = float(times.max() - times.min()) + float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return dict(dd=dd, rows=rows[first], vis=vis, wsum=wsum, uvw=uc[baselines[:, 0]] - uc[baselines[:, 1]],
                time=mid, span=span, baselines=baselines, samples=flags.size, flagged_before=n_before,
                flagged_rfi=n_rfi, uvw_dev=uvw_dev)


def average_at_calibrator(ms: str, avg: str, ra_deg: float, dec_deg: float, *, rfi: bool = True,
                          workers: int = 2) -> dict:
    """Write ``avg``: one row per cross baseline and SPW, the chunk's data phased to (ra, dec) and
    time-averaged after flagging; its FIELD is the calibrator. Returns flagging figures.

    The SPWs are independent: ``workers`` processes (the machine's cores) take them in turn.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    geo = _ms_geometry(ms)
    dds = list(geo["blocks"])
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            found = list(pool.map(_spw_average, *zip(*[(ms, dd, geo, ra_deg, dec_deg, rfi) for dd in dds])))
    else:
        found = [_spw_average(ms, dd, geo, ra_deg, dec_deg, rfi) for dd in dds]
    results = {r["dd"]: r for r in found if r is not None}
    if not results:
        raise CalibrationError(f"{ms}: no cross-correlation rows")
    uvw_dev = max(r["uvw_dev"] for r in results.values())
    if uvw_dev > 0.01:
        raise CalibrationError(f"{ms}: the UVW column differs from CASA's uvw for its phase centre by "
                               f"{uvw_dev:.3f} m; not a Measurement Set this job can phase-shift")
    _write_averaged_ms(ms, avg, results, np.radians(ra_deg), np.radians(dec_deg))
    n = max(sum(r["samples"] for r in results.values()), 1)
    return {"flagged_fraction_input": sum(r["flagged_before"] for r in results.values()) / n,
            "rfi_flagged_fraction": sum(r["flagged_rfi"] for r in results.values()) / n,
            "uvw_column_vs_casa_m": uvw_dev}


def _write_averaged_ms(ms: str, avg: str, results: dict, ra_c: float, dec_c: float) -> None:
    """A copy of one row per baseline and SPW of ``ms``, filled with the averages; FIELD = the calibrator."""
    import casatools

    from contimg.calibrate.calavg import sigma_from_weight
    from contimg.childjobs.mscolumns import ensure_weight_spectrum

    tb = casatools.table()
    tb.open(ms)
    try:
        ref = tb.selectrows(np.concatenate([r["rows"] for r in results.values()]).tolist())
        ref.copy(avg, deep=True, valuecopy=True, returnobject=False)
        ref.close()
    finally:
        tb.close()
    tb.open(avg, nomodify=False)
    try:
        dd_col, a1, a2 = tb.getcol("DATA_DESC_ID"), tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        nrow = len(dd_col)
        first = next(iter(results.values()))
        vis = np.zeros((nrow,) + first["vis"].shape[1:], np.complex64)
        wsum = np.zeros(vis.shape, np.float32)
        uvw, t_mid, span = np.zeros((nrow, 3)), np.zeros(nrow), np.zeros(nrow)
        for dd, r in results.items():
            lookup = {(int(x), int(y)): i for i, (x, y) in enumerate(r["baselines"])}
            rows = np.flatnonzero(dd_col == dd)
            idx = np.array([lookup[(int(a1[k]), int(a2[k]))] for k in rows], dtype=int)
            vis[rows], wsum[rows], uvw[rows] = r["vis"][idx], r["wsum"][idx], r["uvw"][idx]
            t_mid[rows], span[rows] = r["time"], r["span"]
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
    tb.close()


def solve(ms: str, out_dir: str, *, calibrator: str, ra_deg: float, dec_deg: float, flux_jy: float,
          spectral_index: float, refants: list[int], set_name: str, rfi: bool = True) -> dict:
    import casatasks
    import casatools

    timings = {}
    out = Path(out_dir).absolute()
    ms = str(Path(ms).absolute())  # the job changes directory below
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chdir(work)  # CASA drops scratch tables in the working directory
    try:
        t = time.perf_counter()
        avg = str(work / "avg.ms")
        flag_stats = average_at_calibrator(ms, avg, ra_deg, dec_deg, rfi=rfi)
        timings["flag_shift_average"] = time.perf_counter() - t  # one read of DATA
        t = time.perf_counter()
        cl = casatools.componentlist()
        cl_path = str(work / "model.cl")
        cl.addcomponent(flux=flux_jy, fluxunit="Jy", shape="point", dir=f"J2000 {ra_deg}deg {dec_deg}deg",
                        spectrumtype="spectral index", index=spectral_index, freq="1.4GHz")
        cl.rename(cl_path)
        cl.close()
        casatasks.ft(vis=avg, complist=cl_path, usescratch=True)
        timings["model"] = time.perf_counter() - t
        present = _antennas_with_data(avg)
        refant = choose_refant(refants, present)
        t = time.perf_counter()
        tables_dir = work / "tables"
        tables_dir.mkdir()
        b_table = str(tables_dir / f"{set_name}.B")
        g_table = str(tables_dir / f"{set_name}.G")
        casatasks.bandpass(vis=avg, caltable=b_table, solint="inf", combine="scan", refant=str(refant), minsnr=3.0,
                           solnorm=False, bandtype="B", minblperant=3)
        if not Path(b_table).exists():
            raise CalibrationError("bandpass produced no table")
        timings["bandpass"] = time.perf_counter() - t
        t = time.perf_counter()
        casatasks.gaincal(vis=avg, caltable=g_table, solint="inf", combine="scan", refant=str(refant), calmode="ap",
                          minsnr=3.0, gaintable=[b_table], minblperant=3)
        if not Path(g_table).exists():
            raise CalibrationError("gaincal produced no table")
        timings["gaincal"] = time.perf_counter() - t
        quality = {"B": _table_quality(b_table, present), "G": _table_quality(g_table, present)}
        problems = []
        for name, q in quality.items():
            if q["flagged_fraction"] > MAX_FLAGGED_FRACTION:
                problems.append(f"{name}: {100 * q['flagged_fraction']:.0f}% of solutions flagged (> {100 * MAX_FLAGGED_FRACTION:.0f}%)")
            if q["median_snr"] < MIN_MEDIAN_SNR:
                problems.append(f"{name}: median SNR {q['median_snr']:.1f} < {MIN_MEDIAN_SNR}")
        plot_bandpass(b_table, tables_dir / f"{set_name}.bandpass.png")
        tables = [{"name": f"{set_name}.B", "type": "B", "order": 10, "quality": quality["B"]},
                  {"name": f"{set_name}.G", "type": "G", "order": 20, "quality": quality["G"]}]
        info = {"set_name": set_name, "calibrator": calibrator, "refant": refant, "tables": tables,
                "model": {"flux_jy": flux_jy, "spectral_index": spectral_index, "ra_deg": ra_deg, "dec_deg": dec_deg},
                "quality_ok": not problems, "problems": problems}
        (tables_dir / "caltables.json").write_text(json.dumps(info, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tables_dir, out)
    finally:
        os.chdir(out.parent)  # never leave CASA in a deleted directory (it asserts getcwd at exit)
        shutil.rmtree(work, ignore_errors=True)
    return {**info, "out_dir": str(out), "source_ms": ms, "bandpass_png": str(out / f"{set_name}.bandpass.png"),
            "tables": [{**tb, "path": str(out / tb["name"])} for tb in tables], "timings_s": timings,
            "solver_version": f"casatasks {casatasks.version_string()}; contimg {__version__}",
            "solver_params": {"bandpass": {"solint": "inf", "minsnr": 3.0, "bandtype": "B"},
                              "gaincal": {"solint": "inf", "calmode": "ap", "minsnr": 3.0}, "rfi": "contimg.calibrate.rfi 5 sigma, grow 0.5" if rfi else "off"}, "flagging": flag_stats}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contimg.calibrate.job", description=__doc__.splitlines()[0])
    parser.add_argument("ms")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibrator", default=None, help="VLA name; default: the brightest one transiting in the chunk")
    parser.add_argument("--refant", default="103,104,105,106,107,108,102,0", help="0-based antenna ids in preference order")
    parser.add_argument("--set-name", default=None)
    parser.add_argument("--no-rfi", action="store_true")
    parser.add_argument("--report", default=None)
    args = parser.parse_args(argv)
    try:
        from contimg.calibrate.plan import plan_solve

        info = _time_span(args.ms)
        if info["pointing_dec_deg"] is None:
            raise CalibrationError(f"{args.ms} has no CONTIMG_POINTING_DEC_DEG keyword (not made by contimg convert)")
        try:
            plan = plan_solve(info["start_mjd"], info["end_mjd"], info["pointing_dec_deg"], args.calibrator)
        except ValueError as err:
            raise CalibrationError(str(err)) from err
        metrics = solve(args.ms, args.out, calibrator=plan["name"], ra_deg=plan["ra_deg"], dec_deg=plan["dec_deg"],
                        flux_jy=plan["apparent_flux_jy"], spectral_index=plan["spectral_index"],
                        refants=[int(a) for a in args.refant.split(",") if a],
                        set_name=args.set_name or Path(args.out).name, rfi=not args.no_rfi)
    except CalibrationError as err:
        print(f"calibrate: error: {err}", file=sys.stderr)
        return 1
    metrics["plan"] = plan
    print(f"solved {[t['name'] for t in metrics['tables']]} with refant {metrics['refant']}; quality "
          f"{'ok' if metrics['quality_ok'] else 'FAILED: ' + '; '.join(metrics['problems'])}")
    report(metrics, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
