"""The nightly mosaic: at 03:15 UTC, the previous UTC day, whatever its gaps."""

from schedules.daily import previous_day_schedule


def build_mosaic_schedule(job):
    """The nightly mosaic's schedule: the previous UTC day at 03:15 UTC."""
    return previous_day_schedule(
        job,
        name="nightly_mosaic_schedule",
        cron_schedule="15 3 * * *",
        run_key_prefix="mosaic",
        description="Requests the previous UTC day's nightly_mosaic at 03:15 UTC.",
    )
