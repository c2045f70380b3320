"""Textbook interferometer geometry for the pure imaging tests (independent of contimg)."""

import numpy as np


def textbook_uvw(baselines_xyz_m: np.ndarray, hour_angle: float, dec: float) -> np.ndarray:
    """uvw (m) of equatorial baselines (X to H=0, Y east, Z to the pole), Thompson, Moran & Swenson eq. 4.1."""
    bx, by, bz = baselines_xyz_m
    sh, ch, sd, cd = np.sin(hour_angle), np.cos(hour_angle), np.sin(dec), np.cos(dec)
    return np.array([sh * bx + ch * by, -sd * ch * bx + sd * sh * by + cd * bz, cd * ch * bx - cd * sh * by + sd * bz])
