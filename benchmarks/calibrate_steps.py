"""The solve steps alone (K, pre-bandpass phases, B, G) of both solvers on one averaged MS, same run.

    python benchmarks/calibrate_steps.py AVG_MS

AVG_MS: the calibrate job's averaged MS with MODEL_DATA (the job's work folder's ``avg.ms``, kept by
copying it while a benchmarks/calibrate.py run solves). Each solver runs in its own child process on
its own copy; printed: per-step wall, the steps' wall and CPU, the child's peak RSS. The averaging and
the model, the same code for both solvers, are left out.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir, casa_env  # noqa: E402

REFANTS = [103, 104, 105, 106, 107, 108, 102, 0]


def child(avg_src: str, solver: str, work: Path) -> None:
    from contimg.calibrate.job import solve as s
    from contimg.calibrate.job.msread import antennas_with_data
    from contimg.calibrate.solutions import choose_refant

    os.chdir(work)  # CASA drops scratch tables in the working directory
    avg = str(work / "avg.ms")
    shutil.copytree(avg_src, avg)
    refant = choose_refant(REFANTS, antennas_with_data(avg))
    (work / "tables").mkdir()
    k, b, g = (str(work / "tables" / f"s.{x}") for x in "KBG")
    timings: dict = {}
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the reduced solve's reader process, once it is reaped
    t0, c0 = time.perf_counter(), time.process_time() + kids.ru_utime + kids.ru_stime
    if solver == "casa":
        s._solve_casa(avg, work, refant, k, b, g, "s", timings)
    else:
        s._solve_reduced(avg, work, refant, REFANTS, k, b, g, timings)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter() - t0, time.process_time() + kids.ru_utime + kids.ru_stime - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": rss, "timings": timings}))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
        return
    avg = Path(sys.argv[1]).resolve()
    for solver in ("casa", "reduced"):
        work = Path(tempfile.mkdtemp(prefix=f"contimg-bench-steps-{solver}-", dir=bench_dir()))
        try:
            load = Path("/proc/loadavg").read_text().split()[:3]
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(avg), solver, str(work)],
                env=casa_env(work),
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                sys.exit(proc.stderr[-3000:])
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            steps = ", ".join(f"{k} {v:.1f}" for k, v in m["timings"].items())
            print(
                f"{solver:>8}: steps {m['wall']:.1f} s wall, {m['cpu']:.1f} s CPU, peak RSS {m['rss']:.0f} MB "
                f"({steps} s); load before {load}"
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
