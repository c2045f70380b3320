"""The image's products: QA, the effective primary beam, provenance, FITS, source list and PNG, moved into place.

Every product is written under a temporary name in the job's scratch folder and renamed into place
only when all of them exist; a failure leaves none behind.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Published", "publish_products", "PRODUCT_SUFFIXES"]

# PREFIX + suffix: the image (Jy/beam), primary-beam corrected, the beam, the thumbnail; and
# PREFIX.image when tclean made a CASA image
PRODUCT_SUFFIXES = (".fits", ".pbcor.fits", ".pb.fits", ".sources.fits", ".png")
ARCSEC_PER_DEG = 3600.0


@dataclass(frozen=True)
class Published:
    """What publishing found out about the image."""

    qa: object  # contimg.image.qa.ImageQA
    bmaj_arcsec: float  # the restoring beam (0 when the imager wrote none)
    bmin_arcsec: float
    bpa_deg: float
    casa_image: str | None  # PREFIX.image, when tclean made one
    pb_s: float  # wall seconds for reading the image, its QA and the primary beam
    n_detections: int | None = None  # rows of PREFIX.sources.fits (None: no restoring beam, no list)
    science_qa: object = None  # contimg.image.crossmatch.ScienceQA, None without a reference catalogue
    sources_s: float = 0.0  # wall seconds for the source finder and the cross-match


def publish_products(
    made: dict,
    out_prefix: Path,
    tmpdir: Path,
    *,
    pointings: np.ndarray,
    freq_min_hz: float,
    freq_max_hz: float,
    expected_rms_jy: float,
    cfg,
    calset: str | None,
    caltables: list[str],
    window: str | None,
    imager: str,
    data_column: str,
    ms_path: str,
    reference=None,
) -> Published:
    """Write PREFIX.fits, .pbcor.fits, .pb.fits, .png (and .image) from the imager's ``made``.

    Parameters
    ----------
    made : dict
        The imager's products (``contimg.image.job.imagers``): ``image``, ``residual``, ``casa_image``.
    out_prefix : Path
        Absolute; its folder exists.
    tmpdir : Path
        The job's scratch folder, on the products' file system (renames are atomic).
    pointings : ndarray
        The dish's drift during the chunk (contimg.image.pbcor.drift_pointings).
    freq_min_hz, freq_max_hz : float
        The band imaged; the effective beam averages 5 frequencies across it.
    expected_rms_jy : float
        The radiometer noise, for the header.
    cfg : ImagingConfig
        ``pb_limit``.
    calset, caltables, window, imager, data_column, ms_path
        Provenance for the header (contimg.image.fitsio.add_provenance).
    reference : contimg.core.refcat.ReferenceCatalog, optional
        Cross-match the source list with it (contimg.image.crossmatch): the science-QA figures.

    Raises
    ------
    OSError
        When a product cannot be written (none is then moved into place) or moved.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    from contimg.image.fitsio import add_provenance
    from contimg.image.pbcor import effective_beam, pb_corrected
    from contimg.image.qa import image_qa
    from contimg.image.sources import find_sources, write_sources
    from contimg.image.thumbnail import write_png

    ts = time.perf_counter()
    with fits.open(made["image"]) as hdul:
        header = hdul[0].header.copy()
        data = hdul[0].data.astype(np.float32)
    residual = fits.getdata(made["residual"]).astype(np.float32)
    plane = data.reshape(data.shape[-2:])
    qa = image_qa(plane, residual.reshape(residual.shape[-2:]))
    centre_freqs = np.linspace(freq_min_hz, freq_max_hz, 5)
    pb = effective_beam(WCS(header), plane.shape, pointings, centre_freqs)
    pb_s = time.perf_counter() - ts
    header = add_provenance(
        header,
        rms_jy=qa.rms_jy,
        peak_jy=qa.peak_jy,
        expected_rms_jy=expected_rms_jy,
        calset=calset,
        caltables=caltables,
        window=window,
        imager=imager,
        data_column=data_column,
        ms_path=ms_path,
        pb_limit=cfg.pb_limit,
    )
    pb_full = pb.reshape(data.shape).astype(np.float32)
    pbcor = pb_corrected(data, pb_full, cfg.pb_limit)
    staged = {}
    for suffix, arr in ((".fits", data), (".pbcor.fits", pbcor), (".pb.fits", pb_full)):
        tmp = tmpdir / f"out{suffix}"
        h = header.copy()
        if suffix == ".pb.fits":
            h["BUNIT"] = ("", "primary beam response")
        fits.PrimaryHDU(data=arr, header=h).writeto(tmp)
        staged[suffix] = tmp
    ts = time.perf_counter()
    sources, science = None, None
    if header.get("BMAJ") and header.get("BMIN"):  # the finder fits with the restoring beam
        sources = find_sources(staged[".fits"], pb=pb)
        staged[".sources.fits"] = write_sources(sources, tmpdir / "out.sources.fits", header=header)
        if reference is not None:
            science = _cross_match(sources, reference, header, pb, qa.rms_jy, cfg.pb_limit)
    sources_s = time.perf_counter() - ts
    subtitle = f"rms {qa.rms_jy * 1e3:.2f} mJy/beam"
    if sources is not None:
        subtitle += f", {len(sources)} sources"
    if science is not None:
        subtitle += f", science QA {science.grade}"
    write_png(
        plane,
        tmpdir / "out.png",
        title=f"{window or Path(ms_path).name}  {subtitle}",
        rms=qa.rms_jy,
        wcs=WCS(header).celestial,
        beam=(float(header.get("BMAJ", 0.0)), float(header.get("BMIN", 0.0)), float(header.get("BPA", 0.0))),
        sources=None if sources is None else (np.asarray(sources["ra"]), np.asarray(sources["dec"])),
    )
    staged[".png"] = tmpdir / "out.png"
    if made["casa_image"] is not None:
        staged[".image"] = made["casa_image"]
    # every product exists: move them into place (each rename is atomic)
    for suffix, tmp in staged.items():
        final = Path(f"{out_prefix}{suffix}")
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    return Published(
        qa=qa,
        bmaj_arcsec=float(header.get("BMAJ", 0.0)) * ARCSEC_PER_DEG,
        bmin_arcsec=float(header.get("BMIN", 0.0)) * ARCSEC_PER_DEG,
        bpa_deg=float(header.get("BPA", 0.0)),
        casa_image=f"{out_prefix}.image" if made["casa_image"] is not None else None,
        pb_s=pb_s,
        n_detections=None if sources is None else len(sources),
        science_qa=science,
        sources_s=sources_s,
    )


def _cross_match(sources, reference, header, pb: np.ndarray, rms_jy: float, pb_limit: float):
    """The science-QA figures: the source list against the reference brought to the image's frequency."""
    from astropy.wcs import WCS

    from contimg.image.crossmatch import cross_match, values_at
    from contimg.image.sources import image_freq_hz

    ref_pb = values_at(pb, WCS(header), reference.ra_deg, reference.dec_deg)
    return cross_match(
        sources,
        reference.ra_deg,
        reference.dec_deg,
        reference.flux_at(image_freq_hz(header)),
        ref_pb,
        rms_jy=rms_jy,
        bmaj_arcsec=float(header["BMAJ"]) * ARCSEC_PER_DEG,
        bmin_arcsec=float(header["BMIN"]) * ARCSEC_PER_DEG,
        bpa_deg=float(header.get("BPA", 0.0)),
        pb_limit=pb_limit,
        reference_catalog=reference.path,
    )
