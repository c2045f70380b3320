"""Time of each calibration step on a full-size calibrator chunk (96 antennas, 16 x 48, 24 integrations).

    python benchmarks/calibrate.py [--chunk DIR]

DIR is a simulated chunk with 0834+555 transiting (benchmarks/simulate.py makes one). It is
converted first (not timed), then solved by the calibrate child job; the job's own step timings
are printed with the whole wall time, the peak memory and the solutions' quality.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, casa_env, run_measured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=Path, default=bench_dir() / "fullsize")
    args = parser.parse_args()
    if not any(args.chunk.glob("*.hdf5")):
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("simulate.py")), "--out", str(args.chunk)], check=True
        )
    work = Path(tempfile.mkdtemp(prefix="contimg-bench-cal-", dir=bench_dir()))
    env = casa_env(work)
    try:
        ms = work / "cal.ms"
        wall, _, rc = run_measured(
            [
                sys.executable,
                "-m",
                "contimg.convert.job",
                *map(str, sorted(args.chunk.glob("*.hdf5"))),
                "--out",
                str(ms),
            ],
            env,
        )
        if rc:
            sys.exit(rc)
        print(f"(conversion, not part of the solve: {wall:.1f} s)")
        report = work / "cal.json"
        wall, rss, rc = run_measured(
            [
                sys.executable,
                "-m",
                "contimg.calibrate.job",
                str(ms),
                "--out",
                str(work / "tables"),
                "--report",
                str(report),
            ],
            env,
        )
        if rc:
            sys.exit(rc)
        m = json.loads(report.read_text())
        for step, seconds in m["timings_s"].items():
            print(f"  {step:<14} {seconds:6.1f} s")
        print(f"whole solve (child process wall, incl. CASA start-up): {wall:.1f} s, peak RSS {rss:.0f} MB")
        for t in m["tables"]:
            q = t["quality"]
            print(f"  {t['name']}: {100 * q['flagged_fraction']:.1f}% flagged, median SNR {q['median_snr']:.0f}")
        f = m["flagging"]
        print(
            f"  flagged before the solve {100 * f['flagged_fraction_input']:.2f} %, "
            f"by the RFI pass {100 * f['rfi_flagged_fraction']:.3f} %"
        )
        print(
            f"calibrator {m['calibrator']}, model {m['plan']['apparent_flux_jy']:.2f} Jy, refant {m['refant']}, "
            f"quality {'ok' if m['quality_ok'] else m['problems']}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
