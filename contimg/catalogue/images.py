"""Writers for the ``images`` table (``schema/40_images.sql``), its science QA and sources (``45_science_qa.sql``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.catalogue.db import Connection, transaction
from contimg.catalogue.ingest import now_iso
from contimg.image.report import ImageReport

__all__ = ["record_image", "record_image_failure", "current_image", "image_sources"]

# ScienceQA fields stored as columns of image_science_qa (problems as JSON)
_SCIENCE_COLUMNS = (
    "reference_catalog",
    "grade",
    "n_detected",
    "n_reference",
    "n_matched",
    "flux_ratio",
    "flux_ratio_scatter",
    "n_flux",
    "offset_ra_arcsec",
    "offset_dec_arcsec",
    "offset_ra_beams",
    "offset_dec_beams",
    "completeness",
    "n_complete",
    "reliability",
    "n_reliable",
)
# sources table column <- source-list column (contimg.image.sources.SOURCE_COLUMNS)
_SOURCE_COLUMNS = (
    ("ra_deg", "ra"),
    ("dec_deg", "dec"),
    ("err_ra_arcsec", "err_ra"),
    ("err_dec_arcsec", "err_dec"),
    ("peak_jy", "peak_flux"),
    ("err_peak_jy", "err_peak_flux"),
    ("int_jy", "int_flux"),
    ("err_int_jy", "err_int_flux"),
    ("a_arcsec", "a"),
    ("b_arcsec", "b"),
    ("pa_deg", "pa"),
    ("local_rms_jy", "local_rms"),
    ("pb", "pb"),
)


def record_image(
    conn: Connection,
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

    Notes
    -----
    With the report's science QA, one ``image_science_qa`` row; with its source list (read from
    ``m.sources`` when the file exists), one ``sources`` row per detection; in the same transaction.
    """
    m = image if isinstance(image, ImageReport) else ImageReport.from_dict(image)
    source_rows = _source_rows(m.sources)
    with transaction(conn):
        conn.execute(
            "UPDATE images SET status = 'superseded' WHERE window_key = ? AND status IN ('ok', 'flagged', 'failed')",
            (window_key,),
        )
        image_id = conn.execute(
            """INSERT INTO images (window_key, ms_path, image_path, pbcor_path, pb_path, png_path, imager, calibrated,
                   calset, caltables, rms_jy, expected_rms_jy, peak_jy, dynamic_range, n_sources, bmaj_arcsec,
                   bmin_arcsec, bpa_deg, cell_arcsec, size_px, flagged_fraction, mid_mjd, status, reason, run_id,
                   created_at, code_version)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               RETURNING id""",
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
        ).fetchone()[0]  # RETURNING: both backends (SQLite >= 3.35), unlike last_insert_rowid()
        if m.science_qa is not None:
            sq = m.science_qa
            cols = ", ".join(_SCIENCE_COLUMNS)
            conn.execute(
                f"INSERT INTO image_science_qa (image_id, window_key, problems, {cols}) "
                f"VALUES (?, ?, ?, {', '.join('?' * len(_SCIENCE_COLUMNS))})",
                (image_id, window_key, json.dumps(sq.get("problems", [])), *(sq.get(c) for c in _SCIENCE_COLUMNS)),
            )
        if source_rows:
            cols = ", ".join(c for c, _ in _SOURCE_COLUMNS)
            conn.executemany(
                f"INSERT INTO sources (image_id, window_key, {cols}) "
                f"VALUES (?, ?, {', '.join('?' * len(_SOURCE_COLUMNS))})",
                [(image_id, window_key, *row) for row in source_rows],
            )


def _source_rows(path: str | None) -> list[tuple]:
    """The source list's rows as the sources table's columns (NaN stored as NULL); none without a file."""
    if not path or not Path(path).is_file():
        return []
    from contimg.image.sources import read_sources

    table = read_sources(path)
    columns = [np.asarray(table[name], dtype=float) for _, name in _SOURCE_COLUMNS]
    return [tuple(None if not np.isfinite(v) else float(v) for v in row) for row in zip(*columns, strict=True)]


def image_sources(conn: Connection, window_key: str) -> list[dict]:
    """The detections of a window's current image (status ok or flagged), brightest first."""
    rows = conn.execute(
        "SELECT s.* FROM sources AS s JOIN images AS i ON i.id = s.image_id WHERE i.window_key = ? "
        "AND i.status IN ('ok', 'flagged') ORDER BY s.peak_jy DESC",
        (window_key,),
    ).fetchall()
    return [dict(r) for r in rows]


def record_image_failure(
    conn: Connection, window_key: str, ms_path: str | None, reason: str, run_id: str | None
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


def current_image(conn: Connection, window_key: str) -> dict | None:
    """The window's newest image row with status 'ok' or 'flagged' (as a dict), or None."""
    row = conn.execute(
        "SELECT * FROM images WHERE window_key = ? AND status IN ('ok', 'flagged') ORDER BY id DESC LIMIT 1",
        (window_key,),
    ).fetchone()
    return dict(row) if row else None
