"""Writers and readers for the ingest tables (``schema/10_ingest.sql``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime

from contimg import __version__
from contimg.catalogue.db import Connection, transaction
from contimg.convert.report import ConvertReport

__all__ = [
    "now_iso",
    "record_file",
    "upsert_group",
    "get_group",
    "record_measurement_set",
    "current_ms",
    "record_timing",
    "files_with_status",
]


def now_iso() -> str:
    """The current UTC time in ISO 8601 to the second, e.g. ``2026-01-25T00:05:00+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_file(
    conn: Connection,
    path: str,
    name: str,
    status: str,
    reason: str | None = None,
    *,
    window_key: str | None = None,
    subband: int | None = None,
    size_bytes: int | None = None,
) -> None:
    """Insert or update one file's row (its status and the reason)."""
    now = now_iso()
    with transaction(conn):
        conn.execute(
            "INSERT INTO subband_files (path, name, window_key, subband, size_bytes, status, reason, "
            """first_seen, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (path) DO UPDATE SET status = excluded.status, reason = excluded.reason,
                   size_bytes = COALESCE(excluded.size_bytes, subband_files.size_bytes),
                   updated_at = excluded.updated_at""",
            (path, name, window_key, subband, size_bytes, status, reason, now, now),
        )


def files_with_status(conn: Connection, status: str) -> set[str]:
    """The paths of the subband files recorded with ``status``."""
    return {r[0] for r in conn.execute("SELECT path FROM subband_files WHERE status = ?", (status,))}


def upsert_group(conn: Connection, window_key: str, **fields) -> None:
    """Create or update a group's row; lists are stored as JSON; None leaves a column unchanged."""
    fields = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in fields.items()}
    fields["updated_at"] = now_iso()
    fields.setdefault("code_version", __version__)
    cols = ", ".join(fields)
    with transaction(conn):
        exists = conn.execute("SELECT 1 FROM groups WHERE window_key = ?", (window_key,)).fetchone()
        if exists:
            sets = ", ".join(f"{k} = COALESCE(?, {k})" for k in fields)
            conn.execute(f"UPDATE groups SET {sets} WHERE window_key = ?", (*fields.values(), window_key))
        else:
            fields.setdefault("start_utc", window_key)
            fields.setdefault("state", "requested")
            cols = ", ".join(fields)
            marks = ", ".join("?" for _ in fields)
            conn.execute(f"INSERT INTO groups (window_key, {cols}) VALUES (?, {marks})", (window_key, *fields.values()))


def get_group(conn: Connection, window_key: str) -> dict | None:
    """A group's row as a dict, or None if absent.

    ``missing_subbands`` and ``files`` are decoded from JSON (empty lists if unset).
    """
    row = conn.execute("SELECT * FROM groups WHERE window_key = ?", (window_key,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    for key in ("missing_subbands", "files"):
        out[key] = json.loads(out[key]) if out[key] else []
    return out


def record_measurement_set(
    conn: Connection, window_key: str, report: ConvertReport | Mapping, *, size_bytes: int, run_id: str | None
) -> None:
    """Add the MS made for a window; an earlier version of the same window becomes 'superseded'.

    Parameters
    ----------
    report : ConvertReport or mapping
        The convert job's report; a mapping (its published JSON) is read with ``ConvertReport.from_dict``.

    Raises
    ------
    ValueError
        If a mapping lacks a report key or has an unknown one.
    """
    rep = report if isinstance(report, ConvertReport) else ConvertReport.from_dict(report)
    with transaction(conn):
        conn.execute(
            "UPDATE measurement_sets SET status = 'superseded' WHERE window_key = ? AND status = 'current'",
            (window_key,),
        )
        conn.execute(
            """INSERT INTO measurement_sets (window_key, path, status, n_rows, n_subbands, missing_subbands, start_mjd,
                   mid_mjd, end_mjd, phase_center_ra_deg, phase_center_dec_deg, pointing_dec_deg, flagged_fraction,
                   checks, size_bytes, run_id, created_at, code_version)
               VALUES (?, ?, 'current', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                window_key,
                rep.ms_path,
                rep.n_rows,
                rep.n_subbands_present,
                json.dumps(rep.missing_subbands),
                rep.start_mjd,
                rep.mid_mjd,
                rep.end_mjd,
                rep.phase_center_ra_deg,
                rep.phase_center_dec_deg,
                rep.pointing_dec_deg,
                rep.flagged_fraction,
                json.dumps(rep.checks),
                size_bytes,
                run_id,
                now_iso(),
                rep.code_version,
            ),
        )


def current_ms(conn: Connection, window_key: str) -> dict | None:
    """The window's current measurement set row (status 'current') as a dict, or None."""
    row = conn.execute(
        "SELECT * FROM measurement_sets WHERE window_key = ? AND status = 'current'", (window_key,)
    ).fetchone()
    return dict(row) if row else None


def record_timing(
    conn: Connection,
    window_key: str,
    stage: str,
    seconds: float,
    *,
    detail: dict | None = None,
    run_id: str | None = None,
) -> None:
    """Record that ``stage`` of a window took ``seconds`` (wall time), with an optional JSON ``detail``."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO stage_timings (window_key, stage, seconds, detail, run_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (window_key, stage, seconds, json.dumps(detail) if detail else None, run_id, now_iso()),
        )


def known_file_paths(conn: Connection) -> set[str]:
    """Paths of every subband file the catalogue has seen."""
    return {r[0] for r in conn.execute("SELECT path FROM subband_files")}


def group_start_stamps(conn: Connection) -> list[str]:
    """Every group's start time as stored (ISO text; may be NULL)."""
    return [r[0] for r in conn.execute("SELECT start_utc FROM groups")]


def requested_groups(conn: Connection) -> list[tuple]:
    """``(window_key, run_key, files_json, requested_at)`` of groups still ``requested``, oldest request first."""
    return conn.execute(
        "SELECT window_key, run_key, files, requested_at FROM groups "
        "WHERE state = 'requested' AND run_key IS NOT NULL ORDER BY requested_at"
    ).fetchall()


def record_calibrator_transit(
    conn: Connection,
    window_key: str,
    *,
    calibrator: str,
    transit_mjd: float,
    offset_deg: float,
    pb_flux_jy: float,
) -> None:
    """Record (or replace) the calibrator transit found in ``window_key``."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO calibrator_transits (window_key, calibrator, transit_mjd, offset_deg, pb_flux_jy, found_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (window_key) DO UPDATE SET calibrator = excluded.calibrator, "
            "transit_mjd = excluded.transit_mjd, offset_deg = excluded.offset_deg, pb_flux_jy = excluded.pb_flux_jy, "
            "found_at = excluded.found_at",
            (window_key, calibrator, transit_mjd, offset_deg, pb_flux_jy, now_iso()),
        )


def group_states(catalogue_path) -> dict:
    """``{window_key: state}`` read from the catalogue without writing to it; empty when it cannot be read.

    With ``CONTIMG_CATALOGUE_URL`` set the Postgres catalogue is read (``catalogue_path`` is not used).
    """
    from pathlib import Path

    from contimg.catalogue.db import catalogue_url

    url = catalogue_url()
    if url:
        import psycopg2

        try:
            raw = psycopg2.connect(url, connect_timeout=10)
            try:
                with raw.cursor() as cur:
                    cur.execute("SELECT window_key, state FROM groups")
                    return dict(cur.fetchall())
            finally:
                raw.close()
        except psycopg2.Error:  # no server, or no table yet: nothing known, as for a missing file
            return {}
    path = Path(catalogue_path)
    if not path.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return dict(con.execute("SELECT window_key, state FROM groups").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}
