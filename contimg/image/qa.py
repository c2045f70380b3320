"""Image QA statistics (pure numpy/scipy): noise, peak, dynamic range, sources, Gaussian fits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage, optimize

__all__ = [
    "robust_rms",
    "ImageQA",
    "image_qa",
    "fit_point_source",
    "rms_verdict",
    "ImageVerdict",
    "image_verdict",
    "MAD_TO_SIGMA",
    "RMS_LIMIT_OVER_EXPECTED",
    "GRADES",
    "FLUX_RATIO_GREEN",
    "FLUX_RATIO_AMBER",
    "OFFSET_BEAMS_GREEN",
    "OFFSET_BEAMS_AMBER",
    "COMPLETENESS_GREEN",
    "COMPLETENESS_AMBER",
    "RELIABILITY_GREEN",
    "RELIABILITY_AMBER",
    "MIN_SOURCES_TO_GRADE",
    "science_grade",
]

MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian = 1.4826 x median absolute deviation
# An image whose rms exceeds the radiometer expectation (natural weighting) by this factor fails QA:
# Briggs 0 weighting alone raises the noise by ~1.4 (measured on simulated chunks), calibration errors more.
RMS_LIMIT_OVER_EXPECTED = 3.0

# Science QA grades (contimg.image.crossmatch), worst figure wins. Flux scale and astrometry follow the
# ASKAP continuum validation reports (flux ratio to the reference within 5 % good, 10 % uncertain; mean
# positional offset within 1/10 of the beam good, 1/5 uncertain).
GRADES = ("green", "amber", "red")
FLUX_RATIO_GREEN = 0.05  # |median S_measured / S_ref - 1|
FLUX_RATIO_AMBER = 0.10
OFFSET_BEAMS_GREEN = 0.1  # |median offset| in beams (the beam's FWHM along RA, along Dec)
OFFSET_BEAMS_AMBER = 0.2
# Completeness of reference sources whose expected peak is >= 10 sigma: noise alone misses none of them
# (a 5 sigma seed is 5 sigma below), and a flux scale 10 % low still leaves them at 9 sigma. What is
# missed is blended (two sources inside the 45" x 11" beam count once) or truly gone; blending cost 3-7 %
# on 30 random sources in 512 px (benchmark in contimg.image.sources): 0.9 leaves room for it, below
# 0.7 a third of the bright sky is missing and the image is wrong.
COMPLETENESS_GREEN = 0.90
COMPLETENESS_AMBER = 0.70
# Reliability of detections >= 10 sigma (fraction with a reference counterpart): a 10 sigma noise peak
# has p ~ 1e-23, so an unmatched bright detection is an artefact (sidelobe, calibration error) or a
# source the reference lacks (variable, resolved out there): same thresholds, same reasoning.
RELIABILITY_GREEN = 0.90
RELIABILITY_AMBER = 0.70
# Fewer sources than this in a figure leave it ungraded: the median of 4 ratios with a 5 % scatter each
# is itself uncertain by ~3 %, as large as the green band.
MIN_SOURCES_TO_GRADE = 5


def robust_rms(values) -> float:
    """1.4826 x MAD of the finite values: the noise, insensitive to sources."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite pixels")
    return float(MAD_TO_SIGMA * np.median(np.abs(v - np.median(v))))


@dataclass
class ImageQA:
    """An image's quality figures (:func:`image_qa`).

    Attributes
    ----------
    rms_jy : float
        Robust rms (1.4826 x the median absolute deviation) of the residual, or of the image if
        there is none, Jy/beam.
    peak_jy : float
        The image's brightest pixel, Jy/beam.
    dynamic_range : float
        ``peak_jy / rms_jy`` (inf when the rms is 0).
    n_sources_5sigma : int
        Islands of connected pixels above ``detect_sigma`` (5 by default) times the rms.
    """

    rms_jy: float
    peak_jy: float
    dynamic_range: float
    n_sources_5sigma: int

    def as_dict(self) -> dict:
        """The figures as a dict keyed by field name."""
        return asdict(self)


def image_qa(image: np.ndarray, residual: np.ndarray | None = None, *, detect_sigma: float = 5.0) -> ImageQA:
    """Rms from the residual (or the image), peak, dynamic range, islands above ``detect_sigma``."""
    rms = robust_rms(residual if residual is not None else image)
    peak = float(np.nanmax(image))
    mask = np.nan_to_num(image, nan=0.0) > detect_sigma * rms
    _, n = ndimage.label(mask)
    return ImageQA(rms, peak, peak / rms if rms > 0 else float("inf"), int(n))


def fit_point_source(
    image: np.ndarray, x0: float, y0: float, bmaj_px: float, bmin_px: float, bpa_deg: float, box: int = 12
) -> tuple[float, float, float]:
    """Fit the restoring beam (fixed shape) to a source near pixel (x0, y0): returns (flux, x, y).

    For a point source in a restored image (Jy/beam) the fitted amplitude is its flux; fitting
    instead of reading the brightest pixel avoids the loss from the source sitting between pixels.
    ``bpa_deg`` follows the FITS convention (east of north, i.e. from +y towards -x).
    """
    xi, yi = int(round(x0)), int(round(y0))
    ys, xs = np.mgrid[yi - box : yi + box + 1, xi - box : xi + box + 1]
    cut = image[yi - box : yi + box + 1, xi - box : xi + box + 1]
    sx, sy = bmin_px / 2.3548, bmaj_px / 2.3548
    pa = np.radians(bpa_deg)

    def model(p):
        a, x, y = p
        dx, dy = xs - x, ys - y
        u = dx * np.cos(pa) + dy * np.sin(pa)  # along the minor axis
        v = -dx * np.sin(pa) + dy * np.cos(pa)  # along the major axis
        return a * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))

    good = np.isfinite(cut)
    res = optimize.least_squares(lambda p: (model(p) - cut)[good], x0=[float(np.nanmax(cut)), x0, y0])
    return float(res.x[0]), float(res.x[1]), float(res.x[2])


def rms_verdict(rms_jy: float, expected_jy: float) -> tuple[bool, float, float]:
    """Whether an image's noise passes QA: its rms at most RMS_LIMIT_OVER_EXPECTED x the radiometer's.

    Parameters
    ----------
    rms_jy : float
        The image's rms (Jy/beam), e.g. ImageQA.rms_jy. NaN fails.
    expected_jy : float
        The radiometer noise expected for the data and weights imaged (Jy/beam).

    Returns
    -------
    passed : bool
    ratio : float
        ``rms_jy / expected_jy``.
    limit : float
        The largest ratio that passes (RMS_LIMIT_OVER_EXPECTED).

    Raises
    ------
    ValueError
        If ``expected_jy`` is not a finite positive number (no verdict can be reached against it) or
        ``rms_jy`` is negative.
    """
    if not np.isfinite(expected_jy) or expected_jy <= 0:
        raise ValueError(f"expected_jy must be a finite positive noise in Jy/beam, got {expected_jy!r}")
    if rms_jy < 0:
        raise ValueError(f"rms_jy must be >= 0 Jy/beam (or NaN, which fails), got {rms_jy!r}")
    # compared as the asset always did, rather than the rounded ratio: the same verdict at the limit
    passed = bool(rms_jy <= RMS_LIMIT_OVER_EXPECTED * expected_jy)
    return passed, float(rms_jy) / float(expected_jy), RMS_LIMIT_OVER_EXPECTED


@dataclass(frozen=True)
class ImageVerdict:
    """An image's QA verdict: whether it passed, and the problems found (catalogue reason, check metadata)."""

    passed: bool
    rms_over_expected: float
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The catalogue's image status: 'ok' or 'flagged'."""
        return "ok" if self.passed else "flagged"


def image_verdict(
    rms_jy: float,
    expected_jy: float,
    *,
    calibrated: bool,
    allow_uncalibrated: bool,
    science_grade: str | None = None,
    science_problems: list[str] | None = None,
) -> ImageVerdict:
    """The QA verdict on a chunk's image: its noise (``rms_verdict``), its calibration, its science QA.

    An uncalibrated image is always a problem said, and a failure unless ``allow_uncalibrated``. A
    science grade (``science_grade``, contimg.image.crossmatch) of 'red' fails the image (the mosaic
    leaves it out, with the figures that made it red as the reason); 'amber' is said, and passes.

    Raises
    ------
    ValueError
        As ``rms_verdict``, or when ``science_grade`` is not one of GRADES, 'ungraded' or None.
    """
    if science_grade not in (*GRADES, "ungraded", None):
        raise ValueError(f"science_grade must be one of {GRADES}, 'ungraded' or None, got {science_grade!r}")
    rms_ok, ratio, limit = rms_verdict(rms_jy, expected_jy)
    problems = [] if rms_ok else [f"rms {rms_jy * 1e3:.2f} mJy/beam > {limit} x expected {expected_jy * 1e3:.2f}"]
    if not calibrated:
        problems.append("uncalibrated")
    if science_grade in ("amber", "red"):
        problems.append(f"science QA {science_grade}: {'; '.join(science_problems or []) or 'see image_science_qa'}")
    passed = rms_ok and (calibrated or allow_uncalibrated) and science_grade != "red"
    return ImageVerdict(passed, ratio, problems)


def _band(value: float, green: float, amber: float, *, higher_is_better: bool = False) -> str:
    if higher_is_better:
        return "green" if value >= green else "amber" if value >= amber else "red"
    return "green" if value <= green else "amber" if value <= amber else "red"


def science_grade(
    *,
    flux_ratio: float | None,
    n_flux: int,
    offset_ra_beams: float | None,
    offset_dec_beams: float | None,
    completeness: float | None,
    n_complete: int,
    reliability: float | None,
    n_reliable: int,
) -> tuple[str, list[str]]:
    """Grade an image's science QA: green, amber or red (the worst figure), or 'ungraded'.

    Parameters
    ----------
    flux_ratio : float or None
        Median S_measured / S_ref of the compact matched sources (``n_flux`` of them).
    offset_ra_beams, offset_dec_beams : float or None
        Median offsets of the same sources, in beams along RA and along Dec.
    completeness : float or None
        Of the ``n_complete`` reference sources expected >= 10 sigma, the fraction detected.
    reliability : float or None
        Of the ``n_reliable`` detections >= 10 sigma, the fraction with a reference match.

    Returns
    -------
    grade : str
        'green', 'amber', 'red', or 'ungraded' when no figure rests on MIN_SOURCES_TO_GRADE sources.
    problems : list of str
        One line per figure that is not green, naming the figure, its value and the threshold.
    """
    grades, problems = [], []

    def judge(name: str, shown: str, grade: str, limit: str) -> None:
        grades.append(grade)
        if grade != "green":
            problems.append(f"{name} {shown} ({grade}: green {limit})")

    if flux_ratio is not None and np.isfinite(flux_ratio) and n_flux >= MIN_SOURCES_TO_GRADE:
        g = _band(abs(flux_ratio - 1.0), FLUX_RATIO_GREEN, FLUX_RATIO_AMBER)
        judge("flux ratio", f"{flux_ratio:.3f}", g, f"within {FLUX_RATIO_GREEN:.0%} of 1")
    if n_flux >= MIN_SOURCES_TO_GRADE:
        for axis, off in (("RA", offset_ra_beams), ("Dec", offset_dec_beams)):
            if off is not None and np.isfinite(off):
                g = _band(abs(off), OFFSET_BEAMS_GREEN, OFFSET_BEAMS_AMBER)
                judge(f"{axis} offset", f"{off:+.3f} beam", g, f"<= {OFFSET_BEAMS_GREEN} beam")
    if completeness is not None and n_complete >= MIN_SOURCES_TO_GRADE:
        g = _band(completeness, COMPLETENESS_GREEN, COMPLETENESS_AMBER, higher_is_better=True)
        judge("completeness", f"{completeness:.2f}", g, f">= {COMPLETENESS_GREEN}")
    if reliability is not None and n_reliable >= MIN_SOURCES_TO_GRADE:
        g = _band(reliability, RELIABILITY_GREEN, RELIABILITY_AMBER, higher_is_better=True)
        judge("reliability", f"{reliability:.2f}", g, f">= {RELIABILITY_GREEN}")
    if not grades:
        return "ungraded", [f"fewer than {MIN_SOURCES_TO_GRADE} sources for every figure"]
    return max(grades, key=GRADES.index), problems
