"""The caltable registry's storage in SQLite: record solved sets, look up the one valid at a time.

The rules (validity window, which set wins, apply order, status) are pure and live in
``contimg.calibrate.registry_rules``; this module only reads and writes the tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from contimg.calibrate.registry_rules import DEFAULT_VALIDITY_H, CalSet, select_active, set_status, validity_window
from contimg.calibrate.report import CalibrateReport
from contimg.catalogue.db import Connection, transaction
from contimg.catalogue.ingest import now_iso

__all__ = ["active_set", "register_report", "register_set", "retire_set"]


def register_set(
    conn: Connection,
    *,
    set_name: str,
    window_key: str,
    calibrator: str,
    source_ms: str,
    transit_mjd: float,
    tables: list[dict],
    status: str,
    refant: str | None,
    solver_version: str,
    solver_params: dict,
    quality: dict,
    reason: str | None = None,
    validity_h: float = DEFAULT_VALIDITY_H,
) -> None:
    """Record a solved set and its tables, replacing any set of the same name.

    ``tables`` are dicts with path, type, order, quality.

    Raises
    ------
    ValueError
        If ``validity_h`` is not positive.
    """
    valid_start_mjd, valid_end_mjd = validity_window(transit_mjd, validity_h)
    with transaction(conn):
        conn.execute("DELETE FROM caltables WHERE set_name = ?", (set_name,))
        conn.execute("DELETE FROM caltable_sets WHERE set_name = ?", (set_name,))
        conn.execute(
            """INSERT INTO caltable_sets (set_name, window_key, calibrator, source_ms, transit_mjd, valid_start_mjd,
                   valid_end_mjd, status, refant, solver_version, solver_params, quality, reason, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                set_name,
                window_key,
                calibrator,
                source_ms,
                transit_mjd,
                valid_start_mjd,
                valid_end_mjd,
                status,
                refant,
                solver_version,
                json.dumps(solver_params),
                json.dumps(quality),
                reason,
                now_iso(),
            ),
        )
        for t in tables:
            conn.execute(
                "INSERT INTO caltables (path, set_name, table_type, apply_order, quality) VALUES (?, ?, ?, ?, ?)",
                (t["path"], set_name, t["type"], t["order"], json.dumps(t.get("quality", {}))),
            )


def register_report(
    conn: Connection,
    report: CalibrateReport,
    *,
    window_key: str,
    source_ms: str,
    validity_h: float = DEFAULT_VALIDITY_H,
) -> str:
    """Record the set a calibrate job reported; returns its status (``active``, or ``failed`` on quality).

    ``source_ms`` is the MS as the caller knows it (the catalogue's path, or the CLI's argument),
    which may differ from the absolute path in ``report.source_ms``.

    Raises
    ------
    ValueError
        If ``validity_h`` is not positive.
    """
    status = set_status(report.quality_ok)
    register_set(
        conn,
        set_name=report.set_name,
        window_key=window_key,
        calibrator=report.calibrator,
        source_ms=source_ms,
        transit_mjd=report.plan.transit_mjd,
        tables=[
            {"path": t.path, "type": t.type, "order": t.order, "quality": asdict(t.quality)} for t in report.tables
        ],
        status=status,
        refant=str(report.refant),
        solver_version=report.solver_version,
        solver_params=report.solver_params,
        quality=report.quality_by_type(),
        reason="; ".join(report.problems) or None,
        validity_h=validity_h,
    )
    return status


def retire_set(conn: Connection, set_name: str) -> None:
    """Mark a set retired: it stays in the history but never applies again."""
    with transaction(conn):
        conn.execute("UPDATE caltable_sets SET status = 'retired' WHERE set_name = ?", (set_name,))


def active_set(conn: Connection, mjd: float) -> dict | None:
    """{set_name, window, tables (paths in apply order)} valid at ``mjd``, or None."""
    rows = conn.execute(
        "SELECT set_name, valid_start_mjd, valid_end_mjd, status, created_at FROM caltable_sets"
    ).fetchall()
    chosen = select_active([CalSet(*r) for r in rows], mjd)
    if chosen is None:
        return None
    window = conn.execute("SELECT window_key FROM caltable_sets WHERE set_name = ?", (chosen.set_name,)).fetchone()[0]
    tables = [
        r[0]
        for r in conn.execute("SELECT path FROM caltables WHERE set_name = ? ORDER BY apply_order", (chosen.set_name,))
    ]
    return {"set_name": chosen.set_name, "window": window, "tables": tables}


def set_table_paths(conn: Connection, set_name: str) -> list[str]:
    """The table paths of caltable set ``set_name`` in apply order (empty if no such set)."""
    rows = conn.execute("SELECT path FROM caltables WHERE set_name = ? ORDER BY apply_order", (set_name,)).fetchall()
    return [r[0] for r in rows]


def pending_calibration_window(conn: Connection, mid_mjd: float, validity_h: float = DEFAULT_VALIDITY_H) -> str | None:
    """A calibrator window within ``validity_h`` of ``mid_mjd`` whose tables are not solved yet, or None.

    Its run may still be going.
    """
    row = conn.execute(
        """SELECT t.window_key FROM calibrator_transits t
           LEFT JOIN caltable_sets s ON s.window_key = t.window_key
           WHERE s.set_name IS NULL AND ABS(t.transit_mjd - ?) <= ?""",
        (mid_mjd, validity_h / 24.0),
    ).fetchone()
    return row[0] if row else None
