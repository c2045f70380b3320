"""Primary-beam-weighted linear mosaic of quick images (pure: numpy, astropy, reproject).

Each output pixel is sum_i w_i I_i / PB_i over sum_i w_i with w_i = PB_i^2 / rms_i^2, images
contributing only where PB_i >= pb_floor. Per image we regrid the two smooth products
PB I / rms^2 and PB^2 / rms^2 (their ratio is the same weighted mean, pixel by pixel) with
astropy's ``reproject`` onto just that image's footprint, and add them into two accumulators
memory-mapped on scratch: one image in memory at a time, whatever the length of the day.

The output grid is a plate-carree (CAR) strip whose reference RA is the circular mean of the
inputs' centres, so a strip through RA 0/360 is continuous.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from contimg.qa import robust_rms

__all__ = ["MosaicInput", "MosaicResult", "read_input", "strip_wcs", "build_mosaic", "DEFAULT_PB_FLOOR"]

DEFAULT_PB_FLOOR = 0.1


@dataclass
class MosaicInput:
    image: Path  # flat (apparent) image; the primary beam is beside it as *.pb.fits
    pb: Path
    rms_jy: float
    window: str = ""


@dataclass
class MosaicResult:
    path: Path
    noise_path: Path
    png_path: Path | None
    n_images: int
    shape: tuple
    inputs: list = field(default_factory=list)


def _plane(hdu) -> tuple[np.ndarray, WCS]:
    data = np.asarray(hdu.data, dtype=np.float32)
    return data.reshape(data.shape[-2:]), WCS(hdu.header).celestial


def read_input(image_path, window: str = "") -> MosaicInput:
    """An image and its primary beam (``PREFIX.pb.fits`` beside ``PREFIX.fits``); rms from QARMS or the data.

    Raises
    ------
    FileNotFoundError
        If the image or its primary-beam file is missing.
    """
    image_path = Path(image_path)
    pb = image_path.with_name(image_path.name.replace(".fits", ".pb.fits"))
    if not image_path.exists() or not pb.exists():
        raise FileNotFoundError(f"mosaic input {image_path} needs {pb.name} beside it")
    header = fits.getheader(image_path)
    rms = header.get("QARMS")
    if not rms:
        with fits.open(image_path) as hdul:
            rms = robust_rms(_plane(hdul[0])[0])
    return MosaicInput(image_path, pb, float(rms), window or header.get("WINDOW", ""))


def strip_wcs(inputs: list[MosaicInput], cell_arcsec: float | None = None, margin_deg: float = 0.0) -> tuple[WCS, tuple]:
    """A CAR grid covering every input (reference RA = circular mean of their centres)."""
    ras, decs, cells, corners = [], [], [], []
    for m in inputs:
        h = fits.getheader(m.image)
        w = WCS(h).celestial
        ny, nx = h["NAXIS2"], h["NAXIS1"]
        c = w.pixel_to_world_values(np.array([0, nx - 1, 0, nx - 1, nx / 2]), np.array([0, 0, ny - 1, ny - 1, ny / 2]))
        ras.append(c[0][-1])
        decs.append(c[1][-1])
        corners.append(c)
        cells.append(abs(h["CDELT2"]) * 3600)
    ra0 = float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(ras))))) % 360.0)
    dec0 = float(np.mean(decs))
    cell = (cell_arcsec or float(np.min(cells))) / 3600.0
    dra = np.concatenate([((c[0] - ra0 + 180.0) % 360.0) - 180.0 for c in corners])
    ddec = np.concatenate([c[1] for c in corners])
    cos0 = np.cos(np.radians(dec0))
    x_lo, x_hi = dra.min() - margin_deg / cos0, dra.max() + margin_deg / cos0
    y_lo, y_hi = ddec.min() - margin_deg, ddec.max() + margin_deg
    nx = int(np.ceil((x_hi - x_lo) * cos0 / cell)) + 1
    ny = int(np.ceil((y_hi - y_lo) / cell)) + 1
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---CAR", "DEC--CAR"]
    w.wcs.crval = [ra0, 0.0]
    w.wcs.cdelt = [-cell / cos0, cell]  # ~cell on the sky along RA at the strip's dec
    w.wcs.crpix = [1 + x_hi * cos0 / cell, 1 - y_lo / cell]
    return w, (ny, nx)


def _footprint(in_wcs: WCS, in_shape, out_wcs: WCS, out_shape) -> tuple[slice, slice] | None:
    ny, nx = in_shape
    edge = np.linspace(0, 1, 9)
    xs = np.concatenate([edge * (nx - 1), edge * (nx - 1), np.zeros(9), np.full(9, nx - 1)])
    ys = np.concatenate([np.zeros(9), np.full(9, ny - 1), edge * (ny - 1), edge * (ny - 1)])
    ra, dec = in_wcs.pixel_to_world_values(xs, ys)
    ox, oy = out_wcs.world_to_pixel_values(ra, dec)
    x0, x1 = int(max(0, np.floor(np.nanmin(ox)) - 2)), int(min(out_shape[1], np.ceil(np.nanmax(ox)) + 3))
    y0, y1 = int(max(0, np.floor(np.nanmin(oy)) - 2)), int(min(out_shape[0], np.ceil(np.nanmax(oy)) + 3))
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


def build_mosaic(inputs: list[MosaicInput], out_path, *, pb_floor: float = DEFAULT_PB_FLOOR,
                 cell_arcsec: float | None = None, scratch: Path | None = None, png: bool = True) -> MosaicResult:
    """Mosaic ``inputs`` into ``out_path`` (+ ``*.noise.fits``, ``*.png``), written atomically.

    Raises
    ------
    ValueError
        If there are no inputs.
    """
    from reproject import reproject_interp

    if not inputs:
        raise ValueError("no images to mosaic")
    out_path = Path(out_path).absolute()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_wcs, shape = strip_wcs(inputs, cell_arcsec)
    work = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.tmp-", dir=scratch or out_path.parent))
    try:
        num = np.lib.format.open_memmap(work / "num.npy", mode="w+", dtype=np.float32, shape=shape)
        den = np.lib.format.open_memmap(work / "den.npy", mode="w+", dtype=np.float32, shape=shape)
        beams, used = [], []
        for m in inputs:
            with fits.open(m.image) as hi, fits.open(m.pb) as hp:
                img, w_in = _plane(hi[0])
                pb, _ = _plane(hp[0])
                beams.append((hi[0].header.get("BMAJ", 0.0), hi[0].header.get("BMIN", 0.0), hi[0].header.get("BPA", 0.0)))
            good = (pb >= pb_floor) & np.isfinite(img)
            inv_var = 1.0 / m.rms_jy ** 2
            p_num = np.where(good, pb * img * inv_var, 0.0).astype(np.float32)  # w I / PB = PB I / rms^2
            p_den = np.where(good, pb * pb * inv_var, 0.0).astype(np.float32)  # w = PB^2 / rms^2
            cut = _footprint(w_in, img.shape, out_wcs, shape)
            if cut is None:
                continue
            sub_wcs = out_wcs[cut[0], cut[1]]
            sub_shape = (cut[0].stop - cut[0].start, cut[1].stop - cut[1].start)
            for src, acc in ((p_num, num), (p_den, den)):
                arr, _ = reproject_interp((src, w_in), sub_wcs, shape_out=sub_shape, order="bilinear")
                acc[cut] += np.nan_to_num(arr, nan=0.0).astype(np.float32)
            used.append(m)
        with np.errstate(invalid="ignore", divide="ignore"):
            mosaic = np.where(den > 0, num / den, np.nan).astype(np.float32)
            noise = np.where(den > 0, 1.0 / np.sqrt(den), np.nan).astype(np.float32)
        header = out_wcs.to_header()
        bmaj, bmin, bpa = np.median(np.array(beams), axis=0) if beams else (0.0, 0.0, 0.0)
        header["BMAJ"], header["BMIN"], header["BPA"] = float(bmaj), float(bmin), float(bpa)
        header["BUNIT"] = "JY/BEAM"
        header["NIMAGES"] = (len(used), "images in the mosaic")
        header["PBFLOOR"] = (pb_floor, "primary-beam floor")
        header.add_history("PB-weighted linear mosaic: sum(w I/PB)/sum(w), w = PB^2/rms^2")
        cols = fits.ColDefs([fits.Column("WINDOW", "24A", array=[m.window for m in used]),
                             fits.Column("IMAGE", "256A", array=[str(m.image) for m in used]),
                             fits.Column("RMS_JY", "D", array=[m.rms_jy for m in used])])
        table = fits.BinTableHDU.from_columns(cols, name="INPUTS")
        tmp_main, tmp_noise = work / "mosaic.fits", work / "noise.fits"
        fits.HDUList([fits.PrimaryHDU(mosaic, header), table]).writeto(tmp_main)
        nh = header.copy()
        nh["BUNIT"] = "JY/BEAM"
        nh.add_history("noise map: 1/sqrt(sum w)")
        fits.PrimaryHDU(noise, nh).writeto(tmp_noise)
        png_path = None
        if png:
            from contimg.thumbnail import write_png

            png_path = out_path.with_suffix(".png")
            finite = noise[np.isfinite(noise)]
            write_png(np.nan_to_num(mosaic), work / "preview.png", title=f"{out_path.stem}: {len(used)} images",
                      rms=float(np.median(finite)) if finite.size else None, max_px=2048)
        noise_path = out_path.with_name(out_path.stem + ".noise.fits")
        os.replace(tmp_main, out_path)
        os.replace(tmp_noise, noise_path)
        if png_path:
            os.replace(work / "preview.png", png_path)
        del num, den
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return MosaicResult(out_path, noise_path, png_path, len(used), shape, [str(m.image) for m in used])
