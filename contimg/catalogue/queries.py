"""DuckDB queries behind ``contimg status|products|qa``: read-only, over the attached catalogue ``cat``.

Time ranges are on window keys (``YYYY-MM-DDTHH:MM``, UTC), which sort as text: a range is
``since <= window_key < until``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from contimg.catalogue.db import catalogue_url, connect, psycopg2_error, redact
from contimg.catalogue.duck import open_duckdb

__all__ = [
    "open_catalogue",
    "reading",
    "parse_utc",
    "window_key_of",
    "resolve_range",
    "table_exists",
    "columns_of",
    "fetch_dicts",
    "groups_by_state",
    "backlog",
    "last_image",
    "active_calibration",
    "recent_failures",
    "products",
    "qa_rows",
    "last_guard_event",
    "group_windows_between",
    "calibrator_windows_between",
    "PRODUCT_TYPES",
    "IN_FLIGHT_STATES",
]

PRODUCT_TYPES = ("ms", "caltable", "image", "mosaic")
IN_FLIGHT_STATES = ("requested", "grouped", "converted", "calibrated")
DEFAULT_SPAN = timedelta(hours=24)


def open_catalogue(path: Path | None, *, url: str | None = None):
    """DuckDB over the catalogue (views made): Postgres at ``url`` (default ``CONTIMG_CATALOGUE_URL``), else ``path``.

    Raises
    ------
    FileNotFoundError
        If there is no catalogue at ``path``; the message says which settings locate it.
    RuntimeError
        If the catalogue cannot be read (not SQLite, unreadable file, Postgres unreachable), naming it.
    """
    url = url if url is not None else catalogue_url()
    if url:
        try:
            return open_duckdb(url=url)
        except (duckdb.Error, psycopg2_error()) as err:
            detail = " ".join(str(err).split())
            raise RuntimeError(
                f"cannot read the catalogue at CONTIMG_CATALOGUE_URL {redact(url)} ({type(err).__name__}: {detail})"
            ) from err
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no catalogue at {path}: nothing processed yet, or set CONTIMG_ROOT / "
            f"CONTIMG_STATE_DIR to the platform's state directory"
        )
    try:
        return open_duckdb(path, url="")
    except duckdb.Error as err:
        detail = " ".join(str(err).split())
        raise RuntimeError(f"cannot read the catalogue {path} ({type(err).__name__}: {detail})") from err


@contextmanager
def reading(path: Path | None, *, missing_ok: bool = False, url: str | None = None) -> Iterator:
    """A DuckDB connection over the catalogue (as :func:`open_catalogue`), closed on exit.

    With ``missing_ok``, a SQLite catalogue that does not exist yet (a fresh install: nothing processed) reads
    as an empty one: the schema is made in a temporary file, so every query answers "nothing" and the
    state directory is left untouched. (A Postgres catalogue always exists: opening it applies the schema.)

    Raises
    ------
    FileNotFoundError, RuntimeError
        As :func:`open_catalogue` (FileNotFoundError only without ``missing_ok``).
    """
    url = url if url is not None else catalogue_url()
    if url or Path(path).exists() or not missing_ok:
        con = open_catalogue(path, url=url)
        try:
            yield con
        finally:
            con.close()
        return
    with tempfile.TemporaryDirectory(prefix="contimg-empty-catalogue-") as tmp:
        empty = Path(tmp) / "catalogue.sqlite3"
        connect(empty, url="").close()
        con = open_catalogue(empty, url="")
        try:
            yield con
        finally:
            con.close()


def parse_utc(text: str) -> datetime:
    """``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS]`` (UTC unless an offset is given) -> aware datetime.

    Raises
    ------
    ValueError
        If ``text`` is not such a time.
    """
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(f"bad time {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from err
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def window_key_of(dt: datetime) -> str:
    """The window key (``YYYY-MM-DDTHH:MM``, UTC) of a time; a naive ``dt`` is taken as local time."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def fetch_dicts(con, sql: str, params: list | None = None) -> list[dict]:
    """The rows of ``sql`` (with ``params``) on the DuckDB connection ``con``, each as a dict keyed by column."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def table_exists(con, name: str) -> bool:
    """Whether the attached catalogue has table ``name`` (schemas land stage by stage)."""
    return (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'cat' AND table_name = ?", [name]
        ).fetchone()[0]
        > 0
    )


def columns_of(con, name: str) -> list[str]:
    """The column names of the attached catalogue's table ``name``, in table order (empty if absent)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'cat' "
            "AND table_name = ? ORDER BY column_index",
            [name],
        ).fetchall()
    ]


def resolve_range(con, since: str | None, until: str | None) -> tuple[str, str]:
    """The window-key range ``[since, until)``; by default the last 24 h of data (ending after the newest window).

    Raises
    ------
    ValueError
        If a time does not parse or ``since`` is not before ``until``.
    """
    until_dt = parse_utc(until) if until else None
    since_dt = parse_utc(since) if since else None
    if until_dt is None:
        if since_dt is not None:
            until_dt = since_dt + DEFAULT_SPAN
        else:
            newest = con.execute(
                "SELECT max(w) FROM (SELECT max(window_key) AS w FROM cat.groups "
                "UNION ALL SELECT max(window_key) FROM cat.images)"
            ).fetchone()[0]
            until_dt = (parse_utc(newest) + timedelta(minutes=5)) if newest else datetime.now(UTC)
    if since_dt is None:
        since_dt = until_dt - DEFAULT_SPAN
    if since_dt >= until_dt:
        raise ValueError(
            f"bad range: --since {window_key_of(since_dt)} is not before --until {window_key_of(until_dt)}"
        )
    return window_key_of(since_dt), window_key_of(until_dt)


def groups_by_state(con, since: str, until: str) -> dict:
    """The number of chunks per state among the windows in ``[since, until)``."""
    rows = con.execute(
        "SELECT state, count(*) FROM cat.groups WHERE window_key >= ? AND window_key < ? GROUP BY state ORDER BY state",
        [since, until],
    ).fetchall()
    return {state: n for state, n in rows}


def backlog(con) -> dict:
    """Chunks not yet finished (all time): count per in-flight state and the oldest window."""
    marks = ", ".join("?" for _ in IN_FLIGHT_STATES)
    rows = con.execute(
        f"SELECT state, count(*), min(window_key) FROM cat.groups WHERE state IN ({marks}) GROUP BY state",
        list(IN_FLIGHT_STATES),
    ).fetchall()
    return {
        "n_chunks": sum(r[1] for r in rows),
        "by_state": {r[0]: r[1] for r in rows},
        "oldest_window": min((r[2] for r in rows), default=None),
    }


def last_image(con) -> dict | None:
    """The newest image with status 'ok' or 'flagged' (window, status, QA figures, path, time), or None."""
    rows = fetch_dicts(
        con,
        "SELECT window_key, status, rms_jy, dynamic_range, n_sources, image_path, created_at "
        "FROM cat.images WHERE status IN ('ok', 'flagged') ORDER BY window_key DESC, id DESC LIMIT 1",
    )
    return rows[0] if rows else None


MJD_UNIX_EPOCH = 40587.0  # MJD of 1970-01-01T00:00 UTC


def active_calibration(con, now: datetime | None = None) -> dict | None:
    """The calibration set the registry would pick now (newest ``active`` set), its age and coverage.

    ``age_h`` is the time since the calibrator's transit; ``covers_latest_ms`` says whether the set's
    validity window holds the newest measurement set's mid time. None when no set is active (or the
    calibration tables are not in the catalogue).
    """
    if not table_exists(con, "caltable_sets"):
        return None
    rows = fetch_dicts(
        con,
        "SELECT set_name, window_key, calibrator, transit_mjd, valid_start_mjd, valid_end_mjd, "
        "status, created_at FROM cat.caltable_sets WHERE status = 'active' "
        "ORDER BY created_at DESC, set_name DESC LIMIT 1",
    )
    if not rows:
        return None
    row = rows[0]
    now = now or datetime.now(UTC)
    now_mjd = now.timestamp() / 86400.0 + MJD_UNIX_EPOCH
    row["age_h"] = round((now_mjd - row["transit_mjd"]) * 24.0, 2)
    newest = con.execute("SELECT max(mid_mjd) FROM cat.measurement_sets WHERE status = 'current'").fetchone()[0]
    row["covers_latest_ms"] = None if newest is None else bool(row["valid_start_mjd"] <= newest <= row["valid_end_mjd"])
    return row


def recent_failures(con, since: str, until: str, limit: int = 10) -> list[dict]:
    """Up to ``limit`` failures (kind, window, path, reason, time) of windows in ``[since, until)``."""
    return fetch_dicts(
        con,
        "SELECT kind, window_key, path, reason, at_utc FROM recent_failures "
        "WHERE window_key >= ? AND window_key < ? LIMIT ?",
        [since, until, limit],
    )


def products(con, date: str | None = None, product_type: str | None = None) -> list[dict]:
    """Current products (type, date, window, path, status, size) for a UTC date and/or a type.

    Raises
    ------
    ValueError
        If ``product_type`` is not one of :data:`PRODUCT_TYPES` or ``date`` is not ``YYYY-MM-DD``.
    """
    if product_type is not None and product_type not in PRODUCT_TYPES:
        raise ValueError(f"unknown product type {product_type!r}: choose from {', '.join(PRODUCT_TYPES)}")
    if date is not None:
        parse_utc(date)
        date = date[:10]
    parts, params = [], []
    parts.append("SELECT type, date, window_key, path, status, size_bytes, created_at FROM products")
    # Calibration tables and mosaics come from their own stages' tables when those exist.
    if table_exists(con, "caltables") and table_exists(con, "caltable_sets"):
        parts.append(
            "SELECT 'caltable', substr(s.window_key, 1, 10), s.window_key, c.path, s.status, NULL, s.created_at "
            "FROM cat.caltables c JOIN cat.caltable_sets s ON c.set_name = s.set_name"
        )
    if table_exists(con, "mosaics") and {"date", "path", "status"} <= set(columns_of(con, "mosaics")):
        cols = set(columns_of(con, "mosaics"))
        files = ", ".join(c for c in ("path", "noise_path", "png_path") if c in cols)
        parts.append(
            "SELECT 'mosaic', date, NULL, p, status, NULL, created_at FROM "
            f"(SELECT date, status, created_at, unnest([{files}]) AS p FROM cat.mosaics "
            "WHERE status = 'current') WHERE p IS NOT NULL"
        )
    sql = "SELECT * FROM (" + " UNION ALL ".join(parts) + ") WHERE TRUE"
    if date is not None:
        sql += " AND date = ?"
        params.append(date)
    if product_type is not None:
        sql += " AND type = ?"
        params.append(product_type)
    sql += " ORDER BY type, window_key, path"
    return fetch_dicts(con, sql, params)


QA_COLUMNS = [
    "window_key",
    "status",
    "rms_jy",
    "expected_rms_jy",
    "rms_ratio",
    "peak_jy",
    "dynamic_range",
    "n_sources",
    "bmaj_arcsec",
    "bmin_arcsec",
    "bpa_deg",
    "flagged_fraction",
    "science_grade",
    "flux_ratio",
    "offset_ra_arcsec",
    "offset_dec_arcsec",
    "completeness",
    "reliability",
    "calset",
    "image_path",
]
# from the science_qa view (NULL for an image made without a reference catalogue)
_SCIENCE_QA = {
    "science_grade": "grade",
    "flux_ratio": "flux_ratio",
    "offset_ra_arcsec": "offset_ra_arcsec",
    "offset_dec_arcsec": "offset_dec_arcsec",
    "completeness": "completeness",
    "reliability": "reliability",
}


def qa_rows(con, since: str, until: str) -> list[dict]:
    """The QA trend rows (:data:`QA_COLUMNS`) of the windows in ``[since, until)``, oldest first."""
    cols = ", ".join(f"s.{_SCIENCE_QA[c]} AS {c}" if c in _SCIENCE_QA else f"q.{c}" for c in QA_COLUMNS)
    return fetch_dicts(
        con,
        f"SELECT {cols} FROM qa_trends AS q LEFT JOIN science_qa AS s ON s.image_path = q.image_path "
        "AND s.window_key = q.window_key WHERE q.window_key >= ? AND q.window_key < ? ORDER BY q.window_key",
        [since, until],
    )


def last_guard_event(con) -> dict | None:
    """The latest disk-guard decision (decision, reason, free and minimum free GB, time), or None."""
    rows = fetch_dicts(
        con,
        "SELECT decision, reason, free_gb, min_free_gb, created_at FROM cat.disk_guard_events ORDER BY id DESC LIMIT 1",
    )
    return rows[0] if rows else None


def group_windows_between(con, lo: str, hi: str) -> set:
    """Windows in ``[lo, hi]`` with a chunk recorded in ``groups``."""
    return {
        r[0]
        for r in con.execute(
            "SELECT window_key FROM cat.groups WHERE window_key >= ? AND window_key <= ?", [lo, hi]
        ).fetchall()
    }


def calibrator_windows_between(con, lo: str, hi: str) -> set:
    """Windows in ``[lo, hi]`` holding a calibrator transit (marked on the group or found by calibration)."""
    out = {
        r[0]
        for r in con.execute(
            "SELECT window_key FROM cat.groups WHERE window_key >= ? AND window_key <= ? "
            "AND coalesce(calibrator, '') != ''",
            [lo, hi],
        ).fetchall()
    }
    for table in ("calibrator_transits", "caltable_sets"):
        if table_exists(con, table):
            out |= {
                r[0]
                for r in con.execute(
                    f"SELECT window_key FROM cat.{table} WHERE window_key >= ? AND window_key <= ?", [lo, hi]
                ).fetchall()
            }
    return out
