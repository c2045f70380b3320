"""Writers for the ``images`` table (``schema/40_images.sql``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from contimg import __version__
from contimg.catalogue.db import transaction
from contimg.catalogue.ingest import now_iso
from contimg.image.report import ImageReport

__all__ = ["record_image", "record_image_failure", "current_image"]


def record_image(
    conn: sqlite3.Connection,
    window_key: str,
    ms_path: str,
    image: ImageReport | Mapping,
    *,
    status: str,
    reason: str | None,
    run_id: str | None,
) -> None:
    """Add an image row (status ok or flagged); earlier rows of the window become 'superseded'.

    Parameters
    ----------
    image : ImageReport or mapping
        The image job's report, or its JSON (read with ``ImageReport.from_dict``).

    Raises
    ------
    ValueError
        If ``image`` is a mapping that is not an image report (``ImageReport.from_dict``).
    """
    m = image if isinstance(image, ImageReport) else ImageReport.from_dict(image)
    with transaction(conn):
        conn.execute(
            "UPDATE images SET status = 'superseded' WHERE window_key = ? AND status IN ('ok', 'flagged', 'failed')",
            (window_key,),
        )
        conn.execute(
            """INSERT INTO images (window_key, ms_path, image_path, pbcor_path, pb_path, png_path, imager, calibrated,
                   calset, caltables, rms_jy, expected_rms_jy, peak_jy, dynamic_range, n_sources, bmaj_arcsec,
                   bmin_arcsec, bpa_deg, cell_arcsec, size_px, flagged_fraction, mid_mjd, status, reason, run_id,
                   created_at, code_version)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                window_key,
                ms_path,
                m.image,
                m.pbcor,
                m.pb,
                m.png,
                m.imager,
                int(m.calibrated),
                m.calset,
                json.dumps(m.caltables),
                m.rms_jy,
                m.expected_rms_jy,
                m.peak_jy,
                m.dynamic_range,
                m.n_sources_5sigma,
                m.bmaj_arcsec,
                m.bmin_arcsec,
                m.bpa_deg,
                m.cell_arcsec,
                m.size_px,
                m.flagged_fraction,
                m.mid_mjd,
                status,
                reason,
                run_id,
                now_iso(),
                m.code_version or __version__,
            ),
        )


def record_image_failure(
    conn: sqlite3.Connection, window_key: str, ms_path: str | None, reason: str, run_id: str | None
) -> None:
    """Record a failed image of a window; the window's earlier failure, if any, becomes 'superseded'."""
    with transaction(conn):
        conn.execute(
            "UPDATE images SET status = 'superseded' WHERE window_key = ? AND status = 'failed'", (window_key,)
        )
        conn.execute(
            "INSERT INTO images (window_key, ms_path, status, reason, run_id, created_at, code_version) "
            "VALUES (?, ?, 'failed', ?, ?, ?, ?)",
            (window_key, ms_path, reason, run_id, now_iso(), __version__),
        )


def current_image(conn: sqlite3.Connection, window_key: str) -> dict | None:
    """The window's newest image row with status 'ok' or 'flagged' (as a dict), or None."""
    row = conn.execute(
        "SELECT * FROM images WHERE window_key = ? AND status IN ('ok', 'flagged') ORDER BY id DESC LIMIT 1",
        (window_key,),
    ).fetchone()
    return dict(row) if row else None
