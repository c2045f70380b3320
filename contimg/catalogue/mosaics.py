"""The ``mosaics`` table (``schema/50_mosaics.sql``): one row per nightly mosaic build, history kept.

A new build of a date marks the earlier 'current' row 'superseded'; failures are rows too.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from contimg import __version__
from contimg.catalogue.db import Connection, transaction
from contimg.catalogue.ingest import now_iso

__all__ = ["WINDOWS_PER_DAY", "day_windows", "day_images", "record_mosaic", "record_mosaic_failure", "current_mosaic"]

WINDOWS_PER_DAY = 288  # 5-minute windows in a UTC day


def day_windows(date: str) -> list[str]:
    """The day's 288 window keys (``YYYY-MM-DDTHH:MM``, the FIVE_MIN partition format).

    Raises
    ------
    ValueError
        If ``date`` is not ``YYYY-MM-DD``.
    """
    try:
        start = datetime.strptime(date, "%Y-%m-%d")
    except ValueError as err:
        raise ValueError(f"mosaic date {date!r} is not YYYY-MM-DD") from err
    return [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M") for i in range(WINDOWS_PER_DAY)]


def day_images(conn: Connection, date: str) -> tuple[list[dict], list[dict], list[str]]:
    """The day's current image rows: (usable rows in time order, QA-excluded [{window, reason}], gaps).

    Usable rows have status 'ok'; 'flagged' rows (QA failed) are excluded and listed with their
    reason; windows with no usable row (missing, failed imaging or flagged) are gaps.
    """
    windows = day_windows(date)
    rows = conn.execute(
        "SELECT id, window_key, image_path, status, reason FROM images WHERE window_key >= ? AND "
        "window_key <= ? AND status IN ('ok', 'flagged') ORDER BY window_key, id",
        (windows[0], windows[-1]),
    ).fetchall()
    latest = {r[1]: r for r in rows}  # last row per window wins
    ok = [{"window": r[1], "image": r[2]} for r in latest.values() if r[3] == "ok"]
    excluded = [{"window": r[1], "reason": r[4] or "QA flagged"} for r in latest.values() if r[3] != "ok"]
    have = {r["window"] for r in ok}
    return ok, excluded, [w for w in windows if w not in have]


def record_mosaic(
    conn: Connection,
    date: str,
    *,
    path: str,
    noise_path: str,
    png_path: str | None,
    n_images: int,
    gaps: list[str],
    excluded: list[dict],
    run_id: str | None,
) -> float:
    """Add the 'current' row of ``date`` (the previous one becomes 'superseded'); returns the coverage."""
    coverage = n_images / WINDOWS_PER_DAY
    with transaction(conn):
        conn.execute("UPDATE mosaics SET status = 'superseded' WHERE date = ? AND status = 'current'", (date,))
        conn.execute(
            "INSERT INTO mosaics (date, path, noise_path, png_path, n_images, n_possible, coverage, gaps, "
            "excluded, status, run_id, created_at, code_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'current', ?, ?, ?)",
            (
                date,
                path,
                noise_path,
                png_path,
                n_images,
                WINDOWS_PER_DAY,
                coverage,
                json.dumps(gaps),
                json.dumps(excluded),
                run_id,
                now_iso(),
                __version__,
            ),
        )
    return coverage


def record_mosaic_failure(
    conn: Connection, date: str, reason: str, *, excluded: list[dict] | None = None, run_id: str | None = None
) -> None:
    """Add a 'failed' row for ``date`` (an earlier current mosaic stays current)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO mosaics (date, n_images, n_possible, coverage, excluded, status, reason, run_id, "
            "created_at, code_version) VALUES (?, 0, ?, 0.0, ?, 'failed', ?, ?, ?, ?)",
            (date, WINDOWS_PER_DAY, json.dumps(excluded or []), reason, run_id, now_iso(), __version__),
        )


def current_mosaic(conn: Connection, date: str) -> dict | None:
    """The current mosaic row of ``date`` (gaps and excluded decoded), or None."""
    cur = conn.execute("SELECT * FROM mosaics WHERE date = ? AND status = 'current' ORDER BY id DESC LIMIT 1", (date,))
    row = cur.fetchone()
    if row is None:
        return None
    d = dict(zip([c[0] for c in cur.description], row, strict=True))
    d["gaps"] = json.loads(d["gaps"] or "[]")
    d["excluded"] = json.loads(d["excluded"] or "[]")
    return d
