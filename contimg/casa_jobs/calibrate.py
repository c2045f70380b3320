"""Child job: solve bandpass and gain tables on a calibrator chunk (casatools/casatasks only).

    python -m contimg.casa_jobs.calibrate CHUNK.ms --out DIR --calibrator NAME --ra-deg X --dec-deg Y
           --flux-jy S [--spectral-index A] [--refant LIST] [--set-name NAME] [--report R.json]

Steps: flag autocorrelations, zeros and RFI (tfcrop) in a scratch copy; shift the phase centre to
the calibrator (a 54' offset once cost upstream 73% of its bandpass solutions); average the whole
chunk in time (solint is inf and the calibrator sits at the phase centre, so nothing is lost);
set a point-source model of the apparent flux (catalogue flux x spectral index x the primary
beam averaged over the drift, computed by the caller); solve B (per channel, one per SPW) then
G (amplitude and phase, with B applied). The tables are written into a temporary folder and
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
from contimg.jobreport import report

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
        flagged = str(work / "flagged.ms")
        shutil.copytree(ms, flagged)
        casatasks.flagdata(vis=flagged, mode="manual", autocorr=True, flagbackup=False)
        casatasks.flagdata(vis=flagged, mode="clip", clipzeros=True, flagbackup=False)
        if rfi:
            casatasks.flagdata(vis=flagged, mode="tfcrop", datacolumn="data", timecutoff=5.0, freqcutoff=5.0,
                               flagbackup=False)
        timings["flag"] = time.perf_counter() - t
        t = time.perf_counter()
        shifted = str(work / "shifted.ms")
        casatasks.phaseshift(vis=flagged, outputvis=shifted, phasecenter=f"J2000 {ra_deg}deg {dec_deg}deg",
                             datacolumn="data")
        shutil.rmtree(flagged)
        avg = str(work / "avg.ms")
        casatasks.mstransform(vis=shifted, outputvis=avg, datacolumn="data", timeaverage=True, timebin="100000s",
                              keepflags=False)
        shutil.rmtree(shifted)
        timings["shift_average"] = time.perf_counter() - t
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
                              "gaincal": {"solint": "inf", "calmode": "ap", "minsnr": 3.0}, "rfi": "tfcrop 5 sigma"}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contimg.casa_jobs.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("ms")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibrator", default=None, help="VLA name; default: the brightest one transiting in the chunk")
    parser.add_argument("--refant", default="103,104,105,106,107,108,102,0", help="0-based antenna ids in preference order")
    parser.add_argument("--set-name", default=None)
    parser.add_argument("--no-rfi", action="store_true")
    parser.add_argument("--report", default=None)
    args = parser.parse_args(argv)
    try:
        from contimg.calibration import plan_solve
        from contimg.casa_jobs.image import describe_ms

        info = describe_ms(args.ms)
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
