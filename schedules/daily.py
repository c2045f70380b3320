"""Daily schedules that request the previous UTC day's partition of a daily job, whatever that day's gaps."""

from datetime import timedelta

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule


def previous_day_schedule(job, *, name: str, cron_schedule: str, run_key_prefix: str, description: str):
    """A schedule of ``job`` (daily partitions) that requests the previous UTC day at ``cron_schedule``."""

    @schedule(
        name=name,
        job=job,
        cron_schedule=cron_schedule,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _previous_day(context: ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
        return RunRequest(run_key=f"{run_key_prefix}:{day}", partition_key=day)

    return _previous_day
