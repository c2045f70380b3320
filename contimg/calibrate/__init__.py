"""Calibration: calibrators and their transits, the solve plan, averaging and flagging for the solve, solution
quality, the caltable registry's rules, and the calibrate job's typed report (the CASA solve is ``job/``).
"""
