"""retry_backfill_runs: a reprocessing run whose worker died runs again, as a run of the stream would.

``contimg reprocess`` submits its runs through ``dagster job backfill``, which submits every run itself
and records the backfill as COMPLETED straight away. Dagster's run retries (``run_retries`` in
dagster.yaml) skip any run of a backfill in a terminal state, so a run whose worker was killed (a
node lost in the middle of a year's reprocessing) would stay failed, tagged ``dagster/will_retry``
true for ever. This sensor takes those runs only -- failed, marked for a retry by Dagster's own
rules (a run-level failure, not an asset's; attempts left), part of a backfill that Dagster will not
retry because it is already COMPLETED -- and requests the same job and window once more with the
original tags, counting the attempt in ``dagster/retry_number`` so the limit of ``run_retries`` holds.
The failed run's ``dagster/will_retry`` is then set to false, with ``contimg/retried_by`` naming this
sensor, so nothing waits for a retry Dagster will not make.
"""

from __future__ import annotations

from dagster import DefaultSensorStatus, RunFailureSensorContext, RunRequest, SkipReason, run_failure_sensor

from contimg.core.config import read

BACKFILL_TAG = "dagster/backfill"
WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
RETRY_OF_TAG = "contimg/retry_of"
RETRIED_BY_TAG = "contimg/retried_by"
# Dagster's status of a backfill whose runs were all submitted at once by `dagster job backfill`
SUBMITTED_BACKFILL_STATUS = "COMPLETED"
SENSOR_NAME = "retry_backfill_runs"
# Dagster tags a retry keeps: the queue priority and the run's own retry policy
KEPT_DAGSTER_TAGS = ("dagster/priority", "dagster/max_retries", "dagster/retry_on_asset_or_op_failure")


def retry_tags(run_tags: dict, run_id: str) -> dict:
    """Tags of the retry of a failed backfill run: the user's and contimg's kept, Dagster's own dropped
    (backfill, partition, failure reason), the attempt counted on."""
    kept = {k: v for k, v in run_tags.items() if not k.startswith("dagster/") or k in KEPT_DAGSTER_TAGS}
    attempt = int(run_tags.get(RETRY_NUMBER_TAG, "0")) + 1
    return {**kept, RETRY_NUMBER_TAG: str(attempt), RETRY_OF_TAG: run_id}


def build_backfill_retry_sensor(jobs, *, minimum_interval_seconds: int | None = None):
    interval = minimum_interval_seconds or read("CONTIMG_SENSOR_INTERVAL_S")

    @run_failure_sensor(
        name=SENSOR_NAME,
        monitored_jobs=list(jobs),
        request_jobs=list(jobs),
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Re-runs a reprocessing (backfill) run that failed outside its assets, e.g. a dead worker: "
        "Dagster's run_retries skip runs of a backfill submitted all at once.",
    )
    def retry_backfill_runs(context: RunFailureSensorContext):
        run = context.dagster_run
        backfill_id = run.tags.get(BACKFILL_TAG)
        window = run.tags.get("dagster/partition")
        if not backfill_id or not window:
            return SkipReason(f"run {run.run_id} is not a partition run of a backfill")
        # fetched again: the tag is set with the failure, and Dagster's retry daemon may have acted meanwhile
        current = context.instance.get_run_by_id(run.run_id)
        if current is None or current.tags.get(WILL_RETRY_TAG, "false").lower() != "true":
            return SkipReason(
                f"run {run.run_id}: Dagster's run_retries do not retry it (an asset failed, or no attempts left)"
            )
        if current.tags.get("dagster/auto_retry_run_id"):
            return SkipReason(f"run {run.run_id} was retried by Dagster")
        backfill = context.instance.get_backfill(backfill_id)
        status = getattr(getattr(backfill, "status", None), "value", None)
        if status != SUBMITTED_BACKFILL_STATUS:
            return SkipReason(f"run {run.run_id}: backfill {backfill_id} is {status}; Dagster decides its retries")
        context.instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false", RETRIED_BY_TAG: SENSOR_NAME})
        context.log.info(f"{window}: run {run.run_id} of backfill {backfill_id} failed outside its assets; re-run")
        return RunRequest(
            run_key=f"retry-of-{run.run_id}",
            job_name=run.job_name,
            partition_key=window,
            tags=retry_tags(dict(run.tags), run.run_id),
        )

    return retry_backfill_runs
