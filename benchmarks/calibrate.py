"""The calibration solve at full size (96 antennas, 16 x 48 channels, 24 integrations) with all of issue
#21's realism: the default solver beside the previous one (every step a CASA call on the binned MS).

    python benchmarks/calibrate.py [--chunk DIR] [--reference-catalog FILE] [--solvers reduced,casa] [--ms MS]

DIR is a simulated chunk with 0834+555 transiting, delays, drifting gains and RFI, in a crowded field
(the counts sky); made once and kept (default benchmarks/out/fullsize-realism-counts: the simulation
costs minutes). It is converted first (not timed), then solved by the calibrate child job with the
field's reference catalogue (default DIR/sky.csv, the simulator's), once per solver. Printed per
solver: the job's step timings, its whole wall time and peak memory, the tables' quality, and the
accuracy that matters: K x B x G at mid-chunk against the simulator's gains (median |amplitude
error| and |phase error| on unflagged channels, tests/test_calibrate_real.py's measure).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_dir, casa_env, run_measured  # noqa: E402


def run_with_cpu(argv: list[str], env: dict) -> tuple[float, float, float]:
    """Run ``argv``; (wall s, peak RSS MB, CPU s of it and its reaped children: the averaging workers).

    On this shared 2-core machine the wall time follows the other helpers' load; the CPU seconds do not.
    """
    import os
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        print(proc.stderr.read().decode()[-3000:])
        sys.exit(1)
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def simulate(chunk: Path) -> None:
    """The full-size calibrator chunk with delays, drift, RFI and the counts sky (seeded)."""
    argv = [sys.executable, "-m", "contimg.cli", "simulate", "--out", str(chunk), "--start", "2025-06-15T00:00:00"]
    argv += ["--antennas", "96", "--channels-per-subband", "48", "--integrations", "24", "--seed", "7"]
    argv += ["--calibrator", "0834+555", "--sky", "counts", "--delays", "--drift", "--rfi"]
    wall, rss, rc = run_measured(argv)
    if rc:
        sys.exit(rc)
    print(f"(simulated {chunk} in {wall:.0f} s, not part of the solve)")


def solve_once(ms: Path, work: Path, solver: str, refcat: Path | None, env: dict) -> dict:
    out = work / solver
    argv = [sys.executable, "-m", "contimg.calibrate.job", str(ms), "--out", str(out / "tables")]
    argv += ["--report", str(out / "r.json"), "--solver", solver]
    if refcat is not None:
        argv += ["--reference-catalog", str(refcat)]
    wall, rss, cpu = run_with_cpu(argv, env)
    return {"wall": wall, "rss": rss, "cpu": cpu, "report": json.loads((out / "r.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=Path, default=bench_dir() / "fullsize-realism-counts")
    parser.add_argument("--reference-catalog", type=Path, default=None, help="default: DIR/sky.csv")
    parser.add_argument("--solvers", default="reduced,casa")
    parser.add_argument("--ms", type=Path, default=None, help="DIR already converted (skips the conversion)")
    args = parser.parse_args()
    if not any(args.chunk.glob("*.hdf5")):
        simulate(args.chunk)
    refcat = args.reference_catalog or args.chunk / "sky.csv"
    truth = json.loads((args.chunk / "truth.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="contimg-bench-cal-", dir=bench_dir()))
    env = casa_env(work)
    try:
        ms = args.ms or work / "cal.ms"
        if args.ms is None:
            argv = [sys.executable, "-m", "contimg.convert.job", *map(str, sorted(args.chunk.glob("*.hdf5")))]
            wall, _, rc = run_measured([*argv, "--out", str(ms)], env)
            if rc:
                sys.exit(rc)
            print(f"(conversion, not part of the solve: {wall:.1f} s)")
        load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"
        print(f"chunk {args.chunk.name}: {len(truth['sky'])} sky sources; reference catalogue {refcat}; load {load}")
        (work / "cal").symlink_to(args.chunk.resolve())  # mid_chunk_errors reads the truth at work/cal
        from tests.test_calibrate_real import mid_chunk_errors

        for solver in args.solvers.split(","):
            got = solve_once(ms, work, solver, refcat if refcat.exists() else None, env)
            m = got["report"]
            amp, phase = mid_chunk_errors(work, truth, m)
            print(f"\nsolver {solver}:")
            for step, seconds in m["timings_s"].items():
                print(f"  {step:<20} {seconds:6.1f} s")
            print(
                f"  whole solve (child process wall, incl. CASA start-up): {got['wall']:.1f} s, "
                f"CPU {got['cpu']:.1f} s (with its workers), peak RSS {got['rss']:.0f} MB"
            )
            print(
                f"  K x B x G at mid-chunk vs the injected gains: median |amp err| {100 * np.median(amp):.2f} %, "
                f"|phase err| {np.median(phase):.2f} deg (90th pct {100 * np.percentile(amp, 90):.2f} %, "
                f"{np.percentile(phase, 90):.2f} deg) over {amp.size} channel-pols"
            )
            for t in m["tables"]:
                q = t["quality"]
                print(f"  {t['name']}: {100 * q['flagged_fraction']:.1f}% flagged, median SNR {q['median_snr']:.0f}")
            f = m["flagging"]
            print(
                f"  flagged before the solve {100 * f['flagged_fraction_input']:.2f} %, "
                f"by the RFI pass {100 * f['rfi_flagged_fraction']:.3f} %; refant {m['refant']}, "
                f"quality {'ok' if m['quality_ok'] else m['problems']}"
            )
            subprocess.run(["uptime"], check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
