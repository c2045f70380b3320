"""nightly_mosaic on a real instance (gaps and QA exclusions recorded) and its schedule."""

import json
import sqlite3
from datetime import UTC, datetime

import numpy as np
import pytest
from dagster import DagsterInstance, build_schedule_context, materialize

from contimg.catalogue import connect
from contimg.catalogue.images import record_image
from tests.test_mosaic import make_tile

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`


def test_schedule_requests_exactly_the_previous_day():
    from contimg_assets.definitions import defs

    sched = defs.get_schedule_def("nightly_mosaic_schedule")
    assert sched.cron_schedule == "15 3 * * *" and sched.execution_timezone == "UTC"
    ctx = build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 26, 3, 15, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    reqs = sched.evaluate_tick(ctx).run_requests
    assert [r.partition_key for r in reqs] == ["2026-01-25"]


def test_mosaic_of_a_day_with_gaps_and_a_flagged_image(layout):
    from contimg_assets.definitions import defs
    from contimg_assets.nightly_mosaic import nightly_mosaic

    conn = connect(layout.catalogue)
    step = 1.0 / np.cos(np.radians(55.0))
    for i, (window, status) in enumerate(
        [("2026-01-25T00:00", "ok"), ("2026-01-25T00:05", "ok"), ("2026-01-25T00:15", "flagged")]
    ):
        path = make_tile(layout.products / f"t{i}.fits", 100.0 + i * step, [(100.0 + step / 2, 55.1, 0.5)], 2e-3, i)
        m = {
            "image": str(path),
            "pbcor": str(path),
            "pb": str(path).replace(".fits", ".pb.fits"),
            "png": "",
            "imager": "t",
            "calibrated": True,
            "rms_jy": 2e-3,
            "expected_rms_jy": 2e-3,
            "peak_jy": 0.5,
            "dynamic_range": 250,
            "n_sources_5sigma": 1,
            "bmaj_arcsec": 60,
            "bmin_arcsec": 60,
            "bpa_deg": 0,
            "cell_arcsec": 12,
            "size_px": 600,
            "flagged_fraction": 0.0,
        }
        record_image(conn, window, "x.ms", m, status=status, reason=None if status == "ok" else "rms high", run_id=None)
    conn.close()
    result = materialize(
        [nightly_mosaic], partition_key="2026-01-25", instance=DagsterInstance.ephemeral(), resources=defs.resources
    )
    assert result.success
    con = sqlite3.connect(layout.catalogue)
    row = con.execute(
        "SELECT n_images, coverage, gaps, excluded, path FROM mosaics WHERE status = 'current'"
    ).fetchone()
    con.close()
    assert row[0] == 2 and row[1] == 2 / 288
    assert "2026-01-25T00:10" in json.loads(row[2]) and len(json.loads(row[2])) == 286
    assert json.loads(row[3]) == [{"window": "2026-01-25T00:15", "reason": "rms high"}]
    assert row[4] == str(layout.mosaic_path("2026-01-25"))
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"coverage": False}, "a 2/288 day warns"
    from astropy.io import fits

    with fits.open(row[4]) as hdul:  # the flagged image is not among the mosaic's inputs
        assert list(hdul["INPUTS"].data["WINDOW"]) == ["2026-01-25T00:00", "2026-01-25T00:05"]


def test_a_day_without_images_fails_clearly(layout):
    from contimg_assets.definitions import defs
    from contimg_assets.nightly_mosaic import nightly_mosaic

    result = materialize(
        [nightly_mosaic],
        partition_key="2026-01-24",
        instance=DagsterInstance.ephemeral(),
        resources=defs.resources,
        raise_on_error=False,
    )
    assert not result.success
    errors = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    assert any("no images passed QA for 2026-01-24" in e for e in errors)
    con = sqlite3.connect(layout.catalogue)
    rows = con.execute("SELECT status, reason FROM mosaics WHERE date = '2026-01-24'").fetchall()
    con.close()
    assert len(rows) == 1 and rows[0][0] == "failed" and "288 of 288 windows empty" in rows[0][1]
