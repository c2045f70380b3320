"""FITS products of the imaging job: provenance keywords and atomic writes (pure astropy).

The keywords are the contract in ``docs/conventions.md`` (Images): BMAJ/BMIN/BPA come from the
imager, this module adds BUNIT, QA figures, the caltable set and its paths, the code version and
the partition key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg import __version__, git_commit
from contimg.core.instrument import SITE

__all__ = ["add_provenance", "write_fits_atomic", "beam_arcsec"]


def add_provenance(
    header: fits.Header,
    *,
    rms_jy: float,
    peak_jy: float,
    expected_rms_jy: float,
    calset: str | None,
    caltables: list[str],
    window: str | None,
    imager: str,
    data_column: str,
    ms_path: str,
    pb_limit: float,
) -> fits.Header:
    """Return a copy of ``header`` with the units, QA and provenance keywords of conventions.md.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The imager's header (WCS, BMAJ/BMIN/BPA, DATE-OBS).
    rms_jy, peak_jy, expected_rms_jy : float
        QA figures of the flat (not primary-beam corrected) image, Jy/beam.
    calset : str or None
        Caltable set name; ``None`` is written as ``NONE`` (uncalibrated).
    caltables : list of str
        Tables applied, in apply order (HISTORY cards and CALTABnn keywords).
    window, imager, data_column, ms_path : str
        Partition key, imager used, column imaged and the input Measurement Set.
    pb_limit : float
        Primary-beam level below which the corrected image is blanked.
    """
    h = header.copy()
    for key, value, comment in (
        ("BUNIT", "JY/BEAM", "Stokes I"),
        ("QARMS", float(rms_jy), "[Jy/beam] 1.4826 MAD of residual"),
        ("QAPEAK", float(peak_jy), "[Jy/beam] image peak"),
        ("QAEXPRMS", float(expected_rms_jy), "[Jy/beam] radiometer noise, natural wt"),
        ("CALSET", calset or "NONE", "caltable set applied"),
        ("NCALTAB", len(caltables), "number of caltables applied"),
        ("DATACOL", data_column, "MS column imaged"),
        ("CIVERS", __version__, "contimg package version (from git)"),
        ("CICOMMIT", git_commit(), "contimg git commit"),
        ("WINDOW", window or "", "partition key"),
        ("IMAGER", imager, "imager"),
        ("PBLIMIT", float(pb_limit), "pbcor blanked below this beam level"),
    ):
        h[key] = (value, comment)
    # CASA's exportfits writes OBSGEO-X/Y/Z of zero when its observatory table lacks the telescope
    # (offline site config): write the site's ITRF position so astropy's obsfix finds the array.
    for axis, value in zip("XYZ", SITE.to_geocentric(), strict=True):
        h[f"OBSGEO-{axis}"] = (float(value.to_value("m")), "[m] array ITRF position")
    for i, table in enumerate(caltables):
        # long paths do not fit a card value: the full path goes in HISTORY, the name in CALTABnn
        h[f"CALTAB{i:02d}"] = (Path(table).name[:68], f"caltable {i} in apply order")
        h.add_history(f"caltable applied: {table}")
    h.add_history(f"contimg {__version__}: image of {ms_path}")
    return h


def write_fits_atomic(path: Path, data: np.ndarray, header: fits.Header) -> Path:
    """Write ``data`` with ``header`` to ``path`` via a temporary file in the same folder, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def beam_arcsec(header: fits.Header) -> tuple[float, float, float]:
    """(bmaj_arcsec, bmin_arcsec, bpa_deg) of the restoring beam in ``header``.

    Raises
    ------
    KeyError
        When the header has no BMAJ (an image without a restoring beam).
    """
    return float(header["BMAJ"]) * 3600.0, float(header["BMIN"]) * 3600.0, float(header.get("BPA", 0.0))
