"""Schedules: the nightly mosaic and housekeeping."""

SCHEDULES: list = []
