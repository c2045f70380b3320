"""One point per source per day: the day's measurements combined, then the day's flux scale normalised.

The drift scan brings a field back at the same sidereal time every day; a source may sit in several
overlapping chunks of one day. Their measurements are independent (different visibilities) and are combined
with weights ``pb^2 / rms^2`` (the inverse variance of a primary-beam-corrected flux: err = rms / pb up to the
beam-correlation factor common to all), error ``sqrt(sum w^2 err^2) / sum w``.

Flux-scale normalisation: a day's calibration can scale every flux alike. Bright sources (S/N >= 50 that day)
measured on at least two days are the references; each one's ratio to its own median over the days, and the
day's factor is the sigma-clipped median of those ratios (a variable reference is clipped). With fewer than 3
references the day is left alone (factor 1, ``norm_applied`` False). The factor is recorded beside the raw
flux and the normalised flux is a separate column.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats

__all__ = [
    "NORM_MIN_SNR",
    "NORM_MIN_REFS",
    "NORM_CLIP_SIGMA",
    "DailyPoint",
    "combine",
    "daily_points",
    "flux_scale_factors",
    "normalise",
]

NORM_MIN_SNR = 50.0  # a reference's thermal error is <= 2 %: its ratio measures the scale, not the noise
NORM_MIN_REFS = 3  # a median of fewer cannot reject one deviant reference
NORM_CLIP_SIGMA = 3.0  # ratios beyond 3 sigma of the day's median are clipped (a variable reference)
NORM_ITERATIONS = 3  # references' own levels re-estimated with the factors applied; converges in 2


@dataclass
class DailyPoint:
    """A source's flux on one day (all of that day's images combined)."""

    source_id: str
    date: str  # UTC day YYYY-MM-DD of the windows
    ra_deg: float
    dec_deg: float
    flux_jy: float  # combined, before normalisation
    err_jy: float
    n_images: int
    pb: float  # largest primary-beam response among the day's images
    scale: float = 1.0  # the day's flux-scale factor (measured / true)
    norm_applied: bool = False
    flux_norm_jy: float = float("nan")  # flux_jy / scale
    err_norm_jy: float = float("nan")

    def as_dict(self) -> dict:
        """The fields as a dict."""
        return asdict(self)


def combine(flux_jy, err_jy, pb, rms_jy) -> tuple[float, float]:
    """Weighted mean of one source's measurements of one day, weights ``pb^2 / rms^2``, and its error.

    Parameters
    ----------
    flux_jy, err_jy, pb, rms_jy : array_like
        Each measurement's primary-beam-corrected flux, its error, the beam response and the local rms of the
        flat-noise image.

    Returns
    -------
    flux_jy : float
        ``sum w S / sum w``.
    err_jy : float
        ``sqrt(sum w^2 err^2) / sum w`` (independent measurements).

    Raises
    ------
    ValueError
        If there are no measurements, the lengths differ, or a weight is not positive and finite.
    """
    s, e, p, r = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (flux_jy, err_jy, pb, rms_jy))
    if not (len(s) == len(e) == len(p) == len(r)) or len(s) == 0:
        raise ValueError("combine needs one flux, error, pb and rms per measurement, at least one")
    w = p**2 / r**2
    if not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError("combine: weights pb^2 / rms^2 must be positive and finite")
    return float(np.sum(w * s) / np.sum(w)), float(np.sqrt(np.sum(w**2 * e**2)) / np.sum(w))


def daily_points(rows) -> list[DailyPoint]:
    """One :class:`DailyPoint` per source and UTC day, sorted by source and day.

    ``rows`` are measurement dicts with source_id, ra_deg, dec_deg, start_iso, flux_jy, err_jy, pb, rms_jy.
    """
    groups = defaultdict(list)
    for r in rows:
        groups[(str(r["source_id"]), str(r["start_iso"])[:10])].append(r)
    out = []
    for (sid, date), rs in sorted(groups.items()):
        s, e = combine(*([float(r[k]) for r in rs] for k in ("flux_jy", "err_jy", "pb", "rms_jy")))
        out.append(
            DailyPoint(
                sid,
                date,
                float(rs[0]["ra_deg"]),
                float(rs[0]["dec_deg"]),
                s,
                e,
                len(rs),
                max(float(r["pb"]) for r in rs),
            )
        )
    return out


def flux_scale_factors(points: list[DailyPoint], eligible: set[str] | None = None) -> dict[str, tuple[float, int]]:
    """Each day's flux-scale factor and the number of references behind it: {date: (factor, n_refs)}.

    Only sources in ``eligible`` (None: all) can be references: the reference catalogue's compact sources
    (:attr:`contimg.core.refcat.ReferenceCatalog.compact`). A day with fewer than
    :data:`NORM_MIN_REFS` references gets (nan, n_refs). Factors are relative: the
    references' own levels are their medians over the days after normalisation, so the median factor is ~1.
    """
    by_source = defaultdict(dict)
    for p in points:
        by_source[p.source_id][p.date] = p
    dates = sorted({p.date for p in points})
    refs = {
        sid: d
        for sid, d in by_source.items()
        if (eligible is None or sid in eligible)
        and len(d) >= 2
        and any(q.err_jy > 0 and q.flux_jy / q.err_jy >= NORM_MIN_SNR for q in d.values())
    }
    factors = {date: 1.0 for date in dates}
    result = {}
    for _ in range(NORM_ITERATIONS):
        level = {sid: np.median([q.flux_jy / factors[q.date] for q in d.values()]) for sid, d in refs.items()}
        result = {}
        for date in dates:
            ratios = [
                d[date].flux_jy / level[sid]
                for sid, d in refs.items()
                if date in d
                and d[date].err_jy > 0
                and d[date].flux_jy / d[date].err_jy >= NORM_MIN_SNR
                and level[sid] > 0
            ]
            if len(ratios) >= NORM_MIN_REFS:
                _, med, _ = sigma_clipped_stats(ratios, sigma=NORM_CLIP_SIGMA)
                result[date] = (float(med), len(ratios))
            else:
                result[date] = (float("nan"), len(ratios))
        factors = {date: (f if np.isfinite(f) else 1.0) for date, (f, _) in result.items()}
    return result


def normalise(points: list[DailyPoint], eligible: set[str] | None = None) -> dict[str, tuple[float, int]]:
    """Set each point's ``scale``, ``norm_applied``, ``flux_norm_jy`` and ``err_norm_jy``.

    ``eligible``: the sources that may be references (None: all). Returns the factors of
    :func:`flux_scale_factors`.
    """
    factors = flux_scale_factors(points, eligible)
    for p in points:
        f, _ = factors.get(p.date, (float("nan"), 0))
        p.norm_applied = bool(np.isfinite(f) and f > 0)
        p.scale = f if p.norm_applied else 1.0
        p.flux_norm_jy = p.flux_jy / p.scale
        p.err_norm_jy = p.err_jy / p.scale
    return factors
