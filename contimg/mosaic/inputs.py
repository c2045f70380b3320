"""Mosaic inputs: a quick image, its primary beam beside it and its rms (pure: astropy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from contimg.image.qa import robust_rms

__all__ = ["MosaicInput", "read_input", "plane"]


@dataclass
class MosaicInput:
    """One input: the flat image, its primary beam on the same grid, its rms and window key."""

    image: Path
    pb: Path
    rms_jy: float
    window: str = ""


def plane(hdu) -> tuple[np.ndarray, WCS]:
    """The 2-D float32 pixels of ``hdu`` and their celestial WCS."""
    data = np.asarray(hdu.data, dtype=np.float32)
    return data.reshape(data.shape[-2:]), WCS(hdu.header).celestial


def read_input(image_path, window: str = "") -> MosaicInput:
    """An image and its primary beam (``PREFIX.pb.fits`` beside ``PREFIX.fits``); rms from QARMS or the data.

    Parameters
    ----------
    image_path : path-like
        The flat (apparent) image ``PREFIX.fits``.
    window : str
        Window key recorded in the mosaic's INPUTS table (default: the ``WINDOW`` header keyword).

    Returns
    -------
    MosaicInput

    Raises
    ------
    FileNotFoundError
        If the image or its primary-beam file is missing.
    ValueError
        If the rms (QARMS or 1.4826 x MAD of the data) is not a positive finite number.
    """
    image_path = Path(image_path)
    pb = (
        image_path.with_name(image_path.name[: -len(".fits")] + ".pb.fits")
        if image_path.name.endswith(".fits")
        else image_path.with_name(image_path.name + ".pb.fits")
    )
    if not image_path.exists() or not pb.exists():
        raise FileNotFoundError(f"mosaic input {image_path} needs {pb.name} beside it")
    header = fits.getheader(image_path)
    rms = header.get("QARMS")
    if not rms:
        with fits.open(image_path) as hdul:
            rms = robust_rms(plane(hdul[0])[0])
    rms = float(rms)
    if not np.isfinite(rms) or rms <= 0:
        raise ValueError(f"mosaic input {image_path}: rms {rms} Jy/beam is not positive")
    return MosaicInput(image_path, pb, rms, window or header.get("WINDOW", ""))
