"""Soak: the fault drills of tests/test_fault_drills.py at a larger size, on the real stream (issue #10).

    python benchmarks/soak.py [--chunks 10] [--antennas 32] [--channels-per-subband 8] [--integrations 6]
                              [--image-timeout 120] [--keep]

Simulates ``--chunks`` chunks (no calibrator; images are uncalibrated and say so) with faults in the
input and in the processing, replays them into the ingest folder under a real ``dagster-daemon``
(``contimg.stream.run_stream``), and afterwards checks what an operator needs to be true:

| chunk | fault | expected |
| --- | --- | --- |
| 0 | a duplicate of sb02 | imaged from 16; the duplicate recorded |
| 1 | sb04 truncated | imaged from 15; the corrupt file recorded |
| 2 | SIGKILL to the daemon's process group while this chunk converts; a new daemon started | run failed by run monitoring, re-run, imaged once; no CASA job outlives the kill |
| 3 | sb00-sb04 never arrive | ``incomplete`` after the grace minute, with the reason; no run |
| 4 | ~1% NaN visibilities in sb05 | imaged; NaNs flagged |
| 5 | the imaging job hangs on its first attempt | killed at its timeout, the reason recorded, imaged on the retry |
| 6 | sb09 misnamed | recorded as misnamed; imaged from 15 after the grace minute |
| 7 | sb14, sb15 never arrive | imaged from 14 after the grace minute |
| 8.. | none | imaged from 16 |

Checks: every complete chunk has exactly one current image, every faulty one a recorded reason,
nothing half-written under products/, every FITS opens (astropy, here) and every MS opens
(python-casacore, in a child process: this process opens a DagsterInstance), no CASA process left.
Prints the figures and exits 1 if a check fails. The other scripts here time single steps; this
one is about outcomes, and its wall time includes the drill's waits (grace minute, hang timeout,
run monitoring noticing the dead run worker).
"""  # noqa: E501 (a markdown table: its rows cannot be wrapped)

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_dir  # noqa: E402

from contimg.childjobs.env import casa_child_env  # noqa: E402
from contimg.core.settings import Layout, window_slug  # noqa: E402
from contimg_assets.instance.processes import casa_processes
from contimg_assets.instance.stream import DaemonKillDrill, run_stream  # noqa: E402

START = "2026-01-25T00:00:00"
HALF_WRITTEN_MARKERS = (".tmp", ".old-", ".deleting-", "_incomplete")


def windows(n: int) -> list[str]:
    return [f"2026-01-25T{(5 * i) // 60:02d}:{(5 * i) % 60:02d}" for i in range(n)]


def faults_spec() -> str:
    return ",".join(
        [
            "duplicate@0:2",
            "truncate@1:4",
            *(f"missing@3:{sb}" for sb in range(5)),
            "nan@4:5",
            "badname@6:9",
            "missing@7:14",
            "missing@7:15",
        ]
    )


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rows(catalogue: Path, sql: str, *params) -> list:
    con = sqlite3.connect(catalogue)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def product_entries(products: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(products):
        rel = Path(root).relative_to(products)
        out += [str(rel / name) for name in dirs + files]
        dirs[:] = [d for d in dirs if not d.endswith(".ms")]
    return out


def open_fits(paths: list[str]) -> dict:
    """path -> None if it opens with finite data, else the problem."""
    import numpy as np
    from astropy.io import fits

    out = {}
    for p in paths:
        try:
            with fits.open(p) as hdul:
                data = hdul[0].data
                finite = data is not None and data.size > 0 and (p.endswith(".pb.fits") or np.isfinite(data).any())
                out[p] = None if finite else "no finite data"
        except Exception as err:  # noqa: BLE001 -- a check: report it
            out[p] = f"{type(err).__name__}: {err}"
    return out


def open_ms(paths: list[str], casa_state: Path) -> dict:
    """path -> {rows, finite, flagged} or {error}, from python-casacore in a child process."""
    code = textwrap.dedent("""
        import json, sys
        import numpy as np
        from casacore import tables
        out = {}
        for p in json.loads(sys.argv[1]):
            try:
                t = tables.table(p, ack=False)
                data, flag = t.getcol("DATA"), t.getcol("FLAG")
                out[p] = {"rows": t.nrows(), "finite": bool(np.isfinite(data).all()), "flagged": float(flag.mean())}
                t.close()
            except Exception as err:
                out[p] = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(out))
    """)
    casa_state.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(paths)],
        env=casa_child_env(casa_state),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=casa_state,
    )
    if proc.returncode != 0:
        return {p: {"error": f"check child failed ({proc.returncode}): {proc.stderr[-500:]}"} for p in paths}
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.strip()][-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--antennas", type=int, default=32)
    parser.add_argument("--channels-per-subband", type=int, default=8)
    parser.add_argument("--integrations", type=int, default=6)
    parser.add_argument("--image-timeout", type=int, default=120, help="s; the hung imaging job is killed at this")
    parser.add_argument("--interval", type=float, default=5.0, help="s between delivered chunks")
    parser.add_argument("--keep", action="store_true", help="keep the simulated chunks, products and instance")
    args = parser.parse_args()
    if args.chunks < 9:
        parser.error("--chunks must be at least 9 (chunks 0-7 carry the faults, 8 on are clean)")
    win = windows(args.chunks)
    killed, incomplete, nan, hung = win[2], win[3], win[4], win[5]
    imaged = [w for w in win if w != incomplete]
    env = {
        "CONTIMG_SENSOR_INTERVAL_S": "5",
        "CONTIMG_ALLOW_UNCALIBRATED": "1",  # no calibrator transit in these chunks
        "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 512, "niter": 300}',
        "CONTIMG_MIN_FREE_GB": "1",
        "CONTIMG_GRACE_MINUTES": "1",
        "CONTIMG_CASA_TIMEOUT_S": f"image={args.image_timeout}",
        "CONTIMG_MS_KEEP_DAYS": "100000",  # housekeeping must not delete these (old) windows' MS
        "CONTIMG_DRILL_HANG": f"image:{hung}",  # first attempt only
    }
    for k, v in env.items():
        os.environ[k] = v
    work = bench_dir() / "soak-work"
    shutil.rmtree(work, ignore_errors=True)
    layout = Layout.under(work / "root").ensure()
    print(
        f"soak: {args.chunks} chunks of {args.antennas} antennas, 16 x {args.channels_per_subband} channels, "
        f"{args.integrations} integrations; image timeout {args.image_timeout} s; load {load()}"
    )
    from contimg.sim import simulate

    t0 = time.monotonic()
    simulate(
        work / "sim",
        START,
        n_chunks=args.chunks,
        n_antennas=args.antennas,
        n_chan_per_subband=args.channels_per_subband,
        n_integrations=args.integrations,
        seed=3,
        gains=False,
        faults=faults_spec(),
    )
    t_sim = time.monotonic() - t0
    print(f"simulated in {t_sim:.0f} s (not counted); faults {faults_spec()}")
    try:
        outcome = run_stream(
            work / "sim",
            layout,
            interval_s=args.interval,
            timeout_s=2400,
            env_extra=env,
            kill_daemon=DaemonKillDrill(job="convert", window=killed, delay_s=2.0, restart_after_s=5.0),
            log=lambda m: print(f"  [{time.monotonic() - t0 - t_sim:6.0f} s] {m}", flush=True),
        )
        problems = check(outcome, layout, win, imaged, killed, incomplete, nan, hung)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def check(outcome, layout: Layout, win, imaged, killed, incomplete, nan, hung) -> list[str]:
    problems = []
    cat = layout.catalogue
    if outcome.timed_out:
        problems.append("the stream timed out")
    states = outcome.windows
    groups = {w: (s, n, err) for w, s, n, err in rows(cat, "SELECT window_key, state, n_subbands, error FROM groups")}
    images = rows(cat, "SELECT window_key, status, reason, image_path FROM images ORDER BY id")
    files = rows(cat, "SELECT window_key, status, reason FROM subband_files WHERE status != 'accepted'")
    current = {}
    for w, status, _, path in images:
        if status in ("ok", "flagged"):
            current.setdefault(w, []).append(path)
    earlier = [(w, s, r) for w, s, r, _ in images if s not in ("ok", "flagged")]

    print("\nper chunk:")
    for w in win:
        s, n, err = groups.get(w, (None, None, None))
        notes = [f"{st}: {r}" for fw, st, r in files if fw == w]
        notes += [f"image {st}: {(r or '').splitlines()[0][:90]}" for ew, st, r in earlier if ew == w]
        if err:
            notes.append(f"group: {err.splitlines()[0][:110]}")
        print(
            f"  {w}  {s or '-':10s} {n if n is not None else '-':>2} subbands  images {len(current.get(w, []))}"
            + "".join(f"\n      - {x}" for x in notes)
        )
        if w in imaged and (s != "imaged" or len(current.get(w, [])) != 1):
            problems.append(f"{w}: state {s}, {len(current.get(w, []))} current images (expected imaged, exactly 1)")
    if states.get(incomplete) != "incomplete" or not groups.get(incomplete, (0, 0, ""))[2]:
        problems.append(f"{incomplete}: expected incomplete with a reason, got {groups.get(incomplete)}")
    unexplained = [f for f in files if not f[2]]
    if unexplained:
        problems.append(f"files without a reason: {unexplained}")
    by_status: dict = {}
    for _, st, _ in files:
        by_status[st] = by_status.get(st, 0) + 1
    for st in ("duplicate", "corrupt", "excluded", "misnamed"):
        if not by_status.get(st):
            problems.append(f"no {st} file recorded")
    hung_records = [r for w, s, r in earlier if w == hung]
    if not any("timed out" in (r or "") for r in hung_records):
        problems.append(f"{hung}: no timed-out imaging attempt recorded: {hung_records}")
    if (layout.logs / f"image-{window_slug(hung)}.log").exists():
        if "FAULT DRILL" not in (layout.logs / f"image-{window_slug(hung)}.log").read_text():
            problems.append(f"{hung}: the hang drill did not run")

    kill = outcome.kills[0] if outcome.kills else {}
    if not kill:
        problems.append("the daemon was never killed (the drill's convert job was not seen)")
    elif kill.get("orphans"):
        problems.append(f"CASA processes outlived their killed run workers: {kill['orphans']}")
    daemon_log = Path(outcome.daemon_log).read_text(errors="replace") if outcome.daemon_log else ""
    failed_run_reasons = daemon_log.count("record_failed_runs - ")

    products = product_entries(layout.products)
    half = [p for p in products if any(m in Path(p).name for m in HALF_WRITTEN_MARKERS)]
    if half:
        problems.append(f"half-written products: {half}")
    fits_paths = sorted(str(layout.products / p) for p in products if p.endswith(".fits"))
    fits_bad = {p: e for p, e in open_fits(fits_paths).items() if e}
    if fits_bad:
        problems.append(f"FITS that do not open: {fits_bad}")
    if len(fits_paths) != 3 * len(imaged):
        problems.append(f"{len(fits_paths)} FITS files, expected {3 * len(imaged)}")
    ms_paths = sorted(str(layout.products / p) for p in products if p.endswith(".ms"))
    ms = open_ms(ms_paths, layout.casa_state)
    ms_bad = {p: c for p, c in ms.items() if "error" in c or not c["rows"] or not c["finite"]}
    if ms_bad:
        problems.append(f"MS that do not open or hold non-finite data: {ms_bad}")
    if len(ms_paths) != len(imaged):
        problems.append(f"{len(ms_paths)} MS, expected {len(imaged)}")
    flagged = {w: ms.get(str(layout.ms_path(w)), {}).get("flagged") for w in (win[0], nan)}
    left = casa_processes(layout.dagster_home)
    orphans = len(kill.get("orphans") or []) + len(outcome.leftovers) + len(left)
    if outcome.leftovers or left:
        problems.append(f"CASA processes left: {outcome.leftovers} {left}")

    n_images = sum(len(v) for v in current.values())
    reasons = len(files) + len(earlier) + sum(1 for s, _, err in groups.values() if err)
    print(f"""
soak figures
  chunks in:                 {outcome.chunks_delivered} delivered, {len(groups)} groups in the catalogue
  images out:                {n_images} current images for {len(current)} windows (expected {len(imaged)}); \
{len(fits_paths)} FITS, all open: {not fits_bad}; {len(ms_paths)} MS, all open: {not ms_bad}
  chunk states:              {dict(sorted((s, list(states.values()).count(s)) for s in set(states.values())))}
  failures recorded:         {reasons} with reasons ({by_status} files; {len(earlier)} earlier image attempts; \
{sum(1 for s, _, err in groups.values() if err)} group reasons); {failed_run_reasons} failed-run reasons logged \
by record_failed_runs
  daemon kill:               {len(outcome.kills)} (runs in progress {kill.get("runs_in_progress")}, CASA processes \
{len(kill.get("casa", []))}, gone after {kill.get("casa_gone_after_s")} s, new daemon after \
{kill.get("restarted_after_s")} s)
  Dagster runs at the end:   {outcome.runs}
  NaN chunk flagged fraction {flagged.get(nan)} (clean chunk {flagged.get(win[0])})
  half-written products:     {len(half)}
  orphans found:             {orphans} (outlived the kill {len(kill.get("orphans") or [])}, reaped at stop \
{len(outcome.leftovers)}, still running {len(left)}; instance processes reaped at stop {outcome.reaped})
  wall time:                 {outcome.wall_s:.0f} s (stream, incl. the grace minute and the {hung} hang); load {load()}
  result:                    {"PASS" if not problems else "FAIL"}""")
    for p in problems:
        print(f"  problem: {p}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
