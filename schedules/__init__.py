"""Schedules: the nightly mosaic and the daily variability search."""

from schedules.mosaic import build_mosaic_schedule
from schedules.variability import build_variability_schedule

__all__ = ["build_mosaic_schedule", "build_variability_schedule"]
