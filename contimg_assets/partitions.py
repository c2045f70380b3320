"""Partitions: 5-minute windows for the per-chunk assets, days for the nightly mosaic.

The start is a setting (``CONTIMG_PARTITION_START``, default 2026-01-01T00:00): Dagster advises at
most ~100k partitions per asset and a year of 5-minute windows is 105,120, so the start is rolled
forward once a year (README); the catalogue keeps the whole history.
"""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, TimeWindowPartitionsDefinition

from contimg.core.config import read

WINDOW_FMT = "%Y-%m-%dT%H:%M"
PARTITION_START = read("CONTIMG_PARTITION_START")

FIVE_MIN = TimeWindowPartitionsDefinition(
    cron_schedule="*/5 * * * *", start=PARTITION_START, fmt=WINDOW_FMT, timezone="UTC"
)
DAILY = DailyPartitionsDefinition(start_date=PARTITION_START[:10], fmt="%Y-%m-%d", timezone="UTC")
