"""The light-curve tables of ``schema/60_photometry.sql``.

Forced measurements per window, the day's flux scale and the per-source variability per day; the
``lightcurves`` view (``views/60_lightcurves.sql``) reads them.
"""

from __future__ import annotations

from datetime import date as _date
from datetime import timedelta

from contimg.catalogue.db import Connection, transaction
from contimg.catalogue.ingest import now_iso

__all__ = [
    "MEASUREMENT_FIELDS",
    "record_photometry",
    "record_photometry_skip",
    "measurements_between",
    "record_day",
    "day_range",
]

MEASUREMENT_FIELDS = (
    "source_id",
    "ra_deg",
    "dec_deg",
    "start_iso",
    "flux_jy",
    "err_jy",
    "rms_jy",
    "pb",
    "dist_deg",
)


def record_photometry(
    conn: Connection,
    window_key: str,
    image_path: str,
    rows: list[dict],
    *,
    n_outside: int,
    run_id: str | None = None,
    code_version: str | None = None,
) -> None:
    """Replace the window's measurements with ``rows`` (dicts holding :data:`MEASUREMENT_FIELDS`)."""
    with transaction(conn):
        conn.execute("DELETE FROM photometry WHERE window_key = ?", (window_key,))
        conn.executemany(
            "INSERT INTO photometry (window_key, image_path, " + ", ".join(MEASUREMENT_FIELDS) + ") VALUES "
            "(?, ?, " + ", ".join("?" * len(MEASUREMENT_FIELDS)) + ")",
            [(window_key, image_path, *(r[k] for k in MEASUREMENT_FIELDS)) for r in rows],
        )
        _image_row(conn, window_key, image_path, "measured", None, len(rows), n_outside, run_id, code_version)


def record_photometry_skip(
    conn: Connection,
    window_key: str,
    reason: str,
    *,
    image_path: str | None = None,
    run_id: str | None = None,
    code_version: str | None = None,
) -> None:
    """Record that the window's image was not measured, and why (its earlier measurements are removed)."""
    with transaction(conn):
        conn.execute("DELETE FROM photometry WHERE window_key = ?", (window_key,))
        _image_row(conn, window_key, image_path, "skipped", reason, 0, None, run_id, code_version)


def _image_row(conn, window_key, image_path, status, reason, n_measured, n_outside, run_id, code_version):
    conn.execute(
        "INSERT INTO photometry_images (window_key, image_path, status, reason, n_measured, n_outside, "
        "run_id, updated_at, code_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (window_key) DO UPDATE SET "
        "image_path = excluded.image_path, status = excluded.status, reason = excluded.reason, "
        "n_measured = excluded.n_measured, n_outside = excluded.n_outside, run_id = excluded.run_id, "
        "updated_at = excluded.updated_at, code_version = excluded.code_version",
        (window_key, image_path, status, reason, n_measured, n_outside, run_id, now_iso(), code_version),
    )


def day_range(last_date: str, n_days: int) -> tuple[str, str]:
    """(first, last) UTC dates of the ``n_days`` days ending on ``last_date`` (YYYY-MM-DD).

    Raises
    ------
    ValueError
        If ``last_date`` is not YYYY-MM-DD or ``n_days`` < 1.
    """
    if n_days < 1:
        raise ValueError(f"n_days must be >= 1, got {n_days}")
    last = _date.fromisoformat(last_date)
    return (last - timedelta(days=n_days - 1)).isoformat(), last.isoformat()


def measurements_between(conn: Connection, first_date: str, last_date: str) -> list[dict]:
    """Measurements of the windows of the UTC days ``first_date`` .. ``last_date``, in window order."""
    cur = conn.execute(
        "SELECT window_key, image_path AS image, " + ", ".join(MEASUREMENT_FIELDS) + " FROM photometry "
        "WHERE window_key >= ? AND window_key < ? ORDER BY window_key, source_id",
        (first_date, (_date.fromisoformat(last_date) + timedelta(days=1)).isoformat()),
    )
    names = [d[0] for d in cur.description]
    return [{("window" if k == "window_key" else k): v for k, v in zip(names, r, strict=True)} for r in cur]


def record_day(
    conn: Connection,
    date: str,
    *,
    factors: dict[str, tuple[float, int]],
    results: list[dict],
    window_days: int,
    run_id: str | None = None,
    code_version: str | None = None,
) -> None:
    """Write the flux-scale factors and each source's variability row of ``date``.

    ``factors`` ({date: (factor or NaN, n_refs)}, :func:`contimg.photometry.daily.flux_scale_factors`) cover
    every day of the analysed window: the newest analysis re-estimates the earlier days' factors too, and they
    replace the stored ones (NaN: not normalised, stored as NULL). ``results`` are
    :meth:`contimg.photometry.variability.SourceVariability.as_dict` dicts; the day's earlier rows are replaced.
    """
    now = now_iso()
    with transaction(conn):
        conn.executemany(
            "INSERT INTO flux_scale (date, factor, n_refs, run_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (date) DO UPDATE SET factor = excluded.factor, n_refs = excluded.n_refs, "
            "run_id = excluded.run_id, updated_at = excluded.updated_at",
            [(d, _real(f), int(n), run_id, now) for d, (f, n) in sorted(factors.items())],
        )
        conn.execute("DELETE FROM variables WHERE date = ?", (date,))
        conn.executemany(
            "INSERT INTO variables (date, source_id, window_days, n_epochs, mean_flux_jy, v, eta, max_abs_vs, "
            "max_abs_m, dip_sigma, dip_depth, dip_start, dip_days, variable, rule, run_id, updated_at, code_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    date,
                    r["source_id"],
                    window_days,
                    r["n_epochs"],
                    *(_real(r[k]) for k in ("mean_flux_jy", "V", "eta", "max_abs_Vs", "max_abs_m")),
                    _real(r["dip_sigma"]),
                    _real(r["dip_depth"]),
                    r["dip_start"] or None,
                    r["dip_days"],
                    int(bool(r["variable"])),
                    r["rule"],
                    run_id,
                    now,
                    code_version,
                )
                for r in results
            ],
        )


def _real(x) -> float | None:
    x = float(x)
    return x if x == x else None  # NaN -> NULL
