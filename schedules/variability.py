"""The daily variability search: at 03:45 UTC, the previous UTC day, after the mosaic's run has had its slot."""

from schedules.daily import previous_day_schedule


def build_variability_schedule(job):
    """The variability search's schedule: the previous UTC day at 03:45 UTC (its photometry is in)."""
    return previous_day_schedule(
        job,
        name="variability_schedule",
        cron_schedule="45 3 * * *",
        run_key_prefix="variability",
        description="Requests the previous UTC day's variability search at 03:45 UTC (its photometry is in).",
    )
