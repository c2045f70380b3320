"""Primary beam of a DSA-110 dish: an Airy pattern of a uniformly lit 4.65 m aperture.

No measured DSA-110 beam is public; the Airy model gives a FWHM of about 2.7 deg at 1.405 GHz.
The simulator, the primary-beam correction and the mosaic weights all use this one function.
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

from contimg.core.constants import C_M_S
from contimg.core.instrument import DISH_DIAMETER_M

__all__ = ["airy_power", "fwhm_rad", "C_M_S"]


def airy_power(theta_rad, freq_hz, dish_m: float = DISH_DIAMETER_M) -> np.ndarray:
    """Power response (1 on axis) at angle ``theta_rad`` from the pointing, broadcasting inputs.

    ``(2 J1(x) / x)**2`` with ``x = pi D sin(theta) / lambda``; ``scipy.special.j1`` is the
    Bessel function (a home-made J1 once made far sources look brighter upstream).
    """
    theta = np.asarray(theta_rad, dtype=float)
    freq = np.asarray(freq_hz, dtype=float)
    x = np.pi * dish_m * np.sin(theta) * freq / C_M_S
    with np.errstate(invalid="ignore", divide="ignore"):
        amp = np.where(np.abs(x) < 1e-8, 1.0, 2.0 * j1(x) / np.where(x == 0, 1.0, x))
    return amp**2


def fwhm_rad(freq_hz: float, dish_m: float = DISH_DIAMETER_M) -> float:
    """Full width at half maximum of the Airy power pattern (1.029 lambda / D)."""
    return 1.02899 * C_M_S / freq_hz / dish_m
