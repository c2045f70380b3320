"""Child job: one chunk's subband files -> one Measurement Set (python-casacore; never casatools).

    python -m contimg.convert.job FILE.hdf5 [FILE ...] --out CHUNK.ms [--report R.json] [--scratch DIR]

Each subband is read once, rotated from its fringe-stop centre (HA=0, pointing dec, moving with
time) to the chunk's fixed ICRS meridian field using its own time stamps, and written as one
spectral window in a single block per column. Layout and signs: ``docs/conventions.md``.
The MS is built under a temporary name and renamed into place only after the post-conversion
checks pass; on any failure nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.childjobs.report import report
from contimg.convert.frames import sky_frames
from contimg.convert.job.checks import run_checks
from contimg.convert.job.prepare import spw_inputs
from contimg.convert.job.schema import add_weight_spectrum, init_ms, write_subtables
from contimg.convert.job.workers import Preparer, without_rows
from contimg.convert.job.write import put_in_place, write_spw
from contimg.convert.plan import ConversionError, plan_chunk
from contimg.convert.report import ConvertReport
from contimg.core.instrument import N_SUBBANDS

__all__ = ["convert_chunk", "main"]


def convert_chunk(files, out: Path, scratch: Path | None = None, workers: int | None = None) -> ConvertReport:
    """Convert ``files`` to ``out`` atomically; returns what the job reports.

    ``workers`` processes read and rotate subbands while this one writes (default: the CPUs, at
    most 2; 1 = all in this process).
    """
    t0 = time.perf_counter()
    timings = {"read": 0.0, "phase": 0.0, "write": 0.0}
    out = Path(out).absolute()
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    preparer = Preparer(workers)
    try:
        return _convert(files, out, scratch, preparer, timings, t0)
    finally:
        preparer.close()


def _convert(files, out: Path, scratch, preparer: Preparer, timings: dict, t0: float) -> ConvertReport:
    plan = plan_chunk(files)
    tmp_parent = Path(scratch) if scratch else out.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    t = plan.template
    nblts = len(t.time_jd)
    ra0, dec0 = np.radians(plan.phase_center_ra_deg), np.radians(plan.phase_center_dec_deg)
    frames = sky_frames([spw_inputs(plan, k)[0] for k in range(N_SUBBANDS)], ra0, dec0)
    timings["plan"] = time.perf_counter() - t0
    freqs_asc, widths, spw_of_chan = plan.spectral_layout()  # the files' own labels, ascending
    n_flagged = n_vis = n_nan = 0
    worker_rss = 0.0
    written = []
    subtables = []
    try:

        def create():  # while a worker prepares SPW 0
            ts = time.perf_counter()
            ms, _ = init_ms(tmp, N_SUBBANDS * nblts, plan.n_chan)
            ms.putkeyword("CONTIMG_POINTING_DEC_DEG", float(plan.pointing_dec_deg))  # read by the imaging job
            ms.close()
            # the subtables by the other worker (pyuvdata already imported there); the main table is
            # reopened only once they are written
            subtables.append(preparer.call(write_subtables, tmp, without_rows(plan), freqs_asc, widths, spw_of_chan))
            timings["create"] = time.perf_counter() - ts

        ms = None
        try:
            for spw in preparer.run(plan, frames, ra0, dec0, before_first=create):
                ts = time.perf_counter()
                if ms is None:
                    from casacore import tables

                    subtables[0].result()
                    ms = tables.table(str(tmp), readonly=False, ack=False)
                if spw["wspec"] is not None and "WEIGHT_SPECTRUM" not in ms.colnames():
                    add_weight_spectrum(ms, plan.n_chan, written, nblts)
                write_spw(ms, spw, spw_inputs(plan, spw["k"])[0], nblts)
                written.append(spw["k"])
                timings["write"] += time.perf_counter() - ts
                for key in ("read", "phase"):
                    timings[key] += spw["seconds"][key]
                n_flagged += spw["n_flagged"]
                n_vis += spw["n_vis"]
                n_nan += spw["n_nan"]
                worker_rss = max(worker_rss, spw["peak_rss_mb"])
                del spw
            has_wspec = "WEIGHT_SPECTRUM" in ms.colnames()
        finally:
            if ms is not None:
                ms.close()
        ts = time.perf_counter()
        checks = run_checks(tmp, plan)
        timings["checks"] = time.perf_counter() - ts
        failed = [name for name, c in checks.items() if not c["passed"]]
        if failed:
            raise ConversionError(
                f"post-conversion checks failed: {', '.join(failed)}: "
                + "; ".join(f"{n}={checks[n]['value']} (limit {checks[n]['limit']})" for n in failed)
            )
        put_in_place(tmp, out)
    except BaseException:
        for future in subtables:  # never delete the folder under a worker still writing into it
            future.cancel() or future.exception()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total"] = time.perf_counter() - t0
    return ConvertReport(
        ms_path=str(out),
        files=[str(s.path) for s in plan.subbands.values()],
        n_subbands_present=len(plan.subbands),
        missing_subbands=plan.missing,
        n_rows=N_SUBBANDS * nblts,
        n_antennas=len(np.union1d(t.ant1, t.ant2)),
        n_channels=int(N_SUBBANDS * plan.n_chan),
        n_times=int(t.n_times),
        start_mjd=plan.start_jd - 2400000.5,
        end_mjd=plan.end_jd - 2400000.5,
        mid_mjd=plan.mid_jd - 2400000.5,
        phase_center_ra_deg=plan.phase_center_ra_deg,
        phase_center_dec_deg=plan.phase_center_dec_deg,
        pointing_dec_deg=plan.pointing_dec_deg,
        freq_min_hz=float(freqs_asc[0]),
        freq_max_hz=float(freqs_asc[-1]),
        weight_spectrum=has_wspec,
        flagged_fraction=n_flagged / max(n_vis, 1),
        nan_flagged=n_nan,
        checks=checks,
        timings_s=timings,
        bytes_in=plan.bytes_in,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        workers=preparer.workers,
        worker_peak_rss_mb=worker_rss if preparer.workers > 1 else None,
        code_version=__version__,
    )


def main(argv=None) -> int:
    """The job's command line: convert, print the checks, publish the report; 1 on a ConversionError."""
    parser = argparse.ArgumentParser(prog="python -m contimg.convert.job", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        metrics = convert_chunk(args.files, args.out, args.scratch)
    except ConversionError as err:
        print(f"convert: error: {err}", file=sys.stderr)
        return 1
    for name, c in metrics.checks.items():
        print(f"check {name}: {'ok' if c['passed'] else 'FAILED'} ({c['value']})")
    print(
        f"wrote {metrics.ms_path} ({metrics.n_rows} rows, missing subbands {metrics.missing_subbands}) "
        f"in {metrics.timings_s['total']:.1f} s"
    )
    report(metrics.asdict(), args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
