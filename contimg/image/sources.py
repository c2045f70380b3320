"""The image's source list: PyBDSF on the flat image, written as ``PREFIX.sources.fits``.

PyBDSF (``bdsf``) or Aegean with BANE's background and noise maps (``aegeantools``)? Measured on
synthetic images (point sources convolved with a 45" x 11" PA 10 deg restoring beam, 3" cells, noise
correlated by the same beam, peaks 10-200 sigma, 1 mJy/beam; ``benchmarks/source_finders.py``, one core
each, the 2-core node shared with other work, load 6-9, so the times are long but compared in the same run):

==============================  =====================  ===========================  ==================
figure                          PyBDSF                 Aegean + BANE                Aegean, no covar.
==============================  =====================  ===========================  ==================
512 px, 30 sources
  matched within 11" (bmin)     28 (0.933)             29 (0.967)
  S_int / S_true (1.4826 MAD)   1.012 (0.046)          1.001 (0.044)
  dRA cos dec, dDec (rms)       0.49", 2.36"           0.42", 1.93"
  detections > 11" from truth   0                      0
  wall time                     1.5 s                  2.8 s
3420 px (full size), 300 src
  matched within 11"            0.970                  0.990                        0.983
  S_int / S_true (1.4826 MAD)   1.002 (0.041)          0.998 (0.043)                1.000 (0.041)
  dRA cos dec, dDec (rms)       0.28", 0.78"           0.31", 0.90"                 0.60", 0.93"
  detections > 11" from truth   1                      5                            9
  wall time                     52-59 s                192 s (BANE 27 s)            156 s (BANE 111 s)
  wall time at load ~4.5        12-16 s
==============================  =====================  ===========================  ==================

(PyBDSF with its default contour flag, since turned off under elongated beams such as this one:
:data:`ELONGATED_BEAM_RATIO`; it had dropped 8-18 % of the point sources of DSA-110's full-size images.)
Both measure fluxes without bias and place sources to a small fraction of the beam. Aegean finds
1-3 % more sources (PyBDSF joins some neighbours along the 45" major axis into one island), but
splits more bright sources into extra components, and at full size it takes 2.7-3.3 times PyBDSF's
time: its covariance-weighted fits, or without them BANE's noise map, cost more than PyBDSF's whole
run. The image job takes ~35 s per 309 s chunk (docs/benchmarks.md); a finder step of several
minutes would break real time. So: **PyBDSF**, one core, its default seed of 5 sigma and island
threshold of 3 sigma, 'simple' initial Gaussians (:data:`INI_GAUSFIT`: the same 292 sources and
figures at full size as its default, and 4x faster where uncleaned sidelobes make long islands).
PyBDSF's import alone takes 3-13 s (with the node's load); the job pays it once per image.

Where it runs: in the image child job, on the flat (apparent) image it has just written, before the
products are moved into place, so the source list is one of the image's atomic products, the report
carries the science-QA figures, the thumbnail marks the detections, and ``contimg image`` does what
the stream does. The asset would hold the same ``casa`` pool slot while waiting for the job, so
running it there gains nothing; the finder's seconds are ``timings_s["sources"]``.

Detection runs on the flat image (uniform noise); fluxes, their errors and the local rms are then
divided by the effective primary beam at each source (the ``pb`` column), i.e. measured on the
primary-beam-corrected image.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "find_sources",
    "image_freq_hz",
    "write_sources",
    "read_sources",
    "SOURCE_COLUMNS",
    "SEED_SIGMA",
    "FLOOD_SIGMA",
]

SEED_SIGMA = 5.0  # a source needs a pixel this far above the local noise (PyBDSF's thresh_pix default)
FLOOD_SIGMA = 3.0  # its island grows down to this (PyBDSF's thresh_isl default)
# PyBDSF's initial Gaussians per island: 'simple' (one per peak, from the island's moments) rather than
# the default's iterative beam-sized guesses. On a sparse 24-antenna field's 1024 px image (islands long
# with uncleaned sidelobes) 4.6 s instead of 17.7 s for the same 24 sources; the figures above were
# measured with it unless said otherwise.
INI_GAUSFIT = "simple"
# PyBDSF drops a Gaussian whose contour at flag_maxsize_fwhm x its FWHM leaves its island, and checks only
# Gaussians with an axial ratio above 2. Under DSA-110's full-array main lobe (34" x 15", ratio 2.2) that is
# every point source, and the contour's extreme points, truncated to pixels 1-2 px from the centre on the
# minor axis, fall outside the island of well-detected sources: on the full-size realistic-sky image (2.9 px
# across the minor axis) its default 0.5 dropped 8 % of the sources above 10 sigma (18 % at 2.4 px), none of
# them spurious. Without the check all were found, detections above 10 sigma stayed 100 % on true sources,
# and 8 of 508 (3 of 392) detections, all near 5 sigma, lay on no source (docs/benchmarks.md). Under a
# rounder beam (a sparse array's, 89" x 57") the check keeps its job: it drops the wide Gaussians PyBDSF fits
# to sidelobe-confused islands, which otherwise pull sources 30-40" off (tests/test_science_qa_image.py).
# So it is off where the beam itself is elongated enough for point sources to be checked: fitted axial
# ratios of faint sources scatter ~10 % about the beam's, hence the margin below PyBDSF's 2.
CONTOUR_FLAG_FWHM = 0.5  # PyBDSF's default
ELONGATED_BEAM_RATIO = 1.8


def contour_flag_fwhm(bmaj: float, bmin: float) -> float:
    """PyBDSF's flag_maxsize_fwhm for a restoring beam of ``bmaj`` x ``bmin``: 0 (no check) when elongated."""
    return 0.0 if bmaj > ELONGATED_BEAM_RATIO * bmin else CONTOUR_FLAG_FWHM


# name, unit, description: the FITS binary table's columns, in order
SOURCE_COLUMNS = (
    ("ra", "deg", "ICRS right ascension"),
    ("dec", "deg", "ICRS declination"),
    ("err_ra", "arcsec", "RA error (x cos dec)"),
    ("err_dec", "arcsec", "Dec error"),
    ("peak_flux", "Jy/beam", "peak brightness, primary-beam corrected"),
    ("err_peak_flux", "Jy/beam", ""),
    ("int_flux", "Jy", "integrated flux, primary-beam corrected"),
    ("err_int_flux", "Jy", ""),
    ("a", "arcsec", "fitted FWHM, major axis"),
    ("err_a", "arcsec", ""),
    ("b", "arcsec", "fitted FWHM, minor axis"),
    ("err_b", "arcsec", ""),
    ("pa", "deg", "position angle of the major axis, east of north"),
    ("err_pa", "deg", ""),
    ("local_rms", "Jy/beam", "the island's noise (PyBDSF's rms map), primary-beam corrected"),
    ("pb", "", "effective primary beam response at the source"),
    ("island", "", "PyBDSF island number"),
    ("code", "", "PyBDSF source code: S one Gaussian alone in its island, C one of several, M several"),
)
ARCSEC_PER_DEG = 3600.0


def find_sources(
    image_path,
    *,
    pb: np.ndarray | None = None,
    seed_sigma: float = SEED_SIGMA,
    flood_sigma: float = FLOOD_SIGMA,
):
    """Find and fit the sources of a restored image (Jy/beam, BMAJ/BMIN/BPA in its header).

    Parameters
    ----------
    image_path : str or Path
        A FITS image, 2 to 4 axes (RA, Dec, [FREQ, STOKES]); the first plane is searched.
    pb : ndarray, optional
        The effective primary beam on the image's grid (any shape whose last two axes are the image's):
        fluxes and noise are divided by it at each source. None: the image is already corrected
        (pb column = 1).
    seed_sigma, flood_sigma : float
        Island seed and flood thresholds in units of the local noise.

    Returns
    -------
    astropy.table.Table
        One row per fitted component, columns :data:`SOURCE_COLUMNS` (NaN where PyBDSF
        gives none), sorted by decreasing peak flux.

    Raises
    ------
    FileNotFoundError
        If ``image_path`` does not exist.
    ValueError
        If the header has no restoring beam, ``pb`` does not match the image, or the thresholds are
        not ``seed_sigma >= flood_sigma > 0``.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    image_path = Path(image_path)
    if not image_path.is_file():
        raise FileNotFoundError(f"no image at {image_path}")
    if not seed_sigma >= flood_sigma > 0:
        raise ValueError(f"need seed_sigma >= flood_sigma > 0, got {seed_sigma} and {flood_sigma}")
    header = fits.getheader(image_path)
    if not all(k in header and header[k] for k in ("BMAJ", "BMIN")):
        raise ValueError(f"{image_path}: no restoring beam (BMAJ/BMIN) in the header; the finder fits with it")
    shape = (header["NAXIS2"], header["NAXIS1"])
    if pb is not None:
        pb = np.asarray(pb, dtype=float)
        if pb.shape[-2:] != shape:
            raise ValueError(f"primary beam of shape {pb.shape} does not match {image_path}'s {shape}")
        pb = pb.reshape(-1, *shape)[0]
    contour_flag = contour_flag_fwhm(float(header["BMAJ"]), float(header["BMIN"]))
    table = _to_table(_pybdsf(image_path, image_freq_hz(header, image_path), seed_sigma, flood_sigma, contour_flag))
    if pb is not None and len(table):
        from contimg.image.crossmatch import values_at

        response = values_at(pb, WCS(header), table["ra"], table["dec"])
    else:
        response = np.ones(len(table))
    table["pb"] = response
    for name in ("peak_flux", "err_peak_flux", "int_flux", "err_int_flux", "local_rms"):
        table[name] = table[name] / response
    table.sort("peak_flux", reverse=True)
    return table


def image_freq_hz(header, path="the image") -> float:
    """The image's frequency (Hz): its FREQ axis' reference value, else RESTFRQ/RESTFREQ.

    Raises
    ------
    ValueError
        If the header gives none (PyBDSF needs it, and the reference fluxes are brought to it).
    """
    for i in range(1, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{i}", "")).upper().startswith("FREQ"):
            return float(header[f"CRVAL{i}"])
    for key in ("RESTFRQ", "RESTFREQ"):
        if key in header:
            return float(header[key])
    raise ValueError(f"{path}: no frequency in the header (a FREQ axis or RESTFRQ)")


def _pybdsf(image_path: Path, freq_hz: float, seed_sigma: float, flood_sigma: float, contour_flag: float) -> list:
    """PyBDSF's sources (Gaussians grouped into sources), on one core: the node's cores are shared.

    PyBDSF writes ``IMAGE.pybdsf.log`` beside the image (the job's scratch folder); nothing else.
    """
    import bdsf

    with warnings.catch_warnings():
        # PyBDSF's fits of faint Gaussians divide by zero now and then and say so; its results flag them
        warnings.simplefilter("ignore", RuntimeWarning)
        img = bdsf.process_image(
            str(image_path),
            thresh_pix=seed_sigma,
            thresh_isl=flood_sigma,
            quiet=True,
            ncores=1,
            output_opts=False,
            frequency=freq_hz,
            ini_gausfit=INI_GAUSFIT,
            flag_maxsize_fwhm=contour_flag,
        )
    return list(img.sources)


def _to_table(sources: list):
    from astropy.table import Table

    def col(get, scale: float = 1.0) -> np.ndarray:
        return np.array([float(get(s)) for s in sources], dtype=float) * scale

    data = {
        "ra": col(lambda s: s.posn_sky_centroid[0]) % 360.0,
        "dec": col(lambda s: s.posn_sky_centroid[1]),
        "err_ra": col(lambda s: s.posn_sky_centroidE[0], ARCSEC_PER_DEG),  # an angle on the sky
        "err_dec": col(lambda s: s.posn_sky_centroidE[1], ARCSEC_PER_DEG),
        "peak_flux": col(lambda s: s.peak_flux_max),
        "err_peak_flux": col(lambda s: s.peak_flux_maxE),
        "int_flux": col(lambda s: s.total_flux),
        "err_int_flux": col(lambda s: s.total_fluxE),
        "a": col(lambda s: s.size_sky[0], ARCSEC_PER_DEG),
        "err_a": col(lambda s: s.size_skyE[0], ARCSEC_PER_DEG),
        "b": col(lambda s: s.size_sky[1], ARCSEC_PER_DEG),
        "err_b": col(lambda s: s.size_skyE[1], ARCSEC_PER_DEG),
        "pa": col(lambda s: s.size_sky[2]),
        "err_pa": col(lambda s: s.size_skyE[2]),
        "local_rms": col(lambda s: s.rms_isl),
        "island": np.array([int(s.island_id) for s in sources], dtype=np.int32),
        "code": np.array([str(s.code) for s in sources], dtype="U1"),
    }
    t = Table(data)
    for name, unit, description in SOURCE_COLUMNS:
        if name in t.colnames:
            if unit:
                t[name].unit = unit
            t[name].description = description
    return t


def write_sources(table, path, *, header=None) -> Path:
    """Write a source list as a FITS binary table (columns :data:`SOURCE_COLUMNS`, units set).

    Parameters
    ----------
    table : astropy.table.Table
        From :func:`find_sources`.
    path : str or Path
        ``PREFIX.sources.fits``; overwritten.
    header : astropy.io.fits.Header, optional
        The image's header: its beam, frequency and provenance keywords are copied to the table's.
    """
    from astropy.io import fits
    from astropy.table import Table

    t = Table(table, copy=False)[[name for name, _, _ in SOURCE_COLUMNS]]
    hdu = fits.table_to_hdu(t)
    hdu.name = "SOURCES"
    if header is not None:
        for key in ("BMAJ", "BMIN", "BPA", "DATE-OBS", "WINDOW", "QARMS", "CIVERS", "CICOMMIT", "CALSET"):
            if key in header:
                hdu.header[key] = header[key]
    hdu.header["FINDER"] = ("pybdsf", "contimg.image.sources")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
    return Path(path)


def read_sources(path):
    """A source list written by :func:`write_sources` (astropy Table).

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    """
    from astropy.table import Table

    if not Path(path).is_file():
        raise FileNotFoundError(f"no source list at {path}")
    return Table.read(path, hdu="SOURCES")
