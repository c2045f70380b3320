"""The calibrate job's field model at full size: its time beside the direct per-baseline sum it replaced, and
the solved gains' accuracy at mid-chunk against the number of field sources in the model.

    python benchmarks/field_model.py --ms MS [--chunk DIR] [--sources 30,100,300] [--solve]

MS is DIR (default benchmarks/out/fullsize-realism-counts, see benchmarks/calibrate.py) converted. The
chunk is averaged once at the calibrator as the job does (not timed); then, per number of field sources
(the catalogue's brightest through the beam, as ``solve._field`` orders them), ``write_field_model``
is timed on the whole averaged MS. The alternative -- the direct sum over baselines, sources, channels
and five sub-samples with a sinc each (the model before contimg.core.predict) -- is timed on one
(bin, SPW) of the averaged MS and scaled by their count, and the two models are compared there: max
|difference| relative to the calibrator's apparent flux. With ``--solve``, the calibrate job's solve
runs once per number of sources (MAX_FIELD_SOURCES set to it, no flux floor) and prints the median
K x B x G errors at mid-chunk against the simulator's gains (tests/test_calibrate_real.py's measure).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_dir, casa_env  # noqa: E402

# Run in a child (CASA): average once, then time the model per number of sources and compare with the direct
# sum on one (bin, SPW).
CHILD = """
import json, sys, time
import numpy as np, casatools
from contimg.calibrate.job import solve as S
from contimg.calibrate.job.average import _antenna_uvw, average_at_calibrator
from contimg.calibrate.job.model import _beam_offsets_rad, _direction_cosines, write_field_model
from contimg.calibrate.job.msread import time_span
from contimg.calibrate.plan import plan_solve
from contimg.core.beam import airy_power
from contimg.core.constants import C_M_S
from contimg.core.refcat import read_reference_catalog

def direct(avg, sources, centre, pointing_dec_deg, rows, n_sub=5):
    # the model before contimg.core.predict, on ``rows`` (one bin, one SPW): per baseline, source, channel and
    # sub-sample a complex exponential, a sinc for the smearing within the sub-sample and a Gaussian taper
    tb = casatools.table()
    tb.open(avg + "/ANTENNA"); pos = tb.getcol("POSITION").T; tb.close()
    tb.open(avg + "/SPECTRAL_WINDOW"); freqs = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]; tb.close()
    tb.open(avg + "/DATA_DESCRIPTION"); spw_of_dd = tb.getcol("SPECTRAL_WINDOW_ID"); tb.close()
    tb.open(avg + "/OBSERVATION"); telescope = str(tb.getcell("TELESCOPE_NAME", 0)); tb.close()
    tb.open(avg)
    t_s, span = float(tb.getcell("TIME", int(rows[0]))), float(tb.getcell("INTERVAL", int(rows[0])))
    a1, a2 = tb.getcol("ANTENNA1")[rows], tb.getcol("ANTENNA2")[rows]
    f = np.asarray(freqs[spw_of_dd[tb.getcell("DATA_DESC_ID", int(rows[0]))]])
    tb.close()
    src = np.array([list(s) + [0.0] * (7 - len(s)) for s in sources])
    ra, dec, flux, alpha = src[:, 0], src[:, 1], src[:, 2], src[:, 3]
    maj, mnr, pa = np.radians(src[:, 4] / 3600), np.radians(src[:, 5] / 3600), np.radians(src[:, 6])
    lmn = _direction_cosines(ra, dec, *centre)
    me, qa = casatools.measures(), casatools.quanta()
    me.doframe(me.observatory(telescope))
    rel = pos - pos.mean(axis=0)
    frac = np.arange(2 * n_sub + 1) / (2 * n_sub) - 0.5
    uvw = [_antenna_uvw(me, qa, rel, t_s + x * span, np.radians(centre[0]), np.radians(centre[1])) for x in frac]
    theta = _beam_offsets_rad(ra, dec, (t_s + frac[1::2] * span) / 86400.0, pointing_dec_deg)
    k_f = 2 * np.pi * f[None, None, :] / C_M_S
    spec = flux[:, None] * (f[None, :] / 1.4e9) ** alpha[:, None]
    acc = np.zeros((len(rows), len(f)), complex)
    for k in range(n_sub):
        bs = [uvw[2 * k + j][a1] - uvw[2 * k + j][a2] for j in range(3)]
        w_geom = [b @ lmn.T for b in bs]
        smear = np.sinc((w_geom[2] - w_geom[0])[:, :, None] * k_f / (2 * np.pi))
        q_maj = bs[1][:, 0:1] * np.sin(pa) + bs[1][:, 1:2] * np.cos(pa)
        q_min = bs[1][:, 0:1] * np.cos(pa) - bs[1][:, 1:2] * np.sin(pa)
        size2 = (maj * q_maj) ** 2 + (mnr * q_min) ** 2
        smear = smear * np.exp(-(np.pi**2) / (4 * np.log(2)) * size2[:, :, None] * (f / C_M_S) ** 2)
        s_app = spec * airy_power(theta[k][:, None], f[None, :])
        acc += np.einsum("sc,rsc->rc", s_app, smear * np.exp(1j * w_geom[1][:, :, None] * k_f))
    return acc / n_sub

ms, avg, refcat, counts = sys.argv[1], sys.argv[2], sys.argv[3], [int(x) for x in sys.argv[4].split(",")]
span = time_span(ms)
plan = plan_solve(span["start_mjd"], span["end_mjd"], span["pointing_dec_deg"], "0834+555")
average_at_calibrator(ms, avg, plan.ra_deg, plan.dec_deg, rfi=True, solint_s=S.GAIN_SOLINT_S)
S._add_model_column(avg)
S.MAX_FIELD_SOURCES, S.FIELD_MIN_APPARENT_FRACTION = max(counts), 0.0
field = S._field(plan, read_reference_catalog(refcat), span["pointing_dec_deg"])
centre = (plan.ra_deg, plan.dec_deg)
tb = casatools.table()
tb.open(avg)
t_col, dd_col = tb.getcol("TIME"), tb.getcol("DATA_DESC_ID")
tb.close()
in_spw = dd_col == 8  # each SPW's bins have their own TIME (the mean of its rows)
times = np.unique(t_col[in_spw])
rows = np.flatnonzero(in_spw & (t_col == times[len(times) // 2]))  # the middle bin, SPW 8
n_items = len(set(zip(t_col.tolist(), dd_col.tolist())))
out = {"n_items": n_items, "n_rows": len(t_col), "cal_apparent_jy": plan.apparent_flux_jy, "runs": []}
for n in counts:
    srcs = field[: n + 1]
    gauss = sum(1 for s in srcs if s[4] > 0)
    load = open("/proc/loadavg").read().split()[0]
    t, c = time.perf_counter(), time.process_time()
    write_field_model(avg, srcs, centre, span["pointing_dec_deg"])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    run = {"n": len(srcs) - 1, "gaussians": gauss, "wall_s": wall, "cpu_s": cpu, "load": load}
    if n == counts[0]:
        tb.open(avg)
        new = tb.getcol("MODEL_DATA")[0][:, rows].T
        tb.close()
        t, c = time.perf_counter(), time.process_time()
        old = direct(avg, srcs, centre, span["pointing_dec_deg"], rows)
        run["direct_one_item_wall_s"], run["direct_one_item_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        run["max_diff_over_cal"] = float(np.max(np.abs(new - old)) / plan.apparent_flux_jy)
        run["rms_diff_over_cal"] = float(np.sqrt(np.mean(np.abs(new - old) ** 2)) / plan.apparent_flux_jy)
    out["runs"].append(run)
    print(json.dumps(run), file=sys.stderr, flush=True)
print(json.dumps(out))
"""

# Run in a child (CASA): the calibrate job's solve with the model's source count set to N.
SOLVE = """
import json, sys
from contimg.calibrate.job import solve as S
from contimg.calibrate.job.msread import time_span
from contimg.calibrate.job.main import DEFAULT_REFANTS
from contimg.calibrate.plan import plan_solve
from contimg.core.refcat import read_reference_catalog
ms, out, refcat, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
S.MAX_FIELD_SOURCES, S.FIELD_MIN_APPARENT_FRACTION = n, 0.0
span = time_span(ms)
plan = plan_solve(span["start_mjd"], span["end_mjd"], span["pointing_dec_deg"], "0834+555")
r = S.solve(ms, out, plan, refants=[int(a) for a in DEFAULT_REFANTS.split(",")], set_name="bench", rfi=True,
            reference=read_reference_catalog(refcat), pointing_dec_deg=span["pointing_dec_deg"])
print(json.dumps(r.to_dict()))
"""


def child(code: str, args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode:
        sys.exit(proc.returncode)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=Path, default=bench_dir() / "fullsize-realism-counts")
    parser.add_argument("--ms", type=Path, required=True, help="the chunk converted (benchmarks/calibrate.py --ms)")
    parser.add_argument("--sources", default="30,100,300", help="numbers of field sources, comma-separated")
    parser.add_argument("--solve", action="store_true", help="also solve once per number and measure the gains")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="contimg-bench-fieldmodel-", dir=bench_dir()))
    env = casa_env(work)
    refcat = str(args.chunk / "sky.csv")
    try:
        got = child(CHILD, [str(args.ms.absolute()), str(work / "avg.ms"), refcat, args.sources], env)
        print(f"averaged MS: {got['n_rows']} rows in {got['n_items']} (bin, SPW) predicts")
        for run in got["runs"]:
            print(
                f"  {run['n']:4d} field sources ({run['gaussians']} Gaussian): write_field_model "
                f"{run['wall_s']:6.1f} s wall, {run['cpu_s']:6.1f} s CPU (load {run['load']})"
            )
            if "direct_one_item_wall_s" in run:
                n = got["n_items"]
                print(
                    f"       direct per-baseline sum on one (bin, SPW): {run['direct_one_item_wall_s']:.1f} s wall "
                    f"(x {n} = {n * run['direct_one_item_wall_s']:.0f} s), {run['direct_one_item_cpu_s']:.1f} s CPU; "
                    f"new - direct there: max {100 * run['max_diff_over_cal']:.3f} %, "
                    f"rms {100 * run['rms_diff_over_cal']:.4f} % of the calibrator's apparent flux"
                )
        if args.solve:
            from tests.test_calibrate_real import mid_chunk_errors

            truth = json.loads((args.chunk / "truth.json").read_text())
            (work / "cal").symlink_to(args.chunk.resolve())  # mid_chunk_errors reads the truth at work/cal
            for n in (int(x) for x in args.sources.split(",")):
                report = child(SOLVE, [str(args.ms.absolute()), str(work / f"tables{n}"), refcat, str(n)], env)
                amp, phase = mid_chunk_errors(work, truth, report)
                print(
                    f"  solve with {n:4d} field sources: model {report['timings_s']['model']:.1f} s; K x B x G at "
                    f"mid-chunk median |amp err| {100 * np.median(amp):.3f} %, |phase err| {np.median(phase):.3f} "
                    f"deg (90th pct {100 * np.percentile(amp, 90):.2f} %, {np.percentile(phase, 90):.2f} deg)"
                )
        subprocess.run(["uptime"], check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
