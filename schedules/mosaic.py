"""The nightly mosaic: at 03:15 UTC, the previous UTC day, whatever its gaps."""

from datetime import timedelta

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule


def build_mosaic_schedule(job):
    @schedule(
        job=job,
        cron_schedule="15 3 * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Requests the previous UTC day's nightly_mosaic at 03:15 UTC.",
    )
    def nightly_mosaic_schedule(context: ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
        return RunRequest(run_key=f"mosaic:{day}", partition_key=day)

    return nightly_mosaic_schedule
