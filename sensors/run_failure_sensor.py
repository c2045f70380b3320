"""record_failed_runs: a failed chunk run always leaves its reason in the catalogue.

Assets record the failures they see; this catches the rest (a run worker killed with the daemon and
failed by run monitoring, a run that never started, an unexpected error) through
``contimg.catalogue.runs.record_run_failure``.
"""

from dagster import DefaultSensorStatus, RunFailureSensorContext, SkipReason, run_failure_sensor

from contimg.catalogue.runs import record_run_failure
from contimg.core.config import read
from contimg_resources import Catalogue

WILL_RETRY_TAG = "dagster/will_retry"


def build_run_failure_sensor(jobs, *, minimum_interval_seconds: int | None = None):
    interval = minimum_interval_seconds or read("CONTIMG_SENSOR_INTERVAL_S")

    @run_failure_sensor(
        name="record_failed_runs",
        monitored_jobs=list(jobs),
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Records the reason of every failed chunk run in the catalogue's groups table.",
    )
    def record_failed_runs(context: RunFailureSensorContext, catalogue: Catalogue):
        run = context.dagster_run
        window = run.tags.get("dagster/partition")
        if not window:
            return SkipReason(f"run {run.run_id} has no partition")
        message = context.failure_event.message or ""
        will_retry = run.tags.get(WILL_RETRY_TAG, "false").lower() == "true"
        conn = catalogue.connect()
        try:
            reason = record_run_failure(conn, window, run.run_id, message, will_retry=will_retry)
        finally:
            conn.close()
        context.log.info(f"{window}: {reason or 'group already final; its own reason kept'}")

    return record_failed_runs
