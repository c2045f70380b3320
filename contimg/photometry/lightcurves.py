"""Light-curve tables: the measurement CSV (``contimg photometry``), daily points, and the variability table.

The steps the ``contimg photometry`` / ``contimg variability`` commands and the Dagster assets share.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from contimg.core.refcat import ReferenceCatalog
from contimg.photometry.daily import DailyPoint, daily_points, normalise
from contimg.photometry.forced import measure_image
from contimg.photometry.variability import SourceVariability, source_variability

__all__ = [
    "MEASUREMENT_COLUMNS",
    "VARIABILITY_COLUMNS",
    "measure_images",
    "write_csv",
    "read_measurements",
    "light_curve_arrays",
    "analyse",
    "variability_rows",
]

MEASUREMENT_COLUMNS = (
    "source_id",
    "ra_deg",
    "dec_deg",
    "window",
    "start_iso",
    "flux_jy",
    "err_jy",
    "rms_jy",
    "pb",
    "dist_deg",
    "image",
)
FLOAT_COLUMNS = ("ra_deg", "dec_deg", "flux_jy", "err_jy", "rms_jy", "pb", "dist_deg")
VARIABILITY_COLUMNS = (
    "source_id",
    "n_epochs",
    "mean_flux_jy",
    "V",
    "eta",
    "max_abs_Vs",
    "max_abs_m",
    "dip_sigma",
    "dip_depth",
    "dip_start",
    "dip_days",
    "variable",
    "rule",
)


def measure_images(paths, sources: ReferenceCatalog) -> list[dict]:
    """Measurement rows (:data:`MEASUREMENT_COLUMNS`) of every ``PREFIX.pbcor.fits`` in ``paths``."""
    rows = []
    for p in paths:
        rows += measure_image(p, sources).rows()
    return rows


def write_csv(path, rows: list[dict], columns) -> Path:
    """Write ``rows`` (dicts) with ``columns`` to the CSV ``path`` (floats with 9 significant digits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([f"{r[c]:.9g}" if isinstance(r[c], float) else r[c] for c in columns])
    return path


def read_measurements(path) -> list[dict]:
    """Rows of a measurement CSV written by ``contimg photometry``.

    Raises
    ------
    ValueError
        If a column is missing or a number is not one.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MEASUREMENT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a photometry table, missing column(s) {', '.join(missing)}")
        rows = list(reader)
    for i, r in enumerate(rows, start=2):
        try:
            for c in FLOAT_COLUMNS:
                r[c] = float(r[c])
        except ValueError as err:
            raise ValueError(f"{path} line {i}: {err}") from err
    return rows


def light_curve_arrays(points: list[DailyPoint]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(source ids, dates, normalised flux, its error) with NaN where a source has no point that day."""
    ids = sorted({p.source_id for p in points})
    dates = sorted({p.date for p in points})
    si, di = {s: k for k, s in enumerate(ids)}, {d: k for k, d in enumerate(dates)}
    flux = np.full((len(ids), len(dates)), np.nan)
    err = np.full_like(flux, np.nan)
    for p in points:
        flux[si[p.source_id], di[p.date]] = p.flux_norm_jy
        err[si[p.source_id], di[p.date]] = p.err_norm_jy
    return ids, dates, flux, err


def analyse(rows: list[dict], *, last_days: int | None = None, eligible_refs: set[str] | None = None):
    """Daily points (normalised), the day factors and each source's variability over the days.

    ``last_days``: only the last N days with data (a sliding window ending on the newest day).
    ``eligible_refs``: sources that may set the flux scale (None: any bright one).

    Returns
    -------
    points : list of DailyPoint
    factors : dict
        {date: (factor or nan, n_refs)} of :func:`contimg.photometry.daily.flux_scale_factors`.
    results : list of SourceVariability

    Raises
    ------
    ValueError
        If there are no measurements.
    """
    if not rows:
        raise ValueError("no measurements to analyse")
    points = daily_points(rows)
    if last_days is not None:
        keep = set(sorted({p.date for p in points})[-last_days:])
        points = [p for p in points if p.date in keep]
    factors = normalise(points, eligible_refs)
    ids, dates, flux, err = light_curve_arrays(points)
    return points, factors, source_variability(ids, dates, flux, err)


def variability_rows(results: list[SourceVariability]) -> list[dict]:
    """Rows of :data:`VARIABILITY_COLUMNS` (``variable`` as yes/no)."""
    return [{**r.as_dict(), "variable": "yes" if r.variable else "no"} for r in results]
