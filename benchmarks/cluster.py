"""Throughput of cluster mode: chunks per hour with 1 and N Celery workers, and the per-run launcher overhead.

    python benchmarks/cluster.py [--workers N] [--chunks M] [--antennas A] [--channels C] [--integrations I]

For 1 worker, then N workers: a fresh cluster on this machine (Redis, PostgreSQL, dagster-daemon, workers:
contimg_assets/instance/cluster.py) with the `casa` pool set to the number of workers, M small simulated
chunks in the ingest folder, one queued chunk_job run per window submitted at once, and the wall time from
submission until no run is busy. Launcher overhead per run, from the run's event log:

- launch: RUN_STARTING (the daemon's queue hands the run to the launcher) -> RUN_START (a Celery worker's pool
  process has picked the task up, loaded the code and begun the run);
- first step: RUN_START -> the first STEP_START;
- hand-off: on one worker, the end of a run -> RUN_STARTING of its next one (the daemon's run queue noticing
  the free slot and launching).

The figures depend on the machine: on 2 shared cores, 2 workers mostly share CPU rather than add it.
The last line is ``cluster: M runs, F failed, W workers used`` for the N-worker pass.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter  # noqa: E402

from contimg.core.settings import Layout  # noqa: E402
from contimg.sim import simulate  # noqa: E402
from contimg_assets.instance import cluster  # noqa: E402

ENV = {
    "CONTIMG_ALLOW_UNCALIBRATED": "1",
    "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 512, "niter": 300}',
    "CONTIMG_MIN_FREE_GB": "1",
    "CONTIMG_MS_KEEP_DAYS": "100000",
}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _busy(instance) -> int:
    active = [r for r in instance.get_runs() if r.status not in FINISHED]
    failed = instance.get_runs(
        filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"dagster/will_retry": "true"})
    )
    return len(active) + sum(1 for r in failed if r.is_complete_and_waiting_to_retry)


RUN_END = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)


def _times(instance, run) -> dict:
    ts = {}
    for e in instance.all_logs(
        run.run_id,
        of_type={DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START, DagsterEventType.STEP_START, *RUN_END},
    ):
        ts.setdefault(e.dagster_event.event_type, e.timestamp)
    return ts


def _overheads(ts: dict) -> tuple[float | None, float | None]:
    starting, start, step = (
        ts.get(k) for k in (DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START, DagsterEventType.STEP_START)
    )
    return (start - starting if start and starting else None, step - start if step and start else None)


def _handoff_gaps(times: dict, by_worker: dict) -> list[float]:
    """Per worker: from the end of one run to the RUN_STARTING of its next (the daemon's queue + launch)."""
    gaps = []
    for w in set(by_worker.values()) - {None}:
        mine = sorted(
            (times[r][DagsterEventType.RUN_STARTING], next((times[r][k] for k in RUN_END if k in times[r]), None))
            for r, wr in by_worker.items()
            if wr == w and DagsterEventType.RUN_STARTING in times[r]
        )
        gaps += [b[0] - a[1] for a, b in itertools.pairwise(mine) if a[1] is not None and b[0] > a[1]]
    return gaps


def one_pass(workers: int, keys: list[str], args, work: Path) -> dict:
    layout = Layout.under(work / "root").ensure()
    simulate(
        layout.ingest,
        f"{keys[0]}:00",
        n_chunks=len(keys),
        n_antennas=args.antennas,
        n_chan_per_subband=args.channels,
        n_integrations=args.integrations,
        seed=11,
        gains=False,
    )
    root = work / "cluster"
    t0 = time.monotonic()
    state = cluster.start(
        root,
        workers=workers,
        layout=layout,
        env=ENV,
        stopped_sensors=("ingest_sensor",),
        casa_pool_limit=workers,
        log=lambda *_: None,
    )
    ready_s = time.monotonic() - t0
    try:
        t1 = time.monotonic()
        cluster.launch_partition_runs(state, keys)
        submit_s = time.monotonic() - t1
        with DagsterInstance.from_config(state["dagster_home"]) as instance:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and (len(instance.get_runs()) < len(keys) or _busy(instance)):
                time.sleep(1.0)
            wall = time.monotonic() - t1
            runs = instance.get_runs()
            timed_out = _busy(instance) > 0
            times = {r.run_id: _times(instance, r) for r in runs}
            over = [_overheads(t) for t in times.values()]
            by_worker = cluster.task_workers(state, runs)
            gaps = _handoff_gaps(times, by_worker)
    finally:
        cluster.stop(root, log=lambda *_: None)
    done = {r.tags.get("dagster/partition") for r in runs if r.status == DagsterRunStatus.SUCCESS}
    launch = [a for a, _ in over if a is not None]
    first = [b for _, b in over if b is not None]
    return {
        "workers": workers,
        "ready_s": ready_s,
        "submit_s": submit_s,
        "wall_s": wall,
        "timed_out": timed_out,
        "runs": len(runs),
        "failed": sum(1 for r in runs if r.status != DagsterRunStatus.SUCCESS),
        "imaged": len(done),
        "chunks_per_hour": len(done) / wall * 3600.0,
        "launch_median_s": statistics.median(launch) if launch else float("nan"),
        "launch_max_s": max(launch) if launch else float("nan"),
        "first_step_median_s": statistics.median(first) if first else float("nan"),
        "handoff_median_s": statistics.median(gaps) if gaps else float("nan"),
        "workers_used": len({w for w in by_worker.values() if w}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=6)
    parser.add_argument("--antennas", type=int, default=8)
    parser.add_argument("--channels", type=int, default=4, help="channels per subband")
    parser.add_argument("--integrations", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per pass, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args()
    t0 = datetime(2026, 1, 25)
    keys = [(t0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M") for i in range(args.chunks)]
    results = []
    for n in sorted({1, args.workers}):
        work = Path(tempfile.mkdtemp(prefix=f"contimg-bench-cluster-{n}w-"))
        try:
            r = one_pass(n, keys, args, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        results.append(r)
        print(
            f"{n} worker(s): {r['imaged']}/{args.chunks} chunks imaged in {r['wall_s']:.1f} s = "
            f"{r['chunks_per_hour']:.0f} chunks/hour; launch overhead per run (RUN_STARTING -> RUN_START) median "
            f"{r['launch_median_s']:.2f} s, max {r['launch_max_s']:.2f} s; RUN_START -> first step median "
            f"{r['first_step_median_s']:.2f} s; a worker's previous run end -> next RUN_STARTING median "
            f"{r['handoff_median_s']:.2f} s; cluster ready in {r['ready_s']:.1f} s; submission "
            f"{r['submit_s']:.1f} s{' (TIMED OUT)' if r['timed_out'] else ''}",
            flush=True,
        )
    if len(results) == 2:
        print(
            f"speed-up {results[1]['workers']} vs 1 worker: "
            f"{results[1]['chunks_per_hour'] / results[0]['chunks_per_hour']:.2f}x"
        )
    last = results[-1]
    print(f"cluster: {last['runs']} runs, {last['failed']} failed, {last['workers_used']} workers used")


if __name__ == "__main__":
    main()
