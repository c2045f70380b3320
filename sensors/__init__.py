"""Sensors: decide when to run; never do heavy work in a tick."""

from sensors.backfill_retry_sensor import build_backfill_retry_sensor
from sensors.ingest_sensor import build_ingest_sensor
from sensors.run_failure_sensor import build_run_failure_sensor

__all__ = ["build_backfill_retry_sensor", "build_ingest_sensor", "build_run_failure_sensor"]
