"""The parts of the fault drills, fast and without a daemon: the child guard, the hang drill through
CasaRunner's real timeout and a step retry, the run-worker health check, failed-run reasons and the
sensor's re-request of chunks stranded by a daemon killed mid-tick."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    MaterializeResult,
    RetryPolicy,
    asset,
    build_sensor_context,
    job,
    materialize,
    op,
)
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.launcher.default_run_launcher import GRPC_INFO_TAG

from contimg.catalogue import connect
from contimg.catalogue.ingest import get_group, upsert_group
from contimg.catalogue.runs import record_run_failure
from contimg.childjobs.drills import DRILL_MARK, hang_drill_for, parse_hang_drills
from contimg.childjobs.guard import guarded_command
from contimg_resources import CasaRunner
from contimg_resources.casa_runner import job_timeout_s
from contimg_resources.run_launcher import LocalRunLauncher

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

REPO = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pids, timeout_s=30.0) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


# ------------------------------------------------------------------------------------------ child guard


def test_guard_stops_the_job_group_when_its_parent_dies_and_the_job_cleans_up(tmp_path):
    pidfile, work = tmp_path / "pids", tmp_path / ".out.tmp-1"
    job_argv = [sys.executable, "-m", "tests.jobs.tempwork", str(pidfile), str(work)]
    # a stand-in for the step process: starts the guarded job in a new session, then waits forever
    parent_code = (
        "import subprocess, sys, time\n"
        "from contimg.childjobs.guard import guarded_command\n"
        f"subprocess.Popen(guarded_command({job_argv!r}), start_new_session=True)\n"
        "time.sleep(600)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        child, grandchild = map(int, pidfile.read_text().split())
        assert work.is_dir() and alive(child) and alive(grandchild)
        parent.send_signal(signal.SIGKILL)  # the run worker dies without a word
        parent.wait()
        assert wait_gone([child, grandchild]) == [], "the job outlived its parent"
        assert not work.exists(), "the job's temporary folder was left behind"
    finally:
        parent.kill()
        parent.wait()
        if pidfile.exists():  # never leave the job behind, even when the test fails
            for pid in map(int, pidfile.read_text().split()):
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except OSError:
                    pass


def test_guard_passes_the_exit_status_through():
    assert subprocess.run(guarded_command([sys.executable, "-c", "raise SystemExit(3)"])).returncode == 3
    assert subprocess.run(guarded_command([sys.executable, "-c", "print('ok')"])).returncode == 0


# ------------------------------------------------------------------------------- settings of the drills


def test_timeout_and_hang_settings_parse_and_reject_nonsense():
    env = {"CONTIMG_CASA_TIMEOUT_S": "image=45,600"}
    assert job_timeout_s("image", env) == 45 and job_timeout_s("convert", env) == 600
    assert job_timeout_s("convert", {}) == 1800
    with pytest.raises(ValueError, match="CONTIMG_CASA_TIMEOUT_S"):
        job_timeout_s("image", {"CONTIMG_CASA_TIMEOUT_S": "image=soon"})
    env = {"CONTIMG_DRILL_HANG": "image:2026-01-25T00:25,convert:2026-01-25T0005@all"}
    assert hang_drill_for("image", "image-2026-01-25T0025", 0, env) is not None
    assert hang_drill_for("image", "image-2026-01-25T0025", 1, env) is None, "only the first attempt hangs"
    assert hang_drill_for("image", "image-2026-01-25T0020", 0, env) is None
    assert hang_drill_for("convert", "convert-2026-01-25T0005", 5, env) is not None
    assert hang_drill_for("image", "image-2026-01-25T0025", 0, {}) is None
    for bad in ("image", "image:", ":x", "image:x@0", "image:x@soon"):
        with pytest.raises(ValueError, match="CONTIMG_DRILL_HANG"):
            parse_hang_drills(bad)


def test_hang_drill_times_out_is_killed_whole_and_the_retry_succeeds(layout, monkeypatch, tmp_path):
    """The drill through CasaRunner's real path: hang -> timeout -> group kill -> Failure -> retry -> real job."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the test jobs live under tests/
    monkeypatch.setenv("CONTIMG_DRILL_HANG", "unused:drill-window")
    monkeypatch.setenv("CONTIMG_CASA_TIMEOUT_S", "unused=3")
    attempts = []

    @asset(retry_policy=RetryPolicy(max_retries=1))
    def drilled(context: AssetExecutionContext, casa: CasaRunner):
        attempts.append(context.retry_number)
        m = casa.run(
            context,
            "unused",
            ["x"],
            log_name="job-drill-window",
            module="tests.jobs.report",
            layout=layout,
            report_path=layout.scratch / "report.json",
        )
        return MaterializeResult(metadata={"answer": m["answer"]})

    t0 = time.monotonic()
    result = materialize(
        [drilled],
        resources={"casa": CasaRunner(kill_grace_s=1)},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success and attempts == [0, 1]
    assert time.monotonic() - t0 < 90
    log = (layout.logs / "job-drill-window.log").read_text()
    assert DRILL_MARK in log and "tests.jobs.report" in log
    failures = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(failures) == 1 and "timed out after 3 s" in str(failures[0].event_specific_data.error)
    grandchild = int(log.split("grandchild ")[1].split(";")[0])
    assert wait_gone([grandchild], 10) == [], "the hanging job's grandchild survived the group kill"


# ------------------------------------------------------------------------------- run-worker health check


def test_run_worker_health_comes_from_the_recorded_pid():
    @op
    def noop():
        pass

    @job
    def tiny():
        noop()

    instance = DagsterInstance.ephemeral()
    run = tiny.execute_in_process(instance=instance).dagster_run
    launcher = LocalRunLauncher()
    launcher.register_instance(instance)
    assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING, "not local: not judged"
    instance.add_run_tags(run.run_id, {GRPC_INFO_TAG: json.dumps({"host": "localhost", "socket": "/tmp/x.sock"})})
    run = instance.get_run_by_id(run.run_id)
    assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING, "no pid recorded yet"
    worker = subprocess.Popen(["sleep", "60"])
    try:
        instance.report_engine_event(
            f"Started process for run (pid: {worker.pid}).", run, EngineEventData.in_process(worker.pid)
        )
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    finally:
        worker.kill()
        worker.wait()
    health = launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED and f"pid {worker.pid}" in health.msg


# ---------------------------------------------------------------------------------- failed-run reasons


def test_failed_runs_leave_a_reason_unless_the_group_has_its_own(tmp_path):
    conn = connect(tmp_path / "cat.sqlite3")
    try:
        upsert_group(conn, "2026-01-25T00:05", state="converted")
        reason = record_run_failure(
            conn, "2026-01-25T00:05", "abcdef123456", "Detected run worker status FAILED\nmore", will_retry=True
        )
        g = get_group(conn, "2026-01-25T00:05")
        assert g["state"] == "converted" and "abcdef12" in g["error"] and "re-runs" in g["error"] and reason
        record_run_failure(conn, "2026-01-25T00:05", "bbbbbbbb1234", "worker gone again", will_retry=False)
        g = get_group(conn, "2026-01-25T00:05")
        assert g["state"] == "failed" and g["error"] == "run bbbbbbbb failed: worker gone again"
        upsert_group(conn, "2026-01-25T00:10", state="failed", error="imaging: rms too high")
        assert record_run_failure(conn, "2026-01-25T00:10", "cccccccc", "step failed", will_retry=False) is None
        assert get_group(conn, "2026-01-25T00:10")["error"] == "imaging: rms too high"
    finally:
        conn.close()


# ------------------------------------------------------------------- chunks stranded by a mid-tick kill


def test_sensor_requests_again_a_chunk_whose_run_was_never_created(layout, monkeypatch):
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", "0")
    from contimg_assets.definitions import defs

    instance = DagsterInstance.ephemeral()
    sensor = defs.get_sensor_def("ingest_sensor")
    resources = {"storage": defs.resources["storage"], "catalogue": defs.resources["catalogue"]}
    conn = connect(layout.catalogue)
    try:
        old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="seconds")
        upsert_group(
            conn,
            "2026-01-25T00:05",
            start_utc="2026-01-25T00:05:09",
            state="requested",
            n_subbands=16,
            files=[],
            run_key="2026-01-25T00:05:abc123",
            requested_at=old,
        )
        upsert_group(
            conn,
            "2026-01-25T00:10",
            start_utc="2026-01-25T00:10:18",
            state="requested",
            n_subbands=16,
            files=[],
            run_key="2026-01-25T00:10:def456",
            requested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    finally:
        conn.close()

    def tick():
        return sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources, definitions=defs))

    requests = tick().run_requests
    # the old one only: the fresh one's run may simply not be created yet
    assert [(r.partition_key, r.run_key) for r in requests] == [("2026-01-25T00:05", "2026-01-25T00:05:abc123")]

    @op
    def noop():
        pass

    @job
    def stand_in():
        noop()

    stand_in.execute_in_process(instance=instance, tags={"dagster/run_key": "2026-01-25T00:05:abc123"})
    assert tick().run_requests == [], "a run with that key exists: nothing to re-request"
    con = sqlite3.connect(layout.catalogue)
    try:
        assert con.execute("SELECT count(*) FROM groups WHERE state = 'requested'").fetchone() == (2,)
    finally:
        con.close()
