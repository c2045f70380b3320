"""Daily housekeeping at 04:30 UTC, after the nightly mosaic (03:15) has used the previous day's images."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from contimg_assets.housekeeping import housekeeping_job

housekeeping_schedule = ScheduleDefinition(
    name="housekeeping_schedule",
    job=housekeeping_job,
    cron_schedule="30 4 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retention of scratch, measurement sets and Dagster runs (contimg/ops/housekeeping.py).",
)
