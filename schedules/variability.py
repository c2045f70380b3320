"""The daily variability search: at 03:45 UTC, the previous UTC day, after the mosaic's run has had its slot."""

from datetime import timedelta

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule


def build_variability_schedule(job):
    @schedule(
        job=job,
        cron_schedule="45 3 * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Requests the previous UTC day's variability search at 03:45 UTC (its photometry is in).",
    )
    def variability_schedule(context: ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
        return RunRequest(run_key=f"variability:{day}", partition_key=day)

    return variability_schedule
