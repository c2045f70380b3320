"""nightly_mosaic: the day's images in one primary-beam-weighted mosaic (gap tolerant)."""

import json
import os
from datetime import datetime, timedelta

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, Failure,
                     MaterializeResult, MetadataValue, asset)

from contimg import __version__
from contimg.catalogue.db import transaction
from contimg.catalogue.ingest import now_iso
from contimg.mosaic import DEFAULT_PB_FLOOR, build_mosaic, read_input
from contimg_assets.image import image
from contimg_assets.partitions import DAILY
from contimg_resources import Catalogue, StorageLayout

WINDOWS_PER_DAY = 288


def day_windows(date: str) -> list[str]:
    start = datetime.fromisoformat(date)
    return [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M") for i in range(WINDOWS_PER_DAY)]


@asset(partitions_def=DAILY, deps=[image], group_name="nightly", code_version=__version__, kinds={"fits"},
       op_tags={"contimg/stage": "mosaic"},
       check_specs=[AssetCheckSpec("coverage", asset="nightly_mosaic",
                                   description="warns when fewer than CONTIMG_MIN_COVERAGE of the day's 288 windows are in")],
       description="Primary-beam-weighted mosaic of the day's images that passed QA; coverage and gaps recorded.")
def nightly_mosaic(context: AssetExecutionContext, storage: StorageLayout, catalogue: Catalogue) -> MaterializeResult:
    date = context.partition_key
    layout = storage.layout()
    min_cov = float(os.environ.get("CONTIMG_MIN_COVERAGE", "0.9"))
    conn = catalogue.connect()
    try:
        rows = conn.execute("SELECT window_key, image_path, status, reason FROM images WHERE window_key LIKE ? "
                            "AND status IN ('ok', 'flagged') ORDER BY window_key", (f"{date}T%",)).fetchall()
        ok = [r for r in rows if r[2] == "ok"]
        excluded = [{"window": r[0], "reason": r[3] or "QA flagged"} for r in rows if r[2] != "ok"]
        if not ok:
            reason = f"no images passed QA for {date} ({len(excluded)} flagged)"
            with transaction(conn):
                conn.execute("INSERT INTO mosaics (date, status, reason, run_id, created_at, code_version) "
                             "VALUES (?, 'failed', ?, ?, ?, ?)", (date, reason, context.run_id, now_iso(), __version__))
            raise Failure(description=reason, allow_retries=False)
        have = {r[0] for r in ok}
        gaps = [w for w in day_windows(date) if w not in have]
        res = build_mosaic([read_input(r[1], r[0]) for r in ok], layout.mosaic_path(date),
                           pb_floor=float(os.environ.get("CONTIMG_PB_FLOOR", DEFAULT_PB_FLOOR)), scratch=layout.scratch)
        coverage = len(ok) / WINDOWS_PER_DAY
        with transaction(conn):
            conn.execute("UPDATE mosaics SET status = 'superseded' WHERE date = ? AND status = 'current'", (date,))
            conn.execute("INSERT INTO mosaics (date, path, noise_path, png_path, n_images, n_possible, coverage, gaps, "
                         "excluded, status, run_id, created_at, code_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                         "'current', ?, ?, ?)",
                         (date, str(res.path), str(res.noise_path), str(res.png_path), res.n_images, WINDOWS_PER_DAY,
                          coverage, json.dumps(gaps), json.dumps(excluded), context.run_id, now_iso(), __version__))
    finally:
        conn.close()
    return MaterializeResult(
        metadata={"path": MetadataValue.path(str(res.path)), "noise_map": MetadataValue.path(str(res.noise_path)),
                  "preview": MetadataValue.path(str(res.png_path)), "n_images": res.n_images,
                  "coverage": float(coverage), "n_gaps": len(gaps), "excluded": MetadataValue.json(excluded),
                  "shape": MetadataValue.json(list(res.shape)), "code_version": __version__,
                  "summary": MetadataValue.md(f"**{date}**: {res.n_images}/{WINDOWS_PER_DAY} windows "
                                              f"({100 * coverage:.1f}%), {len(excluded)} left out by QA")},
        check_results=[AssetCheckResult(check_name="coverage", passed=coverage >= min_cov, severity=AssetCheckSeverity.WARN,
                                        metadata={"coverage": float(coverage), "threshold": min_cov})],
    )
