"""Calibration, from the choice of calibrator to the calibrate job's report.

Calibrators and their transits, the solve plan, averaging and flagging for the solve, solution
quality, the caltable registry's rules, and the calibrate job's typed report (the CASA solve is ``job/``).
"""
