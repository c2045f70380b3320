"""Retention rules on a temporary layout: what is deleted, what is kept, and the catalogue's record of it.

Rows are written through the stages' own writers (record_measurement_set, record_image, upsert_group);
the folders are real folders whose ages are set with os.utime.
"""

import os
from datetime import UTC, date, datetime, timedelta

import pytest

from contimg.catalogue import connect
from contimg.catalogue.images import record_image, record_image_failure
from contimg.catalogue.ingest import record_measurement_set, upsert_group
from contimg.ops.housekeeping import Action, HousekeepingSettings, apply_plan, make_plan, ms_retention, stale_groups
from tests.catalogue_backends import catalogue_backend_fixture, pg_catalogue_server_fixture  # noqa: F401

NOW = datetime(2026, 1, 28, 12, 0, tzinfo=UTC)
DAY_S = 86400.0


def ms_metrics(path):
    """A complete convert report (the catalogue reads it as a ``ConvertReport``: every key is required)."""
    return {
        "ms_path": str(path),
        "n_rows": 10,
        "n_subbands_present": 16,
        "missing_subbands": [],
        "start_mjd": 1.0,
        "mid_mjd": 1.0,
        "end_mjd": 1.0,
        "phase_center_ra_deg": 0.0,
        "phase_center_dec_deg": 0.0,
        "pointing_dec_deg": 0.0,
        "flagged_fraction": 0.0,
        "checks": {},
        "files": [],
        "n_antennas": 8,
        "n_channels": 64,
        "n_times": 2,
        "freq_min_hz": 1.31e9,
        "freq_max_hz": 1.50e9,
        "weight_spectrum": False,
        "nan_flagged": 0,
        "timings_s": {},
        "bytes_in": 0,
        "peak_rss_mb": 0.0,
        "workers": 1,
        "code_version": "test",
    }


def image_metrics(prefix):
    return {
        "image": f"{prefix}.image",
        "pbcor": f"{prefix}.pbcor.fits",
        "pb": f"{prefix}.pb.fits",
        "png": f"{prefix}.png",
        "imager": "tclean",
        "calibrated": True,
        "rms_jy": 1e-3,
        "expected_rms_jy": 1e-3,
        "peak_jy": 1.0,
        "dynamic_range": 1000.0,
        "n_sources_5sigma": 3,
        "bmaj_arcsec": 20.0,
        "bmin_arcsec": 10.0,
        "bpa_deg": 0.0,
        "cell_arcsec": 3.0,
        "size_px": 256,
        "flagged_fraction": 0.0,
    }


def make_ms(layout, conn, window, n_bytes=1000):
    path = layout.ms_path(window)
    path.mkdir(parents=True)
    (path / "table.f0").write_bytes(b"x" * n_bytes)
    record_measurement_set(conn, window, ms_metrics(path), size_bytes=n_bytes, run_id="r")
    upsert_group(conn, window, state="converted")
    return path


def age(path, seconds):
    """Set the modification time of ``path`` and everything inside to ``seconds`` before NOW."""
    t = NOW.timestamp() - seconds
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.utime(os.path.join(root, n), (t, t))
    os.utime(path, (t, t))


@pytest.fixture
def filled(layout, catalogue_backend):  # on SQLite and on Postgres
    conn = connect(layout.catalogue)
    w = {
        "cal": "2026-01-25T00:00",  # calibrator chunk, imaged: kept
        "imaged": "2026-01-25T00:05",  # imaged, old: deleted
        "failed": "2026-01-25T00:10",  # imaging failed: kept
        "flagged": "2026-01-25T00:15",  # image flagged by QA: kept (may be re-imaged)
        "recent": "2026-01-27T00:00",  # imaged, within the 2 most recent days: kept
        "twice": "2026-01-25T00:20",  # converted twice (reprocessed), imaged: deleted once
        "noimage": "2026-01-25T00:25",  # converted, never imaged: kept
    }
    paths = {k: make_ms(layout, conn, v) for k, v in w.items()}
    record_measurement_set(conn, w["twice"], ms_metrics(paths["twice"]), size_bytes=1000, run_id="r2")
    upsert_group(conn, w["cal"], calibrator="3C286")
    for k in ("cal", "imaged", "recent", "twice"):
        record_image(
            conn, w[k], str(paths[k]), image_metrics(layout.image_prefix(w[k])), status="ok", reason=None, run_id="r"
        )
    record_image(
        conn,
        w["flagged"],
        str(paths["flagged"]),
        image_metrics(layout.image_prefix(w["flagged"])),
        status="flagged",
        reason="rms too high",
        run_id="r",
    )
    record_image_failure(conn, w["failed"], str(paths["failed"]), "imaging: boom", run_id="r")
    yield layout, conn, w, paths
    conn.close()


def test_ms_retention_deletes_only_old_imaged_non_calibrator_chunks(filled):
    layout, conn, w, paths = filled
    plan = make_plan(layout, conn, HousekeepingSettings(ms_keep_days=2), now=NOW)
    deleted = sorted(a.window_key for a in plan.actions if a.action == "delete_ms")
    assert deleted == sorted([w["imaged"], w["twice"]])
    kept = {a.window_key: a.reason for a in plan.kept}
    assert kept == {
        w["cal"]: "calibrator chunk",
        w["failed"]: "not imaged yet (no ok image)",
        w["flagged"]: "not imaged yet (no ok image)",
        w["noimage"]: "not imaged yet (no ok image)",
        w["recent"]: "within the 2 most recent days (CONTIMG_MS_KEEP_DAYS)",
    }
    assert "stale-group recovery skipped" in plan.notes[0]

    done, errors = apply_plan(plan, conn, run_id="hk-1")
    assert errors == [] and len(done) == 2
    for k, p in paths.items():
        assert p.exists() == (k not in ("imaged", "twice")), k
    rows = dict(conn.execute("SELECT window_key, status FROM measurement_sets WHERE status != 'superseded'").fetchall())
    assert rows[w["imaged"]] == "deleted" and rows[w["twice"]] == "deleted" and rows[w["cal"]] == "current"
    log = conn.execute(
        "SELECT action, window_key, size_bytes, run_id FROM housekeeping_log ORDER BY window_key"
    ).fetchall()
    assert [tuple(r) for r in log] == [
        ("delete_ms", w["imaged"], 1000, "hk-1"),
        ("delete_ms", w["twice"], 1000, "hk-1"),
    ]
    # idempotent: a second pass finds nothing more to delete
    assert [a for a in make_plan(layout, conn, HousekeepingSettings(ms_keep_days=2), now=NOW).actions] == []


def test_keep_days_boundary():
    rows = [
        {"window_key": f"2026-01-{d:02d}T12:00", "path": f"/x/{d}", "status": "current", "size_bytes": 1}
        for d in (25, 26, 27, 28)
    ]
    imaged = {r["window_key"] for r in rows}
    for keep_days, expect in ((0, [25, 26, 27, 28]), (1, [25, 26, 27]), (3, [25]), (10, [])):
        delete, _ = ms_retention(rows, set(), imaged, date(2026, 1, 28), keep_days)
        assert [int(a.window_key[8:10]) for a in delete] == expect, keep_days
    with pytest.raises(ValueError, match="keep_days=-1"):
        ms_retention(rows, set(), imaged, date(2026, 1, 28), -1)


@pytest.mark.usefixtures("catalogue_backend")
def test_scratch_and_temporaries_by_age(layout):
    conn = connect(layout.catalogue)
    old = layout.scratch / "convert-2026-01-25T0000"
    old.mkdir()
    (old / "part").write_bytes(b"x" * 10)
    age(old, 2 * DAY_S)
    young = layout.scratch / "image-2026-01-28T1100"
    young.mkdir()
    age(young, 3600)
    busy = layout.scratch / "still-writing"
    (busy / "sub").mkdir(parents=True)
    age(busy, 3 * DAY_S)
    fresh = busy / "sub" / "new"
    fresh.write_bytes(b"y")
    os.utime(fresh, (NOW.timestamp() - 60, NOW.timestamp() - 60))  # an old folder still being written to
    old_file = layout.scratch / "image-x.json"
    old_file.write_text("{}")
    age(old_file, 2 * DAY_S)
    day = layout.products / "ms" / "2026-01-25"
    tmp_old = day / ".2026-01-25T0000.ms.tmp-123"
    tmp_old.mkdir(parents=True)
    age(tmp_old, 2 * DAY_S)
    tmp_young = day / ".2026-01-25T0005.ms.tmp-456"
    tmp_young.mkdir()
    age(tmp_young, 600)
    plan = make_plan(layout, conn, HousekeepingSettings(scratch_max_age_s=DAY_S), now=NOW)
    got = sorted((a.action, a.path) for a in plan.actions)
    assert got == sorted(
        [("delete_scratch", str(old)), ("delete_scratch", str(old_file)), ("delete_temporary", str(tmp_old))]
    )
    assert {a.path: a.size_bytes for a in plan.actions}[str(old)] == 10
    done, errors = apply_plan(plan, conn)
    assert errors == [] and len(done) == 3
    assert not old.exists() and not old_file.exists() and not tmp_old.exists()
    assert young.exists() and fresh.exists() and tmp_young.exists()
    assert conn.execute("SELECT count(*) FROM housekeeping_log").fetchone()[0] == 3
    conn.close()


@pytest.mark.usefixtures("catalogue_backend")
def test_stale_groups_fail_only_without_an_active_run(layout):
    conn = connect(layout.catalogue)
    upsert_group(conn, "2026-01-25T00:00", state="requested")
    upsert_group(conn, "2026-01-25T00:05", state="grouped")
    upsert_group(conn, "2026-01-25T00:10", state="imaged")
    later = datetime.now(UTC) + timedelta(hours=7)
    plan = make_plan(
        layout, conn, HousekeepingSettings(stale_group_s=6 * 3600), now=later, active_windows={"2026-01-25T00:05"}
    )
    stale = [a for a in plan.actions if a.action == "fail_stale_group"]
    assert [a.window_key for a in stale] == ["2026-01-25T00:00"]
    apply_plan(plan, conn)
    states = dict(conn.execute("SELECT window_key, state FROM groups").fetchall())
    assert states == {"2026-01-25T00:00": "failed", "2026-01-25T00:05": "grouped", "2026-01-25T00:10": "imaged"}
    error = conn.execute("SELECT error FROM groups WHERE window_key = '2026-01-25T00:00'").fetchone()[0]
    assert error.startswith("stale: state 'requested' unchanged for 7.0 h") and "contimg reprocess" in error
    # an hour after the last update nothing is stale yet
    assert (
        stale_groups(
            [{"window_key": "w", "state": "requested", "updated_at": NOW.isoformat()}],
            NOW + timedelta(hours=1),
            6 * 3600,
            set(),
        )
        == []
    )
    conn.close()


def test_settings_from_env():
    s = HousekeepingSettings.from_env(
        {
            "CONTIMG_SCRATCH_MAX_AGE_H": "12",
            "CONTIMG_MS_KEEP_DAYS": "5",
            "CONTIMG_STALE_GROUP_H": "2",
            "CONTIMG_RUN_RETENTION_DAYS": "14",
        }
    )
    assert (s.scratch_max_age_s, s.ms_keep_days, s.stale_group_s, s.run_retention_days) == (43200, 5, 7200, 14)
    assert HousekeepingSettings.from_env({}) == HousekeepingSettings()
    with pytest.raises(ValueError, match="CONTIMG_MS_KEEP_DAYS='two'"):
        HousekeepingSettings.from_env({"CONTIMG_MS_KEEP_DAYS": "two"})
    with pytest.raises(ValueError, match="must be >= 0"):
        HousekeepingSettings.from_env({"CONTIMG_SCRATCH_MAX_AGE_H": "-1"})


def test_unknown_action_is_reported_not_silently_skipped(layout):
    conn = connect(layout.catalogue)
    from contimg.ops.housekeeping import Plan

    with pytest.raises(ValueError, match="unknown housekeeping action 'explode'"):
        apply_plan(Plan(actions=[Action("explode", "why")]), conn)
    conn.close()


def test_housekeeping_job_cleans_files_and_old_dagster_runs(layout, monkeypatch):
    from dagster import DagsterRunStatus, asset, build_schedule_context, instance_for_test, materialize

    from contimg_assets.housekeeping import housekeeping_job
    from contimg_resources import Catalogue, StorageLayout
    from schedules.housekeeping import housekeeping_schedule

    @asset
    def tiny():
        return 1

    old = layout.scratch / "convert-old"
    old.mkdir()
    t = datetime.now(UTC).timestamp() - 3 * DAY_S
    os.utime(old, (t, t))
    monkeypatch.setenv("CONTIMG_RUN_RETENTION_DAYS", "0")  # every finished run is past retention
    with instance_for_test() as instance:
        earlier = [materialize([tiny], instance=instance).run_id for _ in range(2)]
        result = housekeeping_job.execute_in_process(
            instance=instance, resources={"storage": StorageLayout(), "catalogue": Catalogue()}
        )
        assert result.success
        remaining = [r.run_id for r in instance.get_runs()]
        assert remaining == [result.run_id] and not set(earlier) & set(remaining)
        assert instance.get_run_by_id(result.run_id).status == DagsterRunStatus.SUCCESS
        assert not old.exists()
        conn = connect(layout.catalogue)
        log = [tuple(r) for r in conn.execute("SELECT action, path, run_id FROM housekeeping_log ORDER BY id")]
        conn.close()
        assert log[0] == ("delete_scratch", str(old), result.run_id)
        assert log[1][0] == "delete_runs" and log[1][2] == result.run_id

        # the schedule requests the job once a day. The context is closed here, inside the instance's
        # block: for a persistent instance it opens (enters) its own DagsterInstance from the ref, which
        # sets Dagster's current defs-state storage; left open, its exit runs whenever the context is
        # garbage-collected and restores the storage of this (by then disposed) instance for the rest
        # of the process, and every later materialize() fails (tests/conftest.py guards against this).
        with build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 1, 26, 4, 30, tzinfo=UTC)
        ) as ctx:
            data = housekeeping_schedule.evaluate_tick(ctx)
        assert len(data.run_requests) == 1 and housekeeping_schedule.job_name == "housekeeping_job"
