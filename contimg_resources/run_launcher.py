"""LocalRunLauncher: Dagster's default run launcher, plus a run-worker health check for run monitoring.

With ``DefaultRunLauncher`` run monitoring cannot tell that a run worker died: the daemon's code
server starts run workers in the daemon's process group, so a daemon killed with its group (SIGKILL,
a systemd stop, an OOM kill of the group) takes every in-flight run worker with it, and those runs
stay ``STARTED`` until ``max_runtime_seconds`` (2 h) -- holding a ``casa`` pool slot and a place in
the run queue all that time, which stalls the stream. This launcher answers run monitoring's health
check from ``/proc``: the run worker's pid is in the run's own event log ("Started process for run
(pid: N)"), and the process must still exist, not be a zombie, and have started before that event
(a recycled pid is a different process). A dead worker makes run monitoring mark the run failed
with the reason, and ``run_retries`` re-executes it from the failed steps.

Only meaningful on one node, where run workers run on the daemon's host (this deployment). A run
whose code server is on another host, or whose pid is not recorded yet, is reported as running.
Configure in the instance's ``dagster.yaml``::

    run_launcher:
      module: contimg_resources.run_launcher
      class: LocalRunLauncher
"""

import json
import os
import socket

from dagster import DagsterEventType, DefaultRunLauncher

# The only private Dagster imports outside the tests (tests/test_layers.py allows this one module): the
# health-check result types of RunLauncher.check_run_worker_health and the tag holding a run's code-server
# address have no public name in Dagster 1.13. Importing them, rather than copying their values, makes a
# Dagster upgrade that moves them fail here at load time instead of silently reporting every run healthy.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import GRPC_INFO_TAG

__all__ = ["LocalRunLauncher", "run_worker_pid", "process_alive_since"]

STARTED_PREFIX = "Started process for run (pid: "
EXITED_PREFIX = "Process for run exited (pid: "
CLOCK_SLACK_S = 5.0  # /proc start times have clock-tick resolution; event timestamps come later


def _boot_time() -> float:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_alive_since(pid: int, not_after: float | None = None) -> bool:
    """True if ``pid`` is a live (non-zombie) process that started no later than ``not_after`` (epoch s)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] in ("Z", "X"):
        return False
    if not_after is None:
        return True
    started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= not_after + CLOCK_SLACK_S


def run_worker_pid(instance, run_id: str) -> tuple[int | None, float | None, bool]:
    """(pid, timestamp of its start event, whether its exit was logged) of the run worker of ``run_id``."""
    pid = started_at = None
    exited = False
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        message = entry.dagster_event.message if entry.dagster_event else entry.user_message
        message = message or ""
        if message.startswith(STARTED_PREFIX):
            try:
                pid = int(message[len(STARTED_PREFIX) :].split(")")[0])
            except ValueError:
                continue
            started_at, exited = entry.timestamp, False
        elif pid is not None and message.startswith(f"{EXITED_PREFIX}{pid})"):
            exited = True
    return pid, started_at, exited


def _is_local(run) -> bool:
    info = run.tags.get(GRPC_INFO_TAG)
    if not info:
        return False
    try:
        grpc = json.loads(info)
    except ValueError:
        return False
    if grpc.get("socket"):
        return True
    return grpc.get("host") in ("localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn())


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers run monitoring can check (see the module docstring)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        if not _is_local(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not on this host: not checked")
        pid, started_at, exited = run_worker_pid(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
        if exited:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) exited without ending the run")
        if process_alive_since(pid, started_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker (pid {pid}) on {socket.gethostname()} is gone (killed with its code server or daemon?)",
        )
