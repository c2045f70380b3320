"""DuckDB queries behind the monitoring API and pages (``contimg serve``), over the attached catalogue ``cat``.

The operator queries of ``contimg status|products|qa`` live in :mod:`contimg.catalogue.queries` and the web service
reuses them; this module holds only what the web service adds: one chunk in full, the measurement-set index,
calibrator matches, a night's windows and thumbnails, the calibration sets a night used, the mosaic of a date.
Every function takes an open DuckDB connection (or cursor) from :func:`contimg.catalogue.duck.open_duckdb`.
"""

from __future__ import annotations

import json

from contimg.catalogue.queries import fetch_dicts, table_exists

__all__ = [
    "GROUP_STATES",
    "MS_STATUSES",
    "newest_date",
    "newest_ms_mid_mjd",
    "night_windows",
    "night_thumbs",
    "night_calsets",
    "current_mosaic",
    "group_detail",
    "ms_index",
    "calibrator_matches",
    "calibration_history",
    "calibration_set",
    "json_or_none",
]

GROUP_STATES = ("requested", "grouped", "converted", "calibrated", "imaged", "failed", "incomplete")
MS_STATUSES = ("current", "superseded", "deleted")


def json_or_none(text):
    """A JSON column's value decoded (lists, dicts); text that is not JSON is returned as it is."""
    if text is None or not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


# A UTC date's windows are the keys in [date, date + "~"): "~" sorts after the "T..." of every key of that date.


def newest_date(con) -> str | None:
    """The UTC date of the newest chunk or image in the catalogue (None when it has none)."""
    row = con.execute(
        "SELECT max(w) FROM (SELECT max(window_key) AS w FROM cat.groups "
        "UNION ALL SELECT max(window_key) FROM cat.images)"
    ).fetchone()
    return row[0][:10] if row and row[0] else None


def newest_ms_mid_mjd(con) -> float | None:
    """Mid time (MJD) of the newest current measurement set: the newest data the pipeline has."""
    return con.execute("SELECT max(mid_mjd) FROM cat.measurement_sets WHERE status = 'current'").fetchone()[0]


def night_windows(con, date: str) -> dict[str, dict]:
    """Window key -> {state, image_status, rms_jy} for the chunks of UTC ``date`` that the catalogue knows.

    ``state`` is the chunk's state (``groups``); ``image_status`` that of its current image, if any.
    """
    rows = fetch_dicts(
        con,
        """
        SELECT coalesce(g.window_key, i.window_key) AS window_key, g.state, i.status AS image_status, i.rms_jy
        FROM (SELECT window_key, state FROM cat.groups WHERE window_key >= ? AND window_key < ?) g
        FULL OUTER JOIN (SELECT window_key, status, rms_jy FROM cat.images
                         WHERE window_key >= ? AND window_key < ? AND status IN ('ok', 'flagged')) i
          ON g.window_key = i.window_key
        ORDER BY 1""",
        [date, date + "~", date, date + "~"],
    )
    return {r.pop("window_key"): r for r in rows}


def night_thumbs(con, date: str) -> list[dict]:
    """The current images of UTC ``date`` with their PNG and the QA figures shown under a thumbnail."""
    return fetch_dicts(
        con,
        "SELECT window_key, status, rms_jy, expected_rms_jy, dynamic_range, n_sources, calset, "
        "reason, png_path, image_path FROM cat.images WHERE window_key >= ? AND window_key < ? "
        "AND status IN ('ok', 'flagged') ORDER BY window_key",
        [date, date + "~"],
    )


def night_calsets(con, date: str) -> list[dict]:
    """The calibration sets the images of UTC ``date`` were made with, and how many images each."""
    if not table_exists(con, "caltable_sets"):
        return []
    return fetch_dicts(
        con,
        """
        SELECT i.calset AS set_name, count(*) AS n_images, min(i.window_key) AS first_window,
               max(i.window_key) AS last_window, s.calibrator, s.window_key AS calibrator_window, s.status
        FROM cat.images i LEFT JOIN cat.caltable_sets s ON s.set_name = i.calset
        WHERE i.window_key >= ? AND i.window_key < ? AND i.status IN ('ok', 'flagged') AND i.calset IS NOT NULL
        GROUP BY i.calset, s.calibrator, s.window_key, s.status ORDER BY first_window""",
        [date, date + "~"],
    )


def current_mosaic(con, date: str) -> dict | None:
    """The current mosaic of UTC ``date`` (paths, coverage, gaps), or None."""
    if not table_exists(con, "mosaics"):
        return None
    rows = fetch_dicts(
        con,
        "SELECT date, path, noise_path, png_path, n_images, n_possible, coverage, gaps, excluded, "
        "status, created_at, run_id FROM cat.mosaics WHERE date = ? AND status = 'current' "
        "ORDER BY id DESC LIMIT 1",
        [date],
    )
    if not rows:
        return None
    row = rows[0]
    row["gaps"], row["excluded"] = json_or_none(row["gaps"]), json_or_none(row["excluded"])
    return row


def calibration_set(con, set_name: str) -> dict | None:
    """One calibration set with its tables in apply order (None if the catalogue has no such set)."""
    if not table_exists(con, "caltable_sets"):
        return None
    rows = fetch_dicts(
        con,
        "SELECT set_name, window_key, calibrator, source_ms, transit_mjd, valid_start_mjd, "
        "valid_end_mjd, status, refant, solver_version, quality, reason, created_at "
        "FROM cat.caltable_sets WHERE set_name = ?",
        [set_name],
    )
    if not rows:
        return None
    row = rows[0]
    row["quality"] = json_or_none(row["quality"])
    row["tables"] = fetch_dicts(
        con,
        "SELECT path, table_type, apply_order FROM cat.caltables WHERE set_name = ? ORDER BY apply_order",
        [set_name],
    )
    return row


def group_detail(con, window: str) -> dict | None:
    """Everything the catalogue holds about one chunk, or None if it holds nothing.

    Keys: ``group`` (the chunk's row, JSON columns decoded), ``files`` (every subband file seen, any status),
    ``measurement_sets`` and ``images`` (every version, oldest first), ``calibration`` (the set the current
    image used, with its tables), ``calibrator_transit``, ``stage_timings`` and ``run_ids`` (the Dagster runs
    that wrote any of these rows, newest first).
    """
    groups = fetch_dicts(con, "SELECT * FROM cat.groups WHERE window_key = ?", [window])
    group = groups[0] if groups else None
    if group is not None:
        for key in ("missing_subbands", "files"):
            group[key] = json_or_none(group[key])
    files = fetch_dicts(
        con,
        "SELECT path, name, subband, size_bytes, status, reason, first_seen "
        "FROM cat.subband_files WHERE window_key = ? ORDER BY subband, path",
        [window],
    )
    mss = fetch_dicts(
        con,
        "SELECT id, path, status, n_rows, n_subbands, missing_subbands, start_mjd, mid_mjd, "
        "end_mjd, phase_center_ra_deg, phase_center_dec_deg, flagged_fraction, checks, size_bytes, "
        "run_id, created_at FROM cat.measurement_sets WHERE window_key = ? ORDER BY id",
        [window],
    )
    for ms in mss:
        ms["missing_subbands"], ms["checks"] = json_or_none(ms["missing_subbands"]), json_or_none(ms["checks"])
    images = fetch_dicts(con, "SELECT * FROM cat.images WHERE window_key = ? ORDER BY id", [window])
    for im in images:
        im["caltables"] = json_or_none(im["caltables"])
    timings = fetch_dicts(
        con,
        "SELECT stage, seconds, detail, run_id, created_at FROM cat.stage_timings WHERE window_key = ? ORDER BY id",
        [window],
    )
    for t in timings:
        t["detail"] = json_or_none(t["detail"])
    if group is None and not files and not mss and not images:
        return None
    current = next((im for im in reversed(images) if im["status"] in ("ok", "flagged")), None)
    calibration = calibration_set(con, current["calset"]) if current and current.get("calset") else None
    transit = None
    if table_exists(con, "calibrator_transits"):
        found = fetch_dicts(
            con,
            "SELECT calibrator, transit_mjd, offset_deg, pb_flux_jy, found_at "
            "FROM cat.calibrator_transits WHERE window_key = ?",
            [window],
        )
        transit = found[0] if found else None
    stamped = [(r.get("created_at") or "", r["run_id"]) for r in [*mss, *images, *timings] if r.get("run_id")]
    if group is not None and group.get("run_id"):
        stamped.append((group.get("updated_at") or "", group["run_id"]))
    run_ids = list(dict.fromkeys(rid for _, rid in sorted(stamped, reverse=True)))
    return {
        "window_key": window,
        "group": group,
        "files": files,
        "measurement_sets": mss,
        "images": images,
        "current_image": current,
        "calibration": calibration,
        "calibrator_transit": transit,
        "stage_timings": timings,
        "run_ids": run_ids,
    }


def ms_index(con, stage: str | None = None, status: str | None = None, limit: int = 100) -> list[dict]:
    """Measurement sets (every version) with their chunk's processing stage, newest window first.

    Raises
    ------
    ValueError
        If ``stage`` is not one of :data:`GROUP_STATES`, ``status`` not one of :data:`MS_STATUSES` or
        ``limit`` is not positive.
    """
    if stage is not None and stage not in GROUP_STATES:
        raise ValueError(f"unknown stage {stage!r}: choose from {', '.join(GROUP_STATES)}")
    if status is not None and status not in MS_STATUSES:
        raise ValueError(f"unknown MS status {status!r}: choose from {', '.join(MS_STATUSES)}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    sql = (
        "SELECT m.window_key, m.path, m.status, g.state AS stage, m.start_mjd, m.mid_mjd, m.end_mjd, m.n_rows, "
        "m.n_subbands, m.flagged_fraction, m.size_bytes, m.run_id, m.created_at "
        "FROM cat.measurement_sets m LEFT JOIN cat.groups g ON g.window_key = m.window_key WHERE TRUE"
    )
    params: list = []
    if stage is not None:
        sql += " AND g.state = ?"
        params.append(stage)
    if status is not None:
        sql += " AND m.status = ?"
        params.append(status)
    sql += " ORDER BY m.window_key DESC, m.id DESC LIMIT ?"
    params.append(limit)
    return fetch_dicts(con, sql, params)


def calibrator_matches(con) -> list[dict]:
    """Chunks matched to a calibrator, newest transit first.

    Each row holds the transit the ingest found (``calibrator_transits``, written by the sensor), the chunk's
    calibrator (``groups``) and the set solved on it, if any.
    """
    if not (table_exists(con, "calibrator_transits") and table_exists(con, "caltable_sets")):
        return []
    return fetch_dicts(
        con,
        """
        WITH k AS (SELECT window_key FROM cat.calibrator_transits
                   UNION SELECT window_key FROM cat.groups WHERE coalesce(calibrator, '') != ''
                   UNION SELECT window_key FROM cat.caltable_sets)
        SELECT k.window_key, coalesce(t.calibrator, g.calibrator, s.calibrator) AS calibrator,
               coalesce(t.transit_mjd, s.transit_mjd) AS transit_mjd, t.offset_deg, t.pb_flux_jy, t.found_at,
               g.state AS chunk_state, s.set_name, s.status AS set_status, s.reason AS set_reason
        FROM k LEFT JOIN cat.calibrator_transits t ON t.window_key = k.window_key
               LEFT JOIN cat.groups g ON g.window_key = k.window_key
               LEFT JOIN cat.caltable_sets s ON s.window_key = k.window_key
        ORDER BY transit_mjd DESC NULLS LAST, k.window_key DESC, s.set_name""",
    )


def calibration_history(con, limit: int = 200) -> list[dict]:
    """Solved calibration sets, newest transit first (the ``calibration_history`` view), quality decoded."""
    if not table_exists(con, "caltable_sets"):
        return []
    rows = fetch_dicts(
        con,
        "SELECT set_name, window_key, calibrator, transit_mjd, "
        "strftime(transit_utc, '%Y-%m-%d %H:%M:%S') AS transit_utc, valid_start_mjd, "
        "valid_end_mjd, status, refant, reason, quality, n_tables, table_types, n_images, "
        "solver_version, created_at FROM calibration_history LIMIT ?",
        [limit],
    )
    for r in rows:
        r["quality"] = json_or_none(r["quality"])
    return rows
