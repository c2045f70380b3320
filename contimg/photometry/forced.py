"""Forced photometry: the restoring beam fitted at fixed reference positions, amplitude free.

A point source of flux density S in a restored image (Jy/beam) is S times the restoring beam centred on it.
At each reference position the beam (BMAJ, BMIN, BPA of the header) is laid on the pixel grid through the
image's WCS -- the local Jacobian of the SIN projection at the source turns pixel offsets into offsets east
and north on the sky -- and its amplitude is the linear least-squares fit over a small box:
``A = sum(m d) / sum(m m)``.

Errors: the background rms comes from the flat-noise image (``pbcor x pb``, the apparent image), as the
robust sigma (1.4826 MAD) on a coarse grid of cells, interpolated to the source and divided by the
primary beam there. Image noise is not independent between pixels: it is correlated over the beam. With
noise correlation ``rho`` (taken as the restoring beam, the main lobe of the PSF that shapes a restored
image's noise) the variance of the least-squares amplitude is
``rms^2 sum_ij m_i m_j rho(i - j) / (sum m^2)^2`` (4/3 rms^2 for a large box), computed per source on its box.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import map_coordinates

from contimg.core.refcat import ReferenceCatalog

__all__ = [
    "PB_LEVEL",
    "BOX_HALF_BEAMS",
    "Measurement",
    "ImagePhotometry",
    "read_image",
    "beam_model",
    "background_rms_map",
    "forced_photometry",
    "measure_image",
    "pb_path_for",
]

PB_LEVEL = 0.2  # sources where the primary beam is below 20 % of its peak are not measured (issue #23)
# the fit box reaches this many beam FWHMs (major axis) from the source on each side: the beam has fallen to
# 1/16 of its peak at one FWHM, so the box holds the fit's information and little of the neighbours'
BOX_HALF_BEAMS = 1.0
# background cells are this many major-axis FWHMs a side: ~ 100 beams a cell (a robust sigma from ~100
# independent samples is good to ~ 10 %) while the noise varies over degrees, far more than a cell
RMS_CELL_BEAMS = 10.0
MIN_CELL_PIXELS = 64  # a cell with fewer finite pixels has no rms of its own (takes the median of the others)
MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian = 1.4826 x median absolute deviation
FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


@dataclass(frozen=True)
class Measurement:
    """One source measured in one image (fluxes primary-beam corrected)."""

    source_id: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    err_jy: float
    rms_jy: float  # local background rms of the flat-noise (apparent) image, Jy/beam
    pb: float  # primary-beam response at the source
    dist_deg: float  # distance from the pointing centre (the image's reference direction)

    def as_dict(self) -> dict:
        """The fields as a dict."""
        return asdict(self)


@dataclass(frozen=True)
class ImagePhotometry:
    """Every measurable reference source of one image, and what was skipped."""

    image: str
    window: str  # partition key YYYY-MM-DDTHH:MM (from WINDOW, else DATE-OBS)
    start_iso: str  # the window start (UTC, ISO) of the image
    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float
    measurements: list[Measurement]
    n_outside: int  # reference sources off the image or below PB_LEVEL, or whose box is not all finite

    def rows(self) -> list[dict]:
        """One dict per measurement, with the image's window and start time."""
        return [
            {"image": self.image, "window": self.window, "start_iso": self.start_iso, **m.as_dict()}
            for m in self.measurements
        ]


def pb_path_for(pbcor_path) -> Path:
    """``PREFIX.pb.fits`` beside ``PREFIX.pbcor.fits``.

    Raises
    ------
    ValueError
        If the name does not end in ``.pbcor.fits``.
    """
    p = Path(pbcor_path)
    if not p.name.endswith(".pbcor.fits"):
        raise ValueError(f"{p}: expected a primary-beam-corrected image named PREFIX.pbcor.fits")
    return p.with_name(p.name[: -len(".pbcor.fits")] + ".pb.fits")


def _plane(data: np.ndarray, path) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected one image plane, data have shape {np.shape(data)}")
    return arr


def read_image(pbcor_path) -> tuple[np.ndarray, np.ndarray, fits.Header]:
    """(pbcor plane, pb plane, pbcor header) of ``PREFIX.pbcor.fits`` and the ``PREFIX.pb.fits`` beside it.

    Raises
    ------
    ValueError
        If a file is not a single-plane image, the two differ in shape, or the header lacks BMAJ/BMIN.
    FileNotFoundError
        If either file is missing.
    """
    pbcor_path = Path(pbcor_path)
    pb_path = pb_path_for(pbcor_path)
    for p in (pbcor_path, pb_path):
        if not p.is_file():
            raise FileNotFoundError(f"no such image: {p}")
    with fits.open(pbcor_path) as hdul:
        header = hdul[0].header.copy()
        image = _plane(hdul[0].data, pbcor_path)
    with fits.open(pb_path) as hdul:
        pb = _plane(hdul[0].data, pb_path)
    if image.shape != pb.shape:
        raise ValueError(f"{pbcor_path} {image.shape} and {pb_path} {pb.shape} differ in shape")
    for key in ("BMAJ", "BMIN"):
        if key not in header or not float(header[key]) > 0:
            raise ValueError(f"{pbcor_path}: header has no restoring beam ({key})")
    return image, pb, header


def _window_of(header: fits.Header, path) -> tuple[str, str]:
    window = str(header.get("WINDOW", "") or "").strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", window):
        return window, window + ":00"
    date_obs = str(header.get("DATE-OBS", "") or "").strip()
    if not re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", date_obs):
        raise ValueError(f"{path}: header has neither WINDOW (YYYY-MM-DDTHH:MM) nor DATE-OBS")
    return date_obs[:16], date_obs[:19]


def _local_jacobians(wcs: WCS, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 2, 2) matrices turning pixel offsets (dx, dy) at (x, y) into (east, north) offsets in degrees."""
    ra0, dec0 = wcs.pixel_to_world_values(x, y)
    out = np.empty((len(x), 2, 2))
    for k, (px, py) in enumerate(((x + 1.0, y), (x, y + 1.0))):
        ra1, dec1 = wcs.pixel_to_world_values(px, py)
        dra = (np.asarray(ra1) - ra0 + 180.0) % 360.0 - 180.0
        out[:, 0, k] = dra * np.cos(np.radians(dec0))
        out[:, 1, k] = np.asarray(dec1) - dec0
    return out


def beam_model(
    dx: np.ndarray, dy: np.ndarray, jac: np.ndarray, bmaj_deg: float, bmin_deg: float, bpa_deg: float
) -> np.ndarray:
    """The restoring beam (peak 1) at pixel offsets ``dx``, ``dy`` (broadcast against ``jac[..., 0, 0]``).

    ``jac`` maps pixel offsets to (east, north) degrees; BPA is the major axis's angle from north through
    east, the FITS convention.
    """
    east = jac[..., 0, 0] * dx + jac[..., 0, 1] * dy
    north = jac[..., 1, 0] * dx + jac[..., 1, 1] * dy
    pa = np.radians(bpa_deg)
    u = east * np.sin(pa) + north * np.cos(pa)  # along the major axis
    v = east * np.cos(pa) - north * np.sin(pa)
    smaj, smin = bmaj_deg * FWHM_TO_SIGMA, bmin_deg * FWHM_TO_SIGMA
    return np.exp(-0.5 * ((u / smaj) ** 2 + (v / smin) ** 2))


def background_rms_map(flat: np.ndarray, cell_px: int) -> np.ndarray:
    """Robust sigma (1.4826 MAD) of ``flat`` in cells of ``cell_px`` pixels a side (NaN pixels ignored).

    Shape (ceil(ny / cell), ceil(nx / cell)); cells with too few pixels take the median of the others.
    Every second pixel in each direction is used (``cell_px`` is rounded up to even): neighbouring pixels
    share the beam-correlated noise and add little, and it is four times faster. Cells without NaN take
    numpy's vectorised median; only the others (the blanked edge) go through ``nanmedian``.

    Raises
    ------
    ValueError
        If no cell has enough finite pixels.
    """
    c = max(1, -(-int(cell_px) // 2))  # cell side in sub-sampled pixels
    sub = flat[::2, ::2]
    ny, nx = sub.shape
    gy, gx = -(-ny // c), -(-nx // c)
    if (gy * c, gx * c) != sub.shape:
        padded = np.full((gy * c, gx * c), np.nan)
        padded[:ny, :nx] = sub
        sub = padded
    cells = sub.reshape(gy, c, gx, c).transpose(0, 2, 1, 3).reshape(gy * gx, c * c)
    finite = np.isfinite(cells)
    count = finite.sum(axis=1)
    full = count == c * c
    enough = count >= MIN_CELL_PIXELS // 4
    if not np.any(enough):
        raise ValueError("no part of the image has enough finite pixels for a background rms")
    rms = np.full(gy * gx, np.nan)
    if np.any(full):
        v = cells[full]
        med = np.median(v, axis=1)
        rms[full] = MAD_TO_SIGMA * np.median(np.abs(v - med[:, None]), axis=1)
    part = enough & ~full
    if np.any(part):
        v = cells[part]
        med = np.nanmedian(v, axis=1)
        rms[part] = MAD_TO_SIGMA * np.nanmedian(np.abs(v - med[:, None]), axis=1)
    rms[~enough] = np.median(rms[enough])
    return rms.reshape(gy, gx)


def _noise_factor(model: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """sqrt(sum_ij m_i m_j rho(i - j)) / sum m^2 per box: (N, nb, nb) models, rho on the FFT lag grid."""
    n = rho.shape[-1]
    f = np.fft.rfft2(model, s=(n, n))
    auto = np.fft.irfft2(np.abs(f) ** 2, s=(n, n))  # sum_i m_i m_{i+k} at lag k (wrapped, no overlap)
    return np.sqrt(np.maximum(np.sum(auto * rho, axis=(-2, -1)), 0.0)) / np.sum(model**2, axis=(-2, -1))


def forced_photometry(
    image: np.ndarray,
    pb: np.ndarray,
    header: fits.Header,
    sources: ReferenceCatalog,
    *,
    pb_level: float = PB_LEVEL,
    box_half_beams: float = BOX_HALF_BEAMS,
    rms_cell_beams: float = RMS_CELL_BEAMS,
) -> tuple[list[Measurement], int]:
    """Fit the restoring beam's amplitude at each reference position of ``sources`` in ``image``.

    Parameters
    ----------
    image : numpy.ndarray
        Primary-beam-corrected plane (ny, nx), Jy/beam; NaN where blanked.
    pb : numpy.ndarray
        The primary beam on the same grid.
    header : astropy.io.fits.Header
        The image's header: celestial WCS (any projection; SIN for ours), BMAJ, BMIN, BPA in degrees.
    sources : ReferenceCatalog
        Positions to measure.
    pb_level : float
        Sources where ``pb`` is below this are skipped.
    box_half_beams : float
        Half-size of the fit box in major-axis FWHMs.
    rms_cell_beams : float
        Background cell size in major-axis FWHMs.

    Returns
    -------
    measurements : list of Measurement
        The measured sources, in catalogue order.
    n_skipped : int
        Sources off the image, below ``pb_level`` or whose box is not entirely finite (near the edge).
    """
    wcs = WCS(header).celestial
    ny, nx = image.shape
    bmaj, bmin, bpa = float(header["BMAJ"]), float(header["BMIN"]), float(header.get("BPA", 0.0))
    pix_deg = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))))
    fwhm_px = bmaj / pix_deg
    half = max(1, int(np.ceil(box_half_beams * fwhm_px)))
    cell = 2 * max(8, int(round(rms_cell_beams * fwhm_px / 2)))  # even: the rms map samples every 2nd pixel

    x, y = wcs.world_to_pixel_values(sources.ra_deg, sources.dec_deg)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    ok = np.isfinite(x) & np.isfinite(y) & (ix >= half) & (iy >= half) & (ix < nx - half) & (iy < ny - half)
    pb_at = np.full(len(x), np.nan)
    pb_at[ok] = map_coordinates(pb, [y[ok], x[ok]], order=1, mode="nearest")
    ok &= pb_at >= pb_level
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return [], len(sources)

    offs = np.arange(-half, half + 1)
    oy, ox = np.meshgrid(offs, offs, indexing="ij")
    boxes = image[iy[idx, None, None] + oy, ix[idx, None, None] + ox]  # (N, nb, nb)
    finite = np.all(np.isfinite(boxes), axis=(1, 2))
    idx, boxes = idx[finite], boxes[finite]
    if idx.size == 0:
        return [], len(sources)

    jac = _local_jacobians(wcs, x[idx], y[idx])[:, None, None]
    dx = (ix[idx, None, None] + ox) - x[idx, None, None]
    dy = (iy[idx, None, None] + oy) - y[idx, None, None]
    model = beam_model(dx, dy, jac, bmaj, bmin, bpa)
    amp = np.sum(model * boxes, axis=(1, 2)) / np.sum(model**2, axis=(1, 2))

    n_lag = 2 * (2 * half + 1)
    lag = np.fft.fftfreq(n_lag, 1.0 / n_lag)
    ly, lx = np.meshgrid(lag, lag, indexing="ij")
    rho = beam_model(lx, ly, jac, bmaj, bmin, bpa)  # noise correlation at each lag
    factor = _noise_factor(model, rho)

    with np.errstate(invalid="ignore"):
        flat = image * pb
    rms_grid = background_rms_map(flat, cell)
    # cell (j, i) covers pixels [j cell, (j + 1) cell): its centre is at (j + 0.5) cell - 0.5
    rms = map_coordinates(rms_grid, [(y[idx] + 0.5) / cell - 0.5, (x[idx] + 0.5) / cell - 0.5], order=1, mode="nearest")
    err = factor * rms / pb_at[idx]

    ra_c, dec_c = np.radians(wcs.wcs.crval[0]), np.radians(wcs.wcs.crval[1])
    ra_s, dec_s = np.radians(sources.ra_deg[idx]), np.radians(sources.dec_deg[idx])
    cos_d = np.sin(dec_s) * np.sin(dec_c) + np.cos(dec_s) * np.cos(dec_c) * np.cos(ra_s - ra_c)
    dist = np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))

    out = [
        Measurement(
            str(sources.source_id[k]),
            float(sources.ra_deg[k]),
            float(sources.dec_deg[k]),
            float(a),
            float(e),
            float(r),
            float(pb_at[k]),
            float(d),
        )
        for k, a, e, r, d in zip(idx, amp, err, rms, dist, strict=True)
    ]
    return out, len(sources) - len(out)


def measure_image(pbcor_path, sources: ReferenceCatalog, **kwargs) -> ImagePhotometry:
    """Forced photometry of ``PREFIX.pbcor.fits`` (with ``PREFIX.pb.fits`` beside it).

    Keyword arguments as :func:`forced_photometry`.

    Raises
    ------
    ValueError
        If an image is not usable (see :func:`read_image`) or its header has no WINDOW nor DATE-OBS.
    FileNotFoundError
        If either file is missing.
    """
    image, pb, header = read_image(pbcor_path)
    window, start_iso = _window_of(header, pbcor_path)
    meas, n_out = forced_photometry(image, pb, header, sources, **kwargs)
    return ImagePhotometry(
        str(pbcor_path),
        window,
        start_iso,
        float(header["BMAJ"]),
        float(header["BMIN"]),
        float(header.get("BPA", 0.0)),
        meas,
        n_out,
    )
