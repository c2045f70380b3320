"""The operator commands on a catalogue filled by real materializations of the chunk assets.

Two simulated chunks go through subband_group -> measurement_set -> image: the first is imaged
(uncalibrated imaging allowed), the second fails at imaging for want of calibration tables, a real
failure with a reason. The commands' output is checked against the catalogue read with sqlite3, the
Dagster event log and the file system.
"""

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter, materialize

from contimg.cli import main
from contimg.core.settings import Layout
from contimg.sim import simulate

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

WIN_A, WIN_B = "2026-01-25T00:00", "2026-01-25T00:05"
WORKSPACE = Path(__file__).parents[1] / "workspace.yaml"
DAEMON_RUN_TIMEOUT_S = 300  # daemon start, code server load, queue poll, then the chunk's three stages
# re-imaging the same MS: float noise only. WSClean's threaded gridding sums in a varying order: the same
# 8-antenna chunk imaged four times gave rms figures up to 6e-7 apart (pixels 9e-8 Jy), and 1e-6 failed once
IDEMPOTENT_RTOL = 1e-5
SMALL_IMAGING = json.dumps({"max_size_px": 256, "min_size_px": 256, "niter": 50, "pb_time_samples": 2})


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """Layout and Dagster instance after materializing both chunks (shared by the tests of this module)."""
    root = tmp_path_factory.mktemp("ops") / "contimg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTIMG_ROOT", str(root))
        for var in ("CONTIMG_INGEST_DIR", "CONTIMG_PRODUCTS_DIR", "CONTIMG_SCRATCH_DIR", "CONTIMG_STATE_DIR"):
            mp.delenv(var, raising=False)
        mp.setenv("CONTIMG_IMAGING_CONFIG", SMALL_IMAGING)
        layout = Layout.from_env().ensure()
        sim = root.parent / "sim"
        simulate(sim, "2026-01-25T00:00:00", n_chunks=2, n_antennas=8, n_chan_per_subband=4, n_integrations=3, seed=11)
        for f in sim.glob("*.hdf5"):
            shutil.copyfile(f, layout.ingest / f.name)

        from contimg_assets.definitions import defs
        from contimg_assets.image import image
        from contimg_assets.measurement_set import measurement_set
        from contimg_assets.subband_group import subband_group

        instance = DagsterInstance.ephemeral()
        for w in (WIN_A, WIN_B):
            assert materialize(
                [subband_group, measurement_set], partition_key=w, instance=instance, resources=defs.resources
            ).success
        mp.setenv("CONTIMG_ALLOW_UNCALIBRATED", "1")
        assert materialize([image], partition_key=WIN_A, instance=instance, resources=defs.resources).success
        mp.delenv("CONTIMG_ALLOW_UNCALIBRATED")
        failed = materialize(
            [image], partition_key=WIN_B, instance=instance, resources=defs.resources, raise_on_error=False
        )
        assert not failed.success
        yield {"layout": layout, "instance": instance, "env": dict(os.environ)}


@pytest.fixture
def env(stream, monkeypatch):
    for k in ("CONTIMG_ROOT", "CONTIMG_IMAGING_CONFIG"):
        monkeypatch.setenv(k, stream["env"][k])
    # a free-disk threshold any test machine clears (the default, 20 GB, is a production headroom)
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", "1")
    for var in ("CONTIMG_INGEST_DIR", "CONTIMG_PRODUCTS_DIR", "CONTIMG_SCRATCH_DIR", "CONTIMG_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return stream


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def sql(layout, query, *params):
    con = sqlite3.connect(layout.catalogue)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def test_status_json_matches_catalogue_and_disk(env, capsys, monkeypatch):
    layout = env["layout"]
    code, out, _ = run_cli(capsys, "status", "--json")
    assert code == 0
    info = json.loads(out)
    # default range: the 24 h ending just after the newest chunk
    assert info["range"] == {"since": "2026-01-24T00:10", "until": "2026-01-25T00:10"}
    expected = dict(sql(layout, "SELECT state, count(*) FROM groups GROUP BY state"))
    assert info["groups_by_state"] == expected == {"imaged": 1, "failed": 1}
    assert info["backlog"]["n_chunks"] == 0
    assert info["last_image"]["window_key"] == WIN_A and info["last_image"]["status"] == "ok"
    event = env["instance"].get_latest_materialization_event(AssetKey("image"))
    assert info["last_image"]["rms_jy"] == pytest.approx(
        event.asset_materialization.metadata["rms_jy"].value, rel=1e-12
    )
    fails = {(f["kind"], f["window_key"]): f["reason"] for f in info["recent_failures"]}
    assert "no valid calibration tables" in fails[("group", WIN_B)]
    assert "no valid calibration tables" in fails[("image", WIN_B)]
    st = os.statvfs(layout.products)
    free_gb = st.f_bavail * st.f_frsize / 1e9
    assert info["free_disk_gb"][str(layout.products)] == pytest.approx(free_gb, abs=0.5)
    # the guard's verdict follows the threshold against that free space (the env fixture sets 1 GB)
    assert info["disk_guard"]["hold"] is False
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", str(round(2 * free_gb + 10)))
    code, out, _ = run_cli(capsys, "status", "--json")
    guard = json.loads(out)["disk_guard"]
    assert code == 0 and guard["hold"] is True and "below CONTIMG_MIN_FREE_GB" in guard["reason"]


def test_status_text_and_range(env, capsys):
    code, out, _ = run_cli(capsys, "status")
    assert code == 0
    assert "imaged" in out and "failed" in out and WIN_A in out and "free disk" in out
    code, out, _ = run_cli(capsys, "status", "--json", "--since", "2026-01-25T00:05", "--until", "2026-01-25T01:00")
    assert json.loads(out)["groups_by_state"] == {"failed": 1}
    code, out, _ = run_cli(capsys, "status", "--json", "--since", "2026-01-26")
    assert json.loads(out)["groups_by_state"] == {} and json.loads(out)["recent_failures"] == []


def test_products_by_type_and_date(env, capsys):
    layout = env["layout"]
    code, out, _ = run_cli(capsys, "products", "--json", "--type", "ms")
    assert code == 0
    rows = json.loads(out)
    assert [r["path"] for r in rows] == [str(layout.ms_path(WIN_A)), str(layout.ms_path(WIN_B))]
    assert all(Path(r["path"]).is_dir() for r in rows)
    sizes = {r["window_key"]: r["size_bytes"] for r in rows}
    on_disk = sum(p.stat().st_size for p in layout.ms_path(WIN_A).rglob("*") if p.is_file())
    assert sizes[WIN_A] == on_disk
    code, out, _ = run_cli(capsys, "products", "--json", "--type", "image", "--date", "2026-01-25")
    images = json.loads(out)
    assert {r["window_key"] for r in images} == {WIN_A}
    assert {Path(r["path"]).suffix for r in images} >= {".fits", ".png"} and all(
        Path(r["path"]).exists() for r in images
    )
    code, out, _ = run_cli(capsys, "products", "--json", "--date", "2026-01-26")
    assert json.loads(out) == []
    code, out, _ = run_cli(capsys, "products")
    assert str(layout.ms_path(WIN_B)) in out


def test_qa_csv_and_json(env, capsys):
    event = env["instance"].get_latest_materialization_event(AssetKey("image"))
    meta = event.asset_materialization.metadata
    # 8 antennas fill too little of the uv plane for ducc0's initial images: WSClean made its own
    assert meta["initial_images"].value == "wsclean" and meta["imager"].value == "wsclean"
    code, out, _ = run_cli(capsys, "qa", "--format", "csv", "--since", "2026-01-25", "--until", "2026-01-26")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["window_key"] for r in rows] == [WIN_A]
    assert float(rows[0]["rms_jy"]) == pytest.approx(meta["rms_jy"].value, rel=1e-9)
    assert float(rows[0]["dynamic_range"]) == pytest.approx(meta["dynamic_range"].value, rel=1e-9)
    assert float(rows[0]["rms_ratio"]) == pytest.approx(meta["rms_jy"].value / meta["expected_rms_jy"].value, rel=1e-9)
    code, out, _ = run_cli(capsys, "qa", "--json", "--since", "2026-01-25", "--until", "2026-01-26")
    data = json.loads(out)
    assert data["since"] == "2026-01-25T00:00" and data["images"][0]["n_sources"] == meta["n_sources_5sigma"].value
    code, out, _ = run_cli(capsys, "qa")
    assert code == 0 and WIN_A in out


def test_duckdb_views_answer_common_questions(env):
    from contimg.catalogue.duck import open_duckdb

    con = open_duckdb(env["layout"].catalogue)
    day = con.sql("SELECT n_groups, n_imaged, n_failed, n_images_ok, image_coverage FROM status_per_day").fetchall()
    assert day == [(2, 1, 1, 1, pytest.approx(1 / 288))]
    assert con.sql("SELECT count(*) FROM qa_trends").fetchone()[0] == 1
    kinds = {r[0] for r in con.sql("SELECT kind FROM recent_failures").fetchall()}
    assert kinds == {"group", "image"}


def test_error_exits(env, capsys, tmp_path, monkeypatch):
    code, _, err = run_cli(capsys, "reprocess", "2026-01-25T00:03")
    assert code == 1 and "unknown window '2026-01-25T00:03'" in err
    code, _, err = run_cli(capsys, "reprocess", "2026-01-25T03:00")  # a valid window with no chunk
    assert code == 1 and "no chunk recorded in the catalogue" in err
    code, _, err = run_cli(capsys, "reprocess", f"{WIN_B}..{WIN_A}")
    assert code == 1 and "start is after end" in err
    code, _, err = run_cli(capsys, "status", "--since", "2026-01-25T01:00", "--until", "2026-01-25T00:00")
    assert code == 1 and "bad range" in err
    code, _, err = run_cli(capsys, "qa", "--since", "yesterday")
    assert code == 1 and "bad time 'yesterday'" in err
    with pytest.raises(SystemExit) as exc:
        main(["products", "--type", "visibilities"])
    assert exc.value.code == 2
    monkeypatch.setenv("CONTIMG_ROOT", str(tmp_path / "nothing"))
    for cmd in (["cleanup", "--dry-run"], ["reprocess", WIN_A]):
        code, out, err = run_cli(capsys, *cmd)
        assert code == 1 and "no catalogue at" in err, cmd
    # issue #20: the read-only views describe a fresh install (no catalogue yet) as an empty platform
    code, out, err = run_cli(capsys, "status", "--json")
    assert code == 0 and err == "", err
    assert json.loads(out)["catalogue_exists"] is False and json.loads(out)["groups_by_state"] == {}
    code, out, err = run_cli(capsys, "products", "--json")
    assert (code, json.loads(out), err) == (0, [], "")
    code, out, err = run_cli(capsys, "qa", "--json")
    assert code == 0 and json.loads(out)["images"] == [] and err == ""
    assert not (tmp_path / "nothing").exists()  # a read command never creates a catalogue


def test_reprocess_submits_a_backfill_of_queued_runs(env, capsys, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, out, err = run_cli(capsys, "reprocess", f"{WIN_A}..2026-01-25T00:15", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["windows"] == [WIN_A, WIN_B]
    assert res["skipped_no_chunk"] == ["2026-01-25T00:10", "2026-01-25T00:15"]
    assert [b["job"] for b in res["backfills"]] == ["chunk_job"]  # no calibrator in these chunks
    backfill_id = res["backfills"][0]["backfill_id"]
    with DagsterInstance.get() as instance:
        backfills = instance.get_backfills()
        assert [b.backfill_id for b in backfills] == [backfill_id]
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
        # queued for the daemon (the default coordinator is the queued one), one per window, the chunk job
        assert sorted(r.tags["dagster/partition"] for r in runs) == [WIN_A, WIN_B]
        assert {r.job_name for r in runs} == {"chunk_job"} and {r.status.value for r in runs} == {"QUEUED"}
        assert {r.tags["contimg/reprocess"] for r in runs} == {"cli"}


def test_reprocessed_window_runs_on_the_daemon_and_gives_the_same_products(env, capsys, tmp_path, monkeypatch):
    """`contimg reprocess` only submits; a real dagster-daemon launches the run. The second version of the
    window's MS and image replaces the first at the same paths, with the same figures, and the first
    versions stay in the catalogue as 'superseded'."""
    layout = env["layout"]
    first_image = sql(
        layout,
        "SELECT image_path, rms_jy, peak_jy, n_sources FROM images WHERE window_key = ? AND status = 'ok'",
        WIN_A,
    )
    first_ms = sql(
        layout, "SELECT path, n_rows FROM measurement_sets WHERE window_key = ? AND status = 'current'", WIN_A
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CONTIMG_ALLOW_UNCALIBRATED", "1")
    code, out, err = run_cli(capsys, "reprocess", WIN_A, "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_ids"][0]
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + DAEMON_RUN_TIMEOUT_S
            while time.monotonic() < deadline:
                status = instance.get_run_by_id(run_id).status
                if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                    break
                time.sleep(1)
            assert status == DagsterRunStatus.SUCCESS
            done = instance.get_latest_materialization_event(AssetKey("image"))
            assert done.run_id == run_id
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    assert sql(layout, "SELECT status FROM images WHERE window_key = ? ORDER BY id", WIN_A) == [
        ("superseded",),
        ("ok",),
    ]
    assert sql(layout, "SELECT status FROM measurement_sets WHERE window_key = ? ORDER BY id", WIN_A) == [
        ("superseded",),
        ("current",),
    ]
    second_image = sql(
        layout,
        "SELECT image_path, rms_jy, peak_jy, n_sources FROM images WHERE window_key = ? AND status = 'ok'",
        WIN_A,
    )
    assert second_image[0][0] == first_image[0][0] and second_image[0][3] == first_image[0][3]
    # same inputs, same code: the figures agree to float precision
    assert second_image[0][1:3] == pytest.approx(first_image[0][1:3], rel=IDEMPOTENT_RTOL)
    assert (
        sql(layout, "SELECT path, n_rows FROM measurement_sets WHERE window_key = ? AND status = 'current'", WIN_A)
        == first_ms
    )
    assert not list(layout.image_prefix(WIN_A).parent.glob(".*tmp-*"))  # no temporaries left behind


def test_cleanup_dry_run_then_retention_on_real_products(env, capsys, monkeypatch):
    """Runs last in this module: it deletes the imaged chunk's MS."""
    layout = env["layout"]
    monkeypatch.setenv("CONTIMG_MS_KEEP_DAYS", "0")
    code, out, _ = run_cli(capsys, "cleanup", "--dry-run", "--json")
    assert code == 0
    plan = json.loads(out)
    assert [(a["action"], a["window_key"]) for a in plan["actions"]] == [("delete_ms", WIN_A)]
    kept = {a["window_key"]: a["reason"] for a in plan["kept"]}
    assert kept == {WIN_B: "not imaged yet (no ok image)"}
    assert layout.ms_path(WIN_A).is_dir()  # dry run changed nothing
    assert sql(layout, "SELECT count(*) FROM housekeeping_log") == [(0,)]

    code, out, _ = run_cli(capsys, "cleanup")
    assert code == 0 and "deleted 1 item(s)" in out
    assert not layout.ms_path(WIN_A).exists() and layout.ms_path(WIN_B).is_dir()
    assert sql(layout, "SELECT window_key, status FROM measurement_sets WHERE status != 'superseded' ORDER BY 1") == [
        (WIN_A, "deleted"),
        (WIN_B, "current"),
    ]
    assert sql(layout, "SELECT action, window_key, path FROM housekeeping_log") == [
        ("delete_ms", WIN_A, str(layout.ms_path(WIN_A)))
    ]
    assert not list(layout.ms_path(WIN_A).parent.glob(".*deleting*"))
    code, out, _ = run_cli(capsys, "products", "--json", "--type", "ms")
    assert [r["window_key"] for r in json.loads(out)] == [WIN_B]


def test_commands_and_views_on_an_empty_catalogue(layout, capsys):
    from contimg.catalogue import connect
    from contimg.catalogue.duck import open_duckdb

    connect(layout.catalogue).close()
    con = open_duckdb(layout.catalogue)
    for view in ("status_per_day", "qa_trends", "recent_failures", "products", "science_qa"):
        assert con.sql(f"SELECT count(*) FROM {view}").fetchone()[0] == 0, view
    code, out, _ = run_cli(capsys, "status", "--json")
    info = json.loads(out)
    assert code == 0 and info["groups_by_state"] == {} and info["last_image"] is None
    assert run_cli(capsys, "qa", "--format", "csv")[1].strip() == ",".join(
        [
            "window_key",
            "status",
            "rms_jy",
            "expected_rms_jy",
            "rms_ratio",
            "peak_jy",
            "dynamic_range",
            "n_sources",
            "bmaj_arcsec",
            "bmin_arcsec",
            "bpa_deg",
            "flagged_fraction",
            "science_grade",
            "flux_ratio",
            "offset_ra_arcsec",
            "offset_dec_arcsec",
            "completeness",
            "reliability",
            "calset",
            "image_path",
        ]
    )
    code, out, _ = run_cli(capsys, "cleanup", "--dry-run")
    assert code == 0 and "nothing to do" in out


def test_calibration_in_status_products_and_history(layout, capsys):
    """Calibration rows written through the registry's own writer (a solve needs a calibrator chunk)."""
    from astropy.time import Time

    from contimg.catalogue import connect
    from contimg.catalogue.duck import open_duckdb
    from contimg.catalogue.images import record_image
    from contimg.catalogue.ingest import record_measurement_set
    from contimg.catalogue.registry import register_set, retire_set
    from tests.test_housekeeping import image_metrics, ms_metrics

    conn = connect(layout.catalogue)
    transit = Time("2026-01-25T00:02:30", scale="utc")
    for name, t_mjd in (("3C286_old", transit.mjd - 1.0), ("3C286_new", transit.mjd)):
        register_set(
            conn,
            set_name=name,
            window_key="2026-01-25T00:00",
            calibrator="3C286",
            source_ms="/x.ms",
            transit_mjd=t_mjd,
            tables=[
                {"path": f"/cal/{name}.G", "type": "G", "order": 2},
                {"path": f"/cal/{name}.B", "type": "B", "order": 1},
            ],
            status="active",
            refant="pad1",
            solver_version="t",
            solver_params={},
            quality={},
        )
    retire_set(conn, "3C286_old")
    m = ms_metrics(layout.ms_path(WIN_B))
    m["mid_mjd"] = transit.mjd + 0.003
    record_measurement_set(conn, WIN_B, m, size_bytes=1, run_id="r")
    im = image_metrics(layout.image_prefix(WIN_B))
    im["calset"] = "3C286_new"
    record_image(conn, WIN_B, m["ms_path"], im, status="ok", reason=None, run_id="r")
    conn.close()

    code, out, _ = run_cli(capsys, "status", "--json")
    cal = json.loads(out)["active_calibration"]
    assert cal["set_name"] == "3C286_new" and cal["covers_latest_ms"] is True
    assert cal["age_h"] == pytest.approx((Time.now() - transit).to_value("hour"), abs=0.02)
    code, out, _ = run_cli(capsys, "status")
    assert "calibration: set 3C286_new (3C286, transit 2026-01-25T00:00)" in out
    code, out, _ = run_cli(capsys, "products", "--type", "caltable", "--json")
    assert {(r["path"], r["status"]) for r in json.loads(out)} == {
        ("/cal/3C286_new.B", "active"),
        ("/cal/3C286_new.G", "active"),
        ("/cal/3C286_old.B", "retired"),
        ("/cal/3C286_old.G", "retired"),
    }
    hist = (
        open_duckdb(layout.catalogue)
        .sql("SELECT set_name, status, n_tables, table_types, n_images, transit_utc FROM calibration_history")
        .fetchall()
    )
    assert [h[:5] for h in hist] == [("3C286_new", "active", 2, "B,G", 1), ("3C286_old", "retired", 2, "B,G", 0)]
    assert abs((hist[0][5] - transit.to_datetime()).total_seconds()) < 1e-3


def test_reprocess_routes_calibrator_chunks_to_their_job(layout, capsys, tmp_path, monkeypatch):
    from contimg.catalogue import connect
    from contimg.catalogue.ingest import upsert_group

    conn = connect(layout.catalogue)
    upsert_group(conn, WIN_A, state="imaged", calibrator="3C286")
    upsert_group(conn, WIN_B, state="imaged")
    conn.close()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    code, out, err = run_cli(capsys, "reprocess", f"{WIN_A}..{WIN_B}", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["calibrator_windows"] == [WIN_A]
    with DagsterInstance.get() as instance:
        runs = {r.tags["dagster/partition"]: r for r in instance.get_runs()}
    assert {w: r.job_name for w, r in runs.items()} == {WIN_A: "calibrator_chunk_job", WIN_B: "chunk_job"}
    assert runs[WIN_A].tags["dagster/priority"] == "1" and "dagster/priority" not in runs[WIN_B].tags
    code, out, _ = run_cli(capsys, "reprocess", WIN_B, "--dry-run")
    assert code == 0 and "dry run" in out and "chunk_job" in out
