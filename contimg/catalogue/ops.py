"""Operators' tables: the disk guard's decisions and housekeeping's log, and what housekeeping reads.

The rules (when to hold, what to delete and why) live in ``contimg.ops``; this module only reads and
writes rows.
"""

from __future__ import annotations

import json

from contimg.catalogue.db import Connection, transaction
from contimg.catalogue.ingest import now_iso

__all__ = [
    "last_guard_event",
    "record_guard_decision",
    "calibrator_windows",
    "ms_rows",
    "imaged_windows",
    "group_rows",
    "log_housekeeping",
    "mark_ms_deleted",
    "fail_stale_group",
]

# states a group can be stuck in while no run works on it (housekeeping may fail it)
STALLABLE_STATES = ("requested", "grouped", "converted")


def last_guard_event(conn: Connection) -> dict | None:
    """The most recent ``disk_guard_events`` row, or None."""
    row = conn.execute("SELECT * FROM disk_guard_events ORDER BY id DESC LIMIT 1").fetchone()
    return dict(row) if row else None


def record_guard_decision(
    conn: Connection,
    decision: str,
    reason: str,
    free_gb: dict,
    min_free_gb: float,
    *,
    only_on_change: bool = True,
) -> bool:
    """Append a disk-guard decision; True when a row was written.

    With ``only_on_change``, the row is written only when the decision differs from the last (an
    absent history counts as ``ok``).
    """
    with transaction(conn):
        last = conn.execute("SELECT decision FROM disk_guard_events ORDER BY id DESC LIMIT 1").fetchone()
        if only_on_change and (last[0] if last else "ok") == decision:
            return False
        conn.execute(
            "INSERT INTO disk_guard_events (decision, reason, free_gb, min_free_gb, created_at) VALUES (?, ?, ?, ?, ?)",
            (decision, reason, json.dumps({k: round(v, 3) for k, v in free_gb.items()}), min_free_gb, now_iso()),
        )
    return True


def calibrator_windows(conn: Connection) -> set:
    """Windows holding a calibrator: marked on the group, or with a caltable set or transit in the catalogue.

    ``connect`` applies the whole schema, so both tables exist (empty in a catalogue older than them).
    """
    windows = {r[0] for r in conn.execute("SELECT window_key FROM groups WHERE COALESCE(calibrator, '') != ''")}
    for table in ("caltable_sets", "calibrator_transits"):
        windows |= {r[0] for r in conn.execute(f"SELECT window_key FROM {table} WHERE window_key IS NOT NULL")}
    return windows


def ms_rows(conn: Connection) -> list[dict]:
    """Every ``measurement_sets`` row: window, path, status, size."""
    return [dict(r) for r in conn.execute("SELECT window_key, path, status, size_bytes FROM measurement_sets")]


def imaged_windows(conn: Connection) -> set:
    """Windows with a good image."""
    return {r[0] for r in conn.execute("SELECT window_key FROM images WHERE status = 'ok'")}


def group_rows(conn: Connection) -> list[dict]:
    """Every group's window, state and last update."""
    return [dict(r) for r in conn.execute("SELECT window_key, state, updated_at FROM groups")]


def log_housekeeping(
    conn: Connection,
    *,
    action: str,
    path: str | None,
    window_key: str | None,
    size_bytes: int | None,
    reason: str,
    run_id: str | None = None,
) -> None:
    """Append one row to ``housekeeping_log``."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO housekeeping_log (action, path, window_key, size_bytes, reason, run_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (action, path, window_key, size_bytes, reason, run_id, now_iso()),
        )


def mark_ms_deleted(conn: Connection, window_key: str, path: str) -> None:
    """The current MS of ``window_key`` at ``path`` was deleted from disk."""
    with transaction(conn):
        conn.execute(
            "UPDATE measurement_sets SET status = 'deleted' WHERE window_key = ? AND path = ? AND status = 'current'",
            (window_key, path),
        )


def fail_stale_group(conn: Connection, window_key: str, reason: str) -> None:
    """Mark a group stuck in an in-flight state as failed, with the reason (a group that moved on is left alone)."""
    placeholders = ", ".join("?" * len(STALLABLE_STATES))
    with transaction(conn):
        conn.execute(
            f"UPDATE groups SET state = 'failed', error = ?, updated_at = ? WHERE window_key = ? "
            f"AND state IN ({placeholders})",
            (reason, now_iso(), window_key, *STALLABLE_STATES),
        )
