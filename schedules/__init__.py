"""Schedules: the nightly mosaic."""

from schedules.mosaic import build_mosaic_schedule

__all__ = ["build_mosaic_schedule"]
