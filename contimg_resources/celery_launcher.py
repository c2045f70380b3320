"""ClusterRunLauncher: dagster-celery's run launcher, with a health check that sees a dead Celery worker.

Cluster mode (``deploy/dagster.cluster.yaml``): the daemon's run queue hands each run to a Celery
task (``execute_job``) through a broker (Redis); whichever worker takes it executes the whole run in
its pool process, against the shared Postgres instance. Workers can sit on other hosts.

Why a subclass: ``CeleryRunLauncher.check_run_worker_health`` (dagster-celery 0.29.27) reads only
the task state in the result backend. A worker killed mid-run (SIGKILL, OOM, a host lost) never
writes a final state, so the task stays ``STARTED`` and the run stays ``STARTED`` -- holding its
``casa`` pool slot and its place in the run queue -- until ``max_runtime_seconds``
(dagster-io/dagster PR #33493 proposes the same fix upstream). With the default ``rpc://`` backend
it is worse: only the sending process can read the state (``PENDING`` elsewhere, which run
monitoring treats as a failure) and it is lost when the daemon restarts; use a Redis backend.

Here, while the task is ``STARTED``, the worker named in the task's state is asked through the
broker which tasks it is running (``inspect().active()``): no answer within ``ping_timeout_s``
(asked twice), or an answer without this task (the worker was restarted under the same name), and
the task state still ``STARTED`` after that, means the run worker is gone: the run is reported
``FAILED`` and run monitoring fails it with the reason; ``run_retries`` re-executes it on a live
worker.

Celery settings the cluster relies on (``CLUSTER_CELERY_CONFIG``, merged under the instance's own
``config_source``): a worker takes a task only when it has a free process (no prefetch, acks on
start), task states are kept in the backend, and the ``STARTED`` state is recorded.
"""

from __future__ import annotations

import os
import socket

from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

# the health-check types have no public name; run_launcher is the one module that imports them privately
from contimg_resources.run_launcher import CheckRunHealthResult, WorkerStatus

__all__ = ["ClusterRunLauncher", "CLUSTER_CELERY_CONFIG", "celery_app_args"]

CLUSTER_CELERY_CONFIG = {
    "worker_prefetch_multiplier": 1,
    "worker_disable_prefetch": True,  # Redis: fetch a task only when a pool process is free
    "task_acks_late": False,  # acked when it starts: a killed worker's run is not redelivered
    "task_track_started": True,
    "result_extended": True,  # the backend records which worker ran each task
    "result_expires": 7 * 86400,  # task states outlive the longest run and a weekend
    "worker_send_task_events": False,
    "broker_connection_retry_on_startup": True,
}
DEFAULT_BROKER_ENV = "CONTIMG_CELERY_BROKER"
DEFAULT_BACKEND_ENV = "CONTIMG_CELERY_BACKEND"


def celery_app_args(
    broker: str | None = None,
    backend: str | None = None,
    config_source: dict | None = None,
    default_queue: str = "dagster",
) -> dict:
    """Arguments of ``dagster_celery.make_app.make_app`` for the cluster (launcher and workers alike)."""
    return {
        "broker": broker or os.environ.get(DEFAULT_BROKER_ENV),
        "backend": backend or os.environ.get(DEFAULT_BACKEND_ENV),
        "include": [],
        "config_source": {**CLUSTER_CELERY_CONFIG, **(config_source or {})},
        "task_default_queue": default_queue,
    }


class ClusterRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` whose health check notices a dead worker (module docstring)."""

    ping_timeout_s = 3.0

    def __init__(
        self,
        default_queue: str,
        broker: str | None = None,
        backend: str | None = None,
        include: list[str] | None = None,
        config_source: dict | None = None,
        inst_data=None,
    ):
        super().__init__(
            default_queue=default_queue,
            broker=broker,
            backend=backend,
            include=include,
            config_source={**CLUSTER_CELERY_CONFIG, **(config_source or {})},
            inst_data=inst_data,
        )

    def _active_on(self, worker: str) -> set[str] | None:
        """Task ids the worker says it is running, or None if it does not answer (asked twice)."""
        for _ in range(2):
            try:
                reply = self.celery.control.inspect(destination=[worker], timeout=self.ping_timeout_s).active()
            except Exception:  # noqa: BLE001 -- broker trouble: treat as no answer, ask again
                reply = None
            if reply and worker in reply:
                return {t.get("id") for t in reply[worker] or []}
        return None

    def _running_anywhere(self, task_id: str) -> str | None:
        """The worker running ``task_id``, "" if workers answer and none runs it, None if no worker answers."""
        try:
            reply = self.celery.control.inspect(timeout=self.ping_timeout_s).active() or {}
        except Exception:  # noqa: BLE001 -- broker trouble
            return None
        if not reply:
            return None
        return next((w for w, tasks in reply.items() if any(t.get("id") == task_id for t in tasks or [])), "")

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if not task_id:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "run has no Celery task id tag")
        result = self.celery.AsyncResult(task_id)
        state = result.state
        if state == "SUCCESS":
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        if state == "FAILURE":
            return CheckRunHealthResult(WorkerStatus.FAILED, f"Celery task {task_id} failed: {result.info!r}")
        if state != "STARTED":
            # The run is STARTED, so a worker recorded the task STARTED before running it: a PENDING state now
            # means the backend lost it (Redis restarted without persistence). Ask every worker.
            running = self._running_anywhere(task_id)
            if running is None or running:
                return CheckRunHealthResult(
                    WorkerStatus.RUNNING,
                    f"Celery task {task_id} is {state}; {'running on ' + running if running else 'no worker answers'}",
                )
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"Celery task {task_id} is {state} (its state was lost) and no worker runs it"
            )
        info = result.info if isinstance(result.info, dict) else {}
        worker = info.get("hostname")
        if not worker:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"Celery task {task_id} started; worker not recorded")
        active = self._active_on(worker)
        if active is not None and task_id in active:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"running on {worker} (pid {info.get('pid')})")
        # the task may have ended between the two reads: only a state still STARTED means a lost worker
        if self.celery.AsyncResult(task_id).state != "STARTED":
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"Celery task {task_id} just ended")
        why = "does not answer" if active is None else "answers but no longer runs it (restarted?)"
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Celery worker {worker} (pid {info.get('pid')}) {why}: the run worker is gone "
            f"(checked from {socket.gethostname()})",
        )
