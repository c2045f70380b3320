"""Cluster mode on real processes: Redis, PostgreSQL, a dagster-daemon and two Celery workers on this machine.

A backfill of small simulated chunks (8 antennas, 4 channels per subband, 4 integrations) is submitted
exactly as ``contimg reprocess`` does; the daemon's run queue hands the runs to Celery, both workers
execute some, each in its own scratch folder, and every chunk ends imaged, once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from contimg.core.settings import Layout
from contimg.sim import simulate
from contimg_assets.instance import cluster
from contimg_assets.instance.reprocess import submit_backfill

ENV = {
    "CONTIMG_ALLOW_UNCALIBRATED": "1",  # no calibrator transit in these chunks
    "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 512, "niter": 300}',
    "CONTIMG_MIN_FREE_GB": "1",
    "CONTIMG_MS_KEEP_DAYS": "100000",
}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def windows(n: int) -> list[str]:
    return [f"2026-01-25T00:{5 * i:02d}" for i in range(n)]


def use_cluster(monkeypatch, state: dict) -> None:
    """This process talks to the cluster's instance like the dagster CLI would (scripts/cluster.sh env)."""
    for k, v in cluster.cluster_env(state).items():
        if k.startswith(("DAGSTER_HOME", "CONTIMG_")):
            monkeypatch.setenv(k, v)


def busy(instance) -> list:
    """Runs queued, starting, running, or failed and waiting for their retry (as contimg_assets.instance.stream)."""
    active = [r for r in instance.get_runs() if r.status not in FINISHED]
    failed = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"dagster/will_retry": "true"}))
    return active + [r for r in failed if r.is_complete_and_waiting_to_retry]


def wait_runs(instance, n: int, timeout_s: float, *, until=None) -> list:
    """Every run of the instance, once at least ``n`` exist and none is busy (or ``until(runs)`` holds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if until is not None and until(runs):
            return runs
        if len(runs) >= n and not busy(instance):
            return runs
        time.sleep(2.0)
    raise TimeoutError(f"runs not done in {timeout_s:.0f} s: {[(r.run_id[:8], r.status.value) for r in instance.get_runs()]}")


def task_workers(state: dict, runs: list) -> dict:
    """run id -> the Celery worker node that ran it (from the result backend)."""
    app = cluster._celery_app(state)
    try:
        out = {}
        for r in runs:
            meta = app.backend.get_task_meta(r.tags["dagster-celery/task_id"])
            out[r.run_id] = meta.get("worker")
        return out
    finally:
        app.close()


@pytest.mark.e2e
def test_cluster_backfill_runs_on_both_workers(tmp_path, monkeypatch):
    layout = Layout.under(tmp_path / "root").ensure()
    keys = windows(4)
    simulate(layout.ingest, "2026-01-25T00:00:00", n_chunks=len(keys), n_antennas=8, n_chan_per_subband=4,
             n_integrations=4, seed=5, gains=False)
    root = tmp_path / "cluster"
    t0 = time.monotonic()
    state = cluster.start(root, workers=2, layout=layout, env=ENV, stopped_sensors=("ingest_sensor",))
    t_ready = time.monotonic() - t0
    try:
        use_cluster(monkeypatch, state)
        t1 = time.monotonic()
        backfill = submit_backfill(keys, tags={"contimg/reprocess": "cluster-test"})
        with DagsterInstance.get() as instance:
            runs = wait_runs(instance, len(keys), timeout_s=240)
            wall = time.monotonic() - t1
            by_worker = task_workers(state, runs)
            print(f"cluster ready in {t_ready:.1f} s; {len(keys)} runs in {wall:.1f} s; workers {by_worker}")
            assert sorted(r.tags["dagster/partition"] for r in runs) == keys
            assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
            assert set(by_worker.values()) == {w["node"] for w in state["workers"]}, by_worker
        for k in keys:
            assert Path(f"{layout.image_prefix(k)}.pbcor.fits").exists(), k
        # each worker worked in its own scratch folder, the shared one was not used for conversion
        for w in state["workers"]:
            assert Path(w["scratch"]).is_dir()
    finally:
        report = cluster.stop(root)
    assert report["reaped"] == [], report
    assert all(not s["alive"] for s in cluster.status(root)["processes"].values())
