"""Cluster mode on real processes: Redis, PostgreSQL, a dagster-daemon and two Celery workers on this machine.

A backfill of small simulated chunks (8 antennas, 4 channels per subband, 4 integrations) is submitted
exactly as ``contimg reprocess`` does; the daemon's run queue hands the runs to Celery, both workers
execute some, each in its own scratch folder, and every chunk ends imaged, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from contimg.core.settings import Layout
from contimg.sim import simulate
from contimg_assets.instance import cluster
from contimg_assets.instance.processes import REPO_ROOT, casa_processes, instance_pids
from contimg_assets.instance.reprocess import submit_backfill

ENV = {
    "CONTIMG_ALLOW_UNCALIBRATED": "1",  # no calibrator transit in these chunks
    "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 512, "niter": 300}',
    "CONTIMG_MIN_FREE_GB": "1",
    "CONTIMG_MS_KEEP_DAYS": "100000",
}
CASA_STEPS = ("measurement_set", "caltable_set", "image")  # the assets in the `casa` pool
STEP_END = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def windows(n: int) -> list[str]:
    return [f"2026-01-25T00:{5 * i:02d}" for i in range(n)]


def use_cluster(monkeypatch, state: dict) -> None:
    """This process talks to the cluster's instance like the dagster CLI would (scripts/cluster.sh env)."""
    for k, v in cluster.cluster_env(state).items():
        if k.startswith(("DAGSTER_HOME", "CONTIMG_")):
            monkeypatch.setenv(k, v)


def catalogue_per_window(state: dict, layout: Layout) -> dict:
    """``{window: (group state, current MSs, good images, image attempts)}`` from the cluster's Postgres catalogue.

    Read with psycopg2 directly, not through contimg.catalogue. The SQLite file must not exist: every run wrote
    the catalogue in Postgres (``CONTIMG_CATALOGUE_URL``), whichever worker it ran on.
    """
    import psycopg2

    assert not layout.catalogue.exists(), "a run wrote the SQLite catalogue instead of the cluster's Postgres"
    raw = psycopg2.connect(state["catalogue_url"])
    try:
        with raw.cursor() as cur:
            cur.execute(
                "SELECT g.window_key, g.state, "
                "(SELECT count(*) FROM measurement_sets m WHERE m.window_key = g.window_key AND m.status = 'current'), "
                "(SELECT count(*) FROM images i WHERE i.window_key = g.window_key AND i.status = 'ok'), "
                "(SELECT count(*) FROM images i WHERE i.window_key = g.window_key) FROM groups g"
            )
            return {r[0]: tuple(r[1:]) for r in cur.fetchall()}
    finally:
        raw.close()


def busy(instance) -> list:
    """Runs queued, starting, running, or failed and waiting for their retry (as contimg_assets.instance.stream)."""
    active = [r for r in instance.get_runs() if r.status not in FINISHED]
    failed = instance.get_runs(
        filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"dagster/will_retry": "true"})
    )
    return active + [r for r in failed if r.is_complete_and_waiting_to_retry]


def wait_runs(instance, n: int, timeout_s: float, *, until=None, retries: bool = True) -> list:
    """Every run of the instance, once at least ``n`` exist and none is busy (or ``until(runs)`` holds).

    ``retries=False``: do not wait for retries (runs of a CLI backfill are never retried)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if until is not None and until(runs):
            return runs
        pending = busy(instance) if retries else [r for r in runs if r.status not in FINISHED]
        if len(runs) >= n and not pending:
            return runs
        time.sleep(2.0)
    raise TimeoutError(
        f"runs not done in {timeout_s:.0f} s: {[(r.run_id[:8], r.status.value) for r in instance.get_runs()]}"
    )


def casa_step_intervals(instance, runs) -> list[tuple]:
    """(start, end, run id, step) of every finished step of the `casa` pool, from the event log."""
    out = []
    for r in runs:
        started = {}
        for e in instance.all_logs(r.run_id, of_type={DagsterEventType.STEP_START, *STEP_END}):
            if e.step_key not in CASA_STEPS:
                continue
            if e.dagster_event.event_type == DagsterEventType.STEP_START:
                started[e.step_key] = e.timestamp
            elif e.step_key in started:
                out.append((started.pop(e.step_key), e.timestamp, r.run_id, e.step_key))
    return out


def max_overlap(intervals) -> int:
    """Most intervals open at one time."""
    edges = sorted([(a, 1) for a, *_ in intervals] + [(b, -1) for _, b, *_ in intervals], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def worker_of(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"CONTIMG_WORKER="):
            return item.split(b"=", 1)[1].decode()
    return None


@pytest.mark.e2e
def test_cluster_backfill_runs_on_both_workers(tmp_path, monkeypatch):
    """`scripts/cluster.sh start` brings up Redis, PostgreSQL, the daemon and two workers on loopback; a backfill
    runs on both workers, each in its own scratch folder, never two CASA steps at once (`casa` pool limit 1);
    `scripts/cluster.sh stop` leaves no process of the cluster behind."""
    layout = Layout.under(tmp_path / "root").ensure()
    keys = windows(4)
    simulate(
        layout.ingest,
        "2026-01-25T00:00:00",
        n_chunks=len(keys),
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=4,
        seed=5,
        gains=False,
    )
    root = tmp_path / "cluster"
    env = {
        **os.environ,
        **ENV,
        "PYTHON": sys.executable,
        "CONTIMG_ROOT": str(tmp_path / "root"),
        "CONTIMG_CLUSTER_ROOT": str(root),
    }
    script = str(REPO_ROOT / "scripts" / "cluster.sh")
    t0 = time.monotonic()
    try:
        subprocess.run(
            [script, "start", "--workers", "2", "--stop-sensor", "ingest_sensor"], env=env, check=True, timeout=240
        )
        t_ready = time.monotonic() - t0
        st = json.loads(
            subprocess.run([script, "status"], env=env, check=True, capture_output=True, text=True, timeout=60).stdout
        )
        assert st["running"] and set(st["processes"]) == {"redis", "daemon", "w1", "w2"}
        assert all(p["alive"] for p in st["processes"].values()), st
        state = cluster.load_state(root)
        assert state["broker"].startswith("redis://127.0.0.1:") and "@127.0.0.1:" in state["pg_url"]
        exports = subprocess.run([script, "env"], env=env, check=True, capture_output=True, text=True).stdout
        assert f"export DAGSTER_HOME={root / 'dagster'}" in exports
        # Redis and PostgreSQL listen on loopback only
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout.splitlines()
        ports = {state["redis"]["port"], state["postgres"]["port"]}
        ours = [ln.split()[3] for ln in listening if int(ln.split()[3].rsplit(":", 1)[1]) in ports]
        assert ours and all(a.startswith("127.0.0.1:") for a in ours), ours

        use_cluster(monkeypatch, state)
        t1 = time.monotonic()
        submit_backfill(keys, tags={"contimg/reprocess": "cluster-test"})
        with DagsterInstance.get() as instance:
            runs = wait_runs(instance, len(keys), timeout_s=600, retries=False)  # ~2 min on 2 idle cores
            wall = time.monotonic() - t1
            by_worker = cluster.task_workers(state, runs)
            print(f"cluster ready in {t_ready:.1f} s; {len(keys)} runs in {wall:.1f} s; workers {by_worker}")
            assert sorted(r.tags["dagster/partition"] for r in runs) == keys
            assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
            assert set(by_worker.values()) == {w["node"] for w in state["workers"]}, by_worker
            # the `casa` pool (limit 1, in Postgres) holds across workers: no two CASA steps overlap
            intervals = casa_step_intervals(instance, runs)
            assert len(intervals) == 2 * len(keys) and max_overlap(intervals) == 1, intervals
        for k in keys:
            assert Path(f"{layout.image_prefix(k)}.pbcor.fits").exists(), k
        # one catalogue for both workers: each chunk imaged once, nothing lost or duplicated
        assert f"export CONTIMG_CATALOGUE_URL={state['catalogue_url']}" in exports
        assert catalogue_per_window(state, layout) == {k: ("imaged", 1, 1, 1) for k in keys}
        # each worker converted and imaged its own chunks in its own scratch folder
        for w in state["workers"]:
            mine = {r.tags["dagster/partition"] for r in runs if by_worker[r.run_id] == w["node"]}
            reports = {p.name for p in Path(w["scratch"]).iterdir()}
            assert mine and all(f"convert-{k.replace(':', '')}.json" in reports for k in mine), (w, reports)
    finally:
        stopped = subprocess.run([script, "stop"], env=env, timeout=240, check=False, capture_output=True, text=True)
    print(stopped.stdout, stopped.stderr)
    assert stopped.returncode == 0 and "(cleanly)" in stopped.stdout, "stop had to kill or reap processes"
    assert instance_pids(root) == [], "processes of the cluster left running"
    assert not cluster.status(root)["running"]
    pg_dir = cluster.load_state(root)["postgres"]["dir"]
    assert instance_pids(Path(pg_dir)) == [] and not Path(pg_dir).exists(), "PostgreSQL left running"


@pytest.mark.e2e
def test_cluster_casa_pool_of_two_and_a_worker_killed_mid_run(tmp_path, monkeypatch):
    """`casa` pool limit 2: CASA steps of the two workers overlap. Then a worker gets SIGKILL (its whole process
    group) while its run's CASA job runs: the health check fails the run within a minute, the CASA job does not
    outlive it, and the retry (the runs are a backfill, as `contimg reprocess` submits) succeeds on the other
    worker."""
    layout = Layout.under(tmp_path / "root").ensure()
    keys = windows(3)
    simulate(
        layout.ingest,
        "2026-01-25T00:00:00",
        n_chunks=len(keys),
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=4,
        seed=6,
        gains=False,
    )
    root = tmp_path / "cluster"
    state = cluster.start(
        root, workers=2, layout=layout, env=ENV, stopped_sensors=("ingest_sensor",), casa_pool_limit=2
    )
    home = Path(state["dagster_home"])
    try:
        use_cluster(monkeypatch, state)
        # a backfill exactly as `contimg reprocess` submits it: Dagster's run_retries skip its runs (the backfill
        # is COMPLETED at submission); the retry_backfill_runs sensor re-runs the killed one
        submit_backfill(keys, tags={"contimg/reprocess": "cluster-test"})

        # wait for a CASA job of the third chunk (both workers are busy by then), and kill its worker
        def casa_job_of_last_chunk(timeout_s: float) -> tuple:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for pid, cmd in casa_processes(home).items():
                    if keys[-1].replace(":", "") in cmd and "childjobs.guard" not in cmd and worker_of(pid):
                        return worker_of(pid), (pid, cmd)
                time.sleep(0.3)
            raise AssertionError("no CASA job of the last chunk was seen")

        victim, job = casa_job_of_last_chunk(300)
        # the health check while the worker lives: RUNNING, also when the backend has lost the task's state
        # (Redis restarted without persistence): then every worker is asked
        with DagsterInstance.get() as instance:
            run = next(
                r
                for r in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
                if r.tags["dagster/partition"] == keys[-1]
            )
            launcher = instance.run_launcher
            assert type(launcher).__name__ == "ClusterRunLauncher"
            health = launcher.check_run_worker_health(run)
            assert health.status.name == "RUNNING" and f"running on {victim}@" in health.msg, health
            backend = redis.Redis.from_url(state["backend"])
            meta_key = f"celery-task-meta-{run.tags['dagster-celery/task_id']}"
            saved = backend.get(meta_key)
            backend.delete(meta_key)
            try:
                health = launcher.check_run_worker_health(run)
                assert health.status.name == "RUNNING" and f"running on {victim}@" in health.msg, health
            finally:
                backend.set(meta_key, saved)
                backend.close()
        victim, job = casa_job_of_last_chunk(120)  # the same run; maybe its next CASA job by now
        victim_casa = {p for p in casa_processes(home) if worker_of(p) == victim}  # job and its guard
        killed = cluster.kill_worker(state, victim)
        t_kill = time.monotonic()
        print(f"killed worker {victim} ({len(killed)} processes) while running {job[1][:100]}")
        orphans_gone_after = None
        with DagsterInstance.get() as instance:

            def victim_failed(runs):
                nonlocal orphans_gone_after
                if orphans_gone_after is None and not victim_casa & set(casa_processes(home)):
                    orphans_gone_after = time.monotonic() - t_kill
                return any(
                    r.tags.get("dagster/partition") == keys[-1] and r.status == DagsterRunStatus.FAILURE for r in runs
                )

            wait_runs(instance, len(keys), timeout_s=120, until=victim_failed)
            failed_after = time.monotonic() - t_kill
            runs = wait_runs(instance, len(keys) + 1, timeout_s=600)
            by_worker = cluster.task_workers(state, runs)
            statuses = {(r.tags["dagster/partition"], r.status) for r in runs}
            print(
                f"run failed {failed_after:.1f} s after the kill; CASA job gone after {orphans_gone_after} s; "
                f"runs {sorted((k, s.value) for k, s in statuses)}; workers {by_worker}"
            )
            assert failed_after < 60
            failed = [r for r in runs if r.status == DagsterRunStatus.FAILURE]
            assert [r.tags["dagster/partition"] for r in failed] == [keys[-1]], statuses
            messages = " ".join(
                e.dagster_event.message or ""
                for e in instance.all_logs(
                    failed[0].run_id, of_type={DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT}
                )
                if e.dagster_event
            )
            assert f"Celery worker {victim}@" in messages and "does not answer" in messages, messages[-2000:]
            retry = [r for r in runs if r.tags.get("contimg/retry_of") == failed[0].run_id]
            assert len(retry) == 1 and retry[0].status == DagsterRunStatus.SUCCESS
            assert retry[0].tags["contimg/reprocess"] == "cluster-test" and retry[0].tags["dagster/retry_number"] == "1"
            assert (
                failed[0].tags["dagster/backfill"]
                and instance.get_run_by_id(failed[0].run_id).tags["dagster/will_retry"] == "false"
            )  # nothing waits for a retry Dagster will not make
            survivor = next(w["node"] for w in state["workers"] if w["name"] != victim)
            assert by_worker[retry[0].run_id] == survivor
            assert {k for k, s in statuses if s == DagsterRunStatus.SUCCESS} == set(keys)
            # pool limit 2: CASA steps of the two workers ran at the same time, never more than two
            intervals = casa_step_intervals(instance, runs)
            assert max_overlap(intervals) == 2, intervals
        assert orphans_gone_after is not None and orphans_gone_after < 30, "CASA job outlived its killed worker"
        for k in keys:
            assert Path(f"{layout.image_prefix(k)}.pbcor.fits").exists(), k
        # after the kill and the retry: every chunk imaged, one current MS and one good image each (the killed
        # attempt may have left a superseded MS row, never a second current one)
        rows = catalogue_per_window(state, layout)
        assert {k: r[:3] for k, r in rows.items()} == {k: ("imaged", 1, 1) for k in keys}, rows
    finally:
        report = cluster.stop(root)
    assert report["reaped"] == [], report
