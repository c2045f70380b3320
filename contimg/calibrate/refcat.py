"""The field around a calibrator from the reference catalogue (pure; no CASA).

A calibrator chunk sees the calibrator and every other source in the primary beam; left out of the
model, a 100 mJy source a degree away is a phase error that grows with baseline. The catalogue is the
one ``CONTIMG_REFERENCE_CATALOG`` or ``contimg calibrate --reference-catalog`` names, read by
:func:`contimg.core.refcat.read_reference_catalog` (its formats and errors); this module keeps only the
calibration's selection of it.
"""

from __future__ import annotations

import numpy as np

from contimg.core.refcat import ReferenceCatalog

__all__ = ["field_sources"]


def field_sources(
    catalog: ReferenceCatalog,
    ra_deg: float,
    dec_deg: float,
    *,
    radius_deg: float,
    min_flux_jy: float,
    exclude_within_deg: float = 0.0,
) -> ReferenceCatalog:
    """The catalogue's sources within ``radius_deg`` of (ra, dec) with at least ``min_flux_jy``.

    Parameters
    ----------
    catalog : ReferenceCatalog
        The reference catalogue.
    ra_deg, dec_deg : float
        The centre (the calibrator), ICRS degrees.
    radius_deg : float
        Sources farther than this are left out.
    min_flux_jy : float
        Sources fainter than this (1.4 GHz, before the beam) are left out.
    exclude_within_deg : float
        Sources this close or closer (the calibrator itself) are left out.

    Returns
    -------
    ReferenceCatalog
        The selected sources, in catalogue order.
    """
    ra, dec = np.radians(catalog.ra_deg), np.radians(catalog.dec_deg)
    r0, d0 = np.radians(ra_deg), np.radians(dec_deg)
    cos_sep = np.sin(dec) * np.sin(d0) + np.cos(dec) * np.cos(d0) * np.cos(ra - r0)
    sep = np.degrees(np.arccos(np.clip(cos_sep, -1, 1)))
    keep = (sep <= radius_deg) & (sep > exclude_within_deg) & (catalog.flux_jy >= min_flux_jy)
    return catalog[np.flatnonzero(keep)]
