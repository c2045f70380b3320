"""Calibration planning (pure): which calibrator, when it transits, and the flux to model it with."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.time import Time

from contimg.calibrate.calibrators import find_calibrator
from contimg.calibrate.report import SolvePlan
from contimg.calibrate.transit import DEFAULT_RADIUS_DEG, find_transits
from contimg.core.beam import airy_power
from contimg.core.instrument import N_SUBBANDS, SITE, subband_freqs_hz

__all__ = ["drift_averaged_beam", "plan_solve"]

BAND_EDGES_HZ = (subband_freqs_hz(N_SUBBANDS - 1).min(), subband_freqs_hz(0).max())


def drift_averaged_beam(
    ra_deg: float,
    dec_deg: float,
    start_mjd: float,
    end_mjd: float,
    pointing_dec_deg: float,
    freq_hz: float = 1.4e9,
    n: int = 24,
) -> float:
    """Mean Airy response at (ra, dec) while the beam (HA=0, pointing dec) drifts over the chunk."""
    t = Time(start_mjd + (np.arange(n) + 0.5) / n * (end_mjd - start_mjd), format="mjd", scale="utc")
    frame = HADec(obstime=t, location=SITE, pressure=0 * u.hPa)
    src = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg).transform_to(frame)
    ptg = SkyCoord(ha=np.zeros(n) * u.deg, dec=np.full(n, pointing_dec_deg) * u.deg, frame=frame)
    return float(np.mean(airy_power(src.separation(ptg).rad, freq_hz)))


def plan_solve(
    start_mjd: float,
    end_mjd: float,
    pointing_dec_deg: float,
    calibrator: str | None = None,
    radius_deg: float = DEFAULT_RADIUS_DEG,
) -> SolvePlan:
    """The calibrator to solve on and its model.

    The model flux is the catalogue 20 cm flux times the primary beam averaged over the chunk's
    drift: the gains must not absorb the beam, or every target would inherit it.

    Raises
    ------
    ValueError
        If no calibrator (or not the named one) transits in the chunk within ``radius_deg``.
    """
    transits = find_transits(start_mjd, end_mjd, pointing_dec_deg, radius_deg=radius_deg)
    if calibrator:
        wanted = find_calibrator(calibrator).name
        transits = [t for t in transits if t.calibrator.name == wanted]
    if not transits:
        what = f"calibrator {calibrator}" if calibrator else "no VLA calibrator"
        raise ValueError(
            f"{what} transits between MJD {start_mjd:.5f} and {end_mjd:.5f} within {radius_deg} deg of "
            f"dec {pointing_dec_deg:.2f}"
        )
    best = transits[0]
    cal = best.calibrator
    beam = drift_averaged_beam(cal.ra_deg, cal.dec_deg, start_mjd, end_mjd, pointing_dec_deg)
    # The beam narrows with frequency: off the pointing centre it tilts the apparent spectrum (5 % across
    # the band at 0.7 deg). Folded into the model's spectral index so the bandpass does not absorb it.
    lo, hi = (
        drift_averaged_beam(cal.ra_deg, cal.dec_deg, start_mjd, end_mjd, pointing_dec_deg, freq_hz=f)
        for f in BAND_EDGES_HZ
    )
    beam_index = float(np.log(hi / lo) / np.log(BAND_EDGES_HZ[1] / BAND_EDGES_HZ[0])) if lo > 0 and hi > 0 else 0.0
    intrinsic = cal.spectral_index or 0.0
    return SolvePlan(
        name=cal.name,
        ra_deg=cal.ra_deg,
        dec_deg=cal.dec_deg,
        flux_jy=cal.flux_jy,
        transit_mjd=best.transit_mjd,
        offset_deg=best.offset_deg,
        pb_flux_jy=best.pb_flux_jy,
        mean_beam=beam,
        apparent_flux_jy=cal.flux_jy * beam,
        intrinsic_spectral_index=intrinsic,
        beam_spectral_index=beam_index,
        spectral_index=intrinsic + beam_index,
    )
