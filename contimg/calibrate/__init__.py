"""Calibration: calibrators and their transits, the solve plan, averaging and flagging for the solve."""
