"""The monitoring API (`contimg serve`) on a real uvicorn server on loopback, over a catalogue filled by real
materializations of the chunk assets.

A calibrator chunk and, an hour later, two target chunks (one with a truncated subband file) go through
subband_group -> measurement_set; the calibrator chunk also through caltable_set; then every chunk is imaged
with the solved tables and the night's mosaic is built. Every route's JSON is checked against the catalogue
read with sqlite3 and against the files on disk.
"""

import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy import units as u
from astropy.time import Time

from contimg.core.settings import Layout
from contimg.sim import simulate
from contimg.web.cache import MIN_AGE_S

# the catalogue these pages read is filled by real CASA child jobs through Dagster: not in `make test-fast`
pytestmark = pytest.mark.casa

TOKEN = "test-token-5f1c-9a0e7d"
SERVER_START_TIMEOUT_S = 60.0
SMALL_IMAGING = json.dumps({"max_size_px": 256, "min_size_px": 256, "niter": 200, "pb_time_samples": 2})
REPO = Path(__file__).parents[1]
DAGSTER_URL = "http://127.0.0.1:3999"  # CONTIMG_DAGSTER_URL of the test server: run links must use it

_BUILT: dict = {}  # one stream per session, shared by test_web.py and test_web_browser.py


def window_of(start_isot: str) -> str:
    """The 5-minute window key of a chunk start."""
    t = Time(start_isot, scale="utc").datetime
    return t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


def build_stream(root: Path) -> dict:
    """Simulate, then materialize the real assets into a layout at ``root`` (returns windows and layout)."""
    from dagster import DagsterInstance, materialize

    env_before = dict(os.environ)
    try:
        os.environ["CONTIMG_ROOT"] = str(root)
        for var in (
            "CONTIMG_INGEST_DIR",
            "CONTIMG_PRODUCTS_DIR",
            "CONTIMG_SCRATCH_DIR",
            "CONTIMG_STATE_DIR",
            "CONTIMG_ALLOW_UNCALIBRATED",
        ):
            os.environ.pop(var, None)
        os.environ["CONTIMG_IMAGING_CONFIG"] = SMALL_IMAGING
        layout = Layout.from_env().ensure()
        sim = root.parent / "sim"
        cal = simulate(
            sim / "cal",
            "2026-01-25T00:00:00",
            n_antennas=16,
            n_chan_per_subband=4,
            n_integrations=6,
            calibrator="0834+555",
            seed=31,
        )
        start = Time(cal["chunks"][0]["start"], scale="utc") + 1 * u.hour
        tgt = simulate(
            sim / "tgt",
            start.isot,
            n_chunks=2,
            n_antennas=16,
            n_chan_per_subband=4,
            n_integrations=6,
            dec_deg=cal["pointing_dec_deg"],
            seed=31,
            faults="truncate@1:5",
        )
        for f in [*(sim / "cal").glob("*.hdf5"), *(sim / "tgt").glob("*.hdf5")]:
            shutil.copyfile(f, layout.ingest / f.name)
        cal_window = window_of(cal["chunks"][0]["start"])
        targets = [window_of(c["start"]) for c in tgt["chunks"]]

        from contimg_assets.caltable_set import caltable_set
        from contimg_assets.definitions import defs
        from contimg_assets.image import image
        from contimg_assets.measurement_set import measurement_set
        from contimg_assets.nightly_mosaic import nightly_mosaic
        from contimg_assets.subband_group import subband_group

        with DagsterInstance.ephemeral() as instance:

            def run(assets, key, ok=True):
                result = materialize(
                    assets, partition_key=key, instance=instance, resources=defs.resources, raise_on_error=False
                )
                assert result.success or not ok, (assets, key)
                return result

            run([subband_group, measurement_set, caltable_set], cal_window)
            for w in targets:
                run([subband_group, measurement_set], w)
            for w in [cal_window, *targets]:
                run([image], w, ok=False)  # the calibrator's own chunk may fail QA (its sidelobes)
            run([nightly_mosaic], cal_window[:10], ok=False)
        return {
            "layout": layout,
            "cal_window": cal_window,
            "targets": targets,
            "windows": [cal_window, *targets],
            "date": cal_window[:10],
        }
    finally:
        os.environ.clear()
        os.environ.update(env_before)


def built_stream(tmp_path_factory) -> dict:
    if "stream" not in _BUILT:
        _BUILT["stream"] = build_stream(tmp_path_factory.mktemp("web") / "contimg")
    return _BUILT["stream"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`contimg serve` in a child process on a free loopback port, stopped by :meth:`stop`."""

    def __init__(self, root: Path, *, token: str | None = TOKEN, extra_env: dict | None = None):
        self.port = free_port()
        self.dagster_home = Path(root).parent / f"dagster_home_{self.port}"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
        env.update(
            {
                "CONTIMG_ROOT": str(root),
                "CONTIMG_MIN_FREE_GB": "1",
                "PYTHONPATH": str(REPO),
                "CONTIMG_DAGSTER_URL": DAGSTER_URL,
                "DAGSTER_HOME": str(self.dagster_home),
            }
        )
        if token:
            env["CONTIMG_API_TOKEN"] = token
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "contimg.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"contimg serve exited: {self.proc.stdout.read()}")
            try:
                if self.request("GET", "/api/status")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("contimg serve did not answer in time")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
        """Send ``path`` exactly as given (no normalisation of ``..``), return (status, body, headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read(), dict(resp.getheaders())
        finally:
            conn.close()

    def get_json(self, path: str, expect: int = 200):
        status, body, _ = self.request("GET", path)
        assert status == expect, (path, status, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return built_stream(tmp_path_factory)


@pytest.fixture(scope="module")
def server(stream):
    srv = Server(stream["layout"].state.parent)
    yield srv
    srv.stop()


def sql(layout, query, *params):
    con = sqlite3.connect(f"file:{layout.catalogue}?mode=ro", uri=True)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def test_status_matches_the_catalogue(server, stream):
    layout = stream["layout"]
    info = server.get_json("/api/status")
    assert info["catalogue_exists"] is True
    assert info["groups_by_state"] == dict(sql(layout, "SELECT state, count(*) FROM groups GROUP BY state"))
    assert sum(info["groups_by_state"].values()) == 3
    assert info["backlog"] == {"n_chunks": 0, "by_state": {}, "oldest_window": None}
    newest = sql(
        layout,
        "SELECT window_key, status, rms_jy FROM images WHERE status IN ('ok', 'flagged') "
        "ORDER BY window_key DESC, id DESC LIMIT 1",
    )[0]
    assert (info["last_image"]["window_key"], info["last_image"]["status"]) == newest[:2]
    assert info["last_image"]["rms_jy"] == pytest.approx(newest[2], rel=1e-12)
    active = sql(layout, "SELECT set_name, transit_mjd FROM caltable_sets WHERE status = 'active'")
    assert [info["active_calibration"]["set_name"]] == [a[0] for a in active]
    age_h = (Time.now().mjd - active[0][1]) * 24
    assert info["active_calibration"]["age_h"] == pytest.approx(age_h, abs=0.05)
    # the target chunks lie inside the set's validity: it covers the newest MS, an hour after the transit
    assert info["active_calibration"]["covers_latest_ms"] is True
    newest_mjd = sql(layout, "SELECT max(mid_mjd) FROM measurement_sets WHERE status = 'current'")[0][0]
    assert info["active_calibration"]["age_h_at_newest_data"] == pytest.approx(
        (newest_mjd - active[0][1]) * 24, abs=1e-3
    )
    assert 1.0 < info["active_calibration"]["age_h_at_newest_data"] < 1.2
    corrupt = sql(layout, "SELECT window_key, path FROM subband_files WHERE status = 'corrupt'")
    assert [(f["kind"], f["window_key"], f["path"]) for f in info["recent_failures"]] == [
        ("file", w, p) for w, p in corrupt
    ]
    st = os.statvfs(layout.products)
    assert info["free_disk_gb"][str(layout.products)] == pytest.approx(st.f_bavail * st.f_frsize / 1e9, abs=0.5)
    assert info["disk_guard"]["hold"] is False


def test_products_by_date_and_type(server, stream):
    layout = stream["layout"]
    rows = server.get_json(f"/api/products?date={stream['date']}")
    expected = {p for (p,) in sql(layout, "SELECT path FROM measurement_sets WHERE status = 'current'")}
    for col in ("image_path", "pbcor_path", "pb_path", "png_path"):
        expected |= {p for (p,) in sql(layout, f"SELECT {col} FROM images WHERE status IN ('ok', 'flagged')")}
    expected |= {p for (p,) in sql(layout, "SELECT path FROM caltables")}
    # an image's source list (PREFIX.sources.fits) counts where its sources or cross-match are in the catalogue
    with_sources = sql(
        layout,
        "SELECT image_path FROM images WHERE status IN ('ok', 'flagged') AND (id IN (SELECT image_id FROM sources)"
        " OR id IN (SELECT image_id FROM image_science_qa))",
    )
    source_lists = {p[: -len(".fits")] + ".sources.fits" for (p,) in with_sources}
    assert all(Path(p).exists() for p in source_lists)
    expected |= source_lists
    expected |= {
        p
        for row in sql(layout, "SELECT path, noise_path, png_path FROM mosaics WHERE status = 'current'")
        for p in row
        if p
    }
    assert {r["path"] for r in rows} == expected
    pngs = [r for r in rows if r["path"].endswith(".png")]
    assert pngs and all(r["url"] == "/files/" + Path(r["path"]).relative_to(layout.products).as_posix() for r in pngs)
    status, body, headers = server.request("GET", pngs[0]["url"])
    assert status == 200 and body == Path(pngs[0]["path"]).read_bytes() and headers["content-type"] == "image/png"
    ms = server.get_json("/api/products?type=ms")
    assert sorted(r["path"] for r in ms) == sorted(
        p for (p,) in sql(layout, "SELECT path FROM measurement_sets WHERE status = 'current'")
    )
    assert server.get_json("/api/products?date=2026-01-26") == []


def test_qa_rows_and_range(server, stream):
    layout = stream["layout"]
    data = server.get_json("/api/qa?since=2026-01-25&until=2026-01-26")
    assert (data["since"], data["until"]) == ("2026-01-25T00:00", "2026-01-26T00:00")
    expected = sql(
        layout,
        "SELECT window_key, status, rms_jy, dynamic_range, n_sources, calset FROM images "
        "WHERE status IN ('ok', 'flagged') ORDER BY window_key",
    )
    got = [
        (r["window_key"], r["status"], r["rms_jy"], r["dynamic_range"], r["n_sources"], r["calset"])
        for r in data["images"]
    ]
    assert got == expected and len(got) == 3
    for r in data["images"]:
        assert r["rms_ratio"] == pytest.approx(r["rms_jy"] / r["expected_rms_jy"], rel=1e-12)
    later = server.get_json(f"/api/qa?since={stream['targets'][0]}")
    assert [r["window_key"] for r in later["images"]] == stream["targets"]
    # default range: the 24 h of data ending just after the newest window
    assert [r["window_key"] for r in server.get_json("/api/qa")["images"]] == stream["windows"]


def test_thumbnails_of_a_night(server, stream):
    layout = stream["layout"]
    default = server.get_json("/api/qa/thumbs")
    data = server.get_json(f"/api/qa/thumbs?date={stream['date']}")
    assert default == data and data["date"] == stream["date"]
    expected = sql(
        layout, "SELECT window_key, png_path FROM images WHERE status IN ('ok', 'flagged') ORDER BY window_key"
    )
    assert [(t["window_key"], t["png_path"]) for t in data["thumbs"]] == expected
    for t in data["thumbs"]:
        status, body, _ = server.request("GET", t["png_url"])
        assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n" and body == Path(t["png_path"]).read_bytes()
        assert t["chunk_url"] == f"/chunk/{t['window_key']}"
    assert server.get_json("/api/qa/thumbs?date=2026-01-20") == {"date": "2026-01-20", "thumbs": []}


def test_one_chunk_in_full(server, stream):
    layout = stream["layout"]
    w = stream["targets"][1]  # the chunk with a truncated subband file
    d = server.get_json(f"/api/groups/{w}")
    assert d["group"]["state"] == sql(layout, "SELECT state FROM groups WHERE window_key = ?", w)[0][0]
    assert d["group"]["missing_subbands"] == [5]
    assert [(f["path"], f["status"]) for f in d["files"]] == sql(
        layout, "SELECT path, status FROM subband_files WHERE window_key = ? ORDER BY subband, path", w
    )
    assert len(d["files"]) == 16 and [f["subband"] for f in d["files"] if f["status"] == "corrupt"] == [5]
    assert [(m["path"], m["status"]) for m in d["measurement_sets"]] == sql(
        layout, "SELECT path, status FROM measurement_sets WHERE window_key = ? ORDER BY id", w
    )
    image = sql(layout, "SELECT id, status, calset, rms_jy, png_path, run_id FROM images WHERE window_key = ?", w)
    assert [(i["id"], i["status"], i["calset"]) for i in d["images"]] == [r[:3] for r in image]
    assert d["current_image"]["rms_jy"] == pytest.approx(image[0][3], rel=1e-12)
    assert d["images"][0]["urls"]["png_path"] == "/files/" + Path(image[0][4]).relative_to(layout.products).as_posix()
    cal = d["calibration"]
    assert cal["set_name"] == image[0][2] == window_of_slug(stream["cal_window"])
    assert [t["path"] for t in cal["tables"]] == [
        p for (p,) in sql(layout, "SELECT path FROM caltables WHERE set_name = ? ORDER BY apply_order", cal["set_name"])
    ]
    assert [(t["stage"], t["seconds"]) for t in d["stage_timings"]] == sql(
        layout, "SELECT stage, seconds FROM stage_timings WHERE window_key = ? ORDER BY id", w
    )
    run_ids = {
        r
        for row in sql(
            layout,
            "SELECT run_id FROM images WHERE window_key = ? UNION SELECT run_id FROM "
            "measurement_sets WHERE window_key = ? UNION SELECT run_id FROM stage_timings "
            "WHERE window_key = ?",
            w,
            w,
            w,
        )
        for r in row
        if r
    }
    assert set(d["run_ids"]) == run_ids and d["run_ids"][0] == image[0][5]  # the image's run is the newest
    assert d["dagster_run_url"] == f"{DAGSTER_URL}/runs/{image[0][5]}"
    assert {r["url"] for r in d["dagster_runs"]} == {f"{DAGSTER_URL}/runs/{r}" for r in run_ids}


def window_of_slug(window: str) -> str:
    return window.replace(":", "")


def test_chunk_errors(server, stream):
    assert server.request("GET", "/api/groups/2026-01-25T03:00")[0] == 404  # a window with no chunk
    for bad in ("2026-01-25T9:15", "2026-01-25", "2026-13-25T00:00", "2026-01-25T00:00;ls", "..%2F..%2Fetc"):
        status, body, _ = server.request("GET", f"/api/groups/{bad}")
        assert status in (404, 422), bad
        if status == 422:
            assert json.loads(body)["detail"], bad
    status, body, _ = server.request("GET", "/api/groups/2026-13-25T00:00")
    assert status == 422 and "bad time '2026-13-25T00:00'" in json.loads(body)["detail"]


def test_ms_index_filters(server, stream):
    layout = stream["layout"]
    rows = server.get_json("/api/ms_index")
    assert [(r["window_key"], r["path"], r["status"], r["stage"]) for r in rows] == sql(
        layout,
        "SELECT m.window_key, m.path, m.status, g.state FROM measurement_sets m LEFT JOIN groups g "
        "ON g.window_key = m.window_key ORDER BY m.window_key DESC, m.id DESC",
    )
    assert len(rows) == 3
    assert [r["window_key"] for r in server.get_json("/api/ms_index?limit=1")] == [stream["targets"][1]]
    assert len(server.get_json("/api/ms_index?stage=imaged&status=current")) == 3
    assert server.get_json("/api/ms_index?status=deleted") == []
    assert server.get_json("/api/ms_index?stage=failed") == []


@pytest.mark.parametrize(
    "path, message",
    [
        ("/api/ms_index?stage=cooking", "unknown stage 'cooking'"),
        ("/api/ms_index?status=lost", "unknown MS status 'lost'"),
        ("/api/ms_index?limit=0", "greater than or equal to 1"),
        ("/api/ms_index?limit=ten", "valid integer"),
        ("/api/products?date=25-01-2026", "should match pattern"),
        ("/api/products?date=2026-02-30", "bad date '2026-02-30'"),
        ("/api/products?type=visibilities", "unknown product type 'visibilities'"),
        ("/api/qa?since=yesterday", "bad time 'yesterday'"),
        ("/api/qa?since=2026-01-25T02:00&until=2026-01-25T01:00", "bad range"),
        ("/api/qa/thumbs?date=tomorrow", "should match pattern"),
        ("/api/status?failures=-1", "greater than or equal to 0"),
        ("/night/2026-02-30", "bad date '2026-02-30'"),
    ],
    ids=lambda v: v if v.startswith("/") else "",
)
def test_bad_parameters_get_422_with_a_message(server, path, message):
    status, body, _ = server.request("GET", path)
    assert status == 422, (path, body)
    assert message in body.decode(), body


def test_calibrator_matches(server, stream):
    rows = server.get_json("/api/calibrator_matches")
    expected = sql(stream["layout"], "SELECT window_key, calibrator, set_name, status FROM caltable_sets")
    assert [(r["window_key"], r["calibrator"], r["set_name"], r["set_status"]) for r in rows] == expected
    assert expected[0][0] == stream["cal_window"] and expected[0][1] == "0834+555"


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/images/../../state/catalogue.sqlite3",
        "/files/images/%00.png",
        "/files/..%5C..%5Cetc%5Cpasswd",
        "/files/images/../../../../../../../../etc/hostname",
    ],
)
def test_traversal_gets_404(server, path):
    status, body, _ = server.request("GET", path)
    assert status == 404, (path, body[:200])
    assert b"root:" not in body


def test_files_only_from_the_products_tree_and_only_served_types(server, stream):
    layout = stream["layout"]
    outside = layout.state / "secret.png"
    outside.write_bytes(b"\x89PNG not for the web")
    link = layout.products / "images" / "link.png"
    link.symlink_to(outside)
    (layout.products / "images" / "notes.txt").write_text("text")
    try:
        assert server.request("GET", "/files/images/link.png")[0] == 404  # a symlink leaving the tree
        assert server.request("GET", "/files/images/notes.txt")[0] == 404  # not a served type
        ms_rel = layout.ms_path(stream["targets"][0]).relative_to(layout.products).as_posix()
        assert server.request("GET", f"/files/{ms_rel}")[0] == 404  # a directory (an MS)
        assert server.request("GET", f"/files/{ms_rel}/table.dat")[0] == 404
        cal_json = layout.caltable_dir(stream["cal_window"]) / "caltables.json"
        status, body, _ = server.request("GET", "/files/" + cal_json.relative_to(layout.products).as_posix())
        assert status == 200 and json.loads(body) == json.loads(cal_json.read_text())
        fits_path = Path(sql(layout, "SELECT image_path FROM images LIMIT 1")[0][0])
        status, body, _ = server.request("GET", "/files/" + fits_path.relative_to(layout.products).as_posix())
        assert status == 200 and body == fits_path.read_bytes() and body.startswith(b"SIMPLE  =")
    finally:
        link.unlink()
        outside.unlink()
        (layout.products / "images" / "notes.txt").unlink()


def test_reprocess_needs_the_token_and_submits_a_backfill(server, stream, monkeypatch):
    path = f"/api/reprocess/{stream['targets'][0]}"
    assert server.request("POST", path)[0] == 401
    for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
        status, _, headers = server.request("POST", path, {"Authorization": header})
        assert status == 401 and headers.get("www-authenticate") == "Bearer", header
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body, _ = server.request("POST", "/api/reprocess/2026-01-25T00:03", auth)  # not on the 5-minute grid
    assert status == 422 and "unknown window '2026-01-25T00:03'" in json.loads(body)["detail"]
    assert server.request("POST", "/api/reprocess/2026-01-25T00:05;rm", auth)[0] == 422
    status, body, _ = server.request("POST", path, auth)
    assert status == 200, body
    res = json.loads(body)
    assert res["windows"] == [stream["targets"][0]] and [b["job"] for b in res["backfills"]] == ["chunk_job"]
    from dagster import DagsterInstance, RunsFilter

    monkeypatch.setenv("DAGSTER_HOME", str(server.dagster_home))
    with DagsterInstance.get() as instance:
        assert [b.backfill_id for b in instance.get_backfills()] == [res["backfills"][0]["backfill_id"]]
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": res["backfills"][0]["backfill_id"]}))
        assert [r.tags["dagster/partition"] for r in runs] == [stream["targets"][0]]


def test_reprocess_is_refused_when_no_token_is_set(stream, tmp_path):
    srv = Server(stream["layout"].state.parent, token=None, extra_env={"DAGSTER_HOME": str(tmp_path)})
    try:
        path = f"/api/reprocess/{stream['targets'][0]}"
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            assert srv.request("POST", path, headers)[0] == 401
        assert not any(tmp_path.iterdir())  # nothing was submitted
    finally:
        srv.stop()


def test_pages_show_the_night_and_the_chunk(server, stream):
    layout = stream["layout"]
    status, _, headers = server.request("GET", "/")
    assert status == 307 and headers["location"] == f"/night/{stream['date']}"
    status, body, _ = server.request("GET", f"/night/{stream['date']}")
    page = body.decode()
    assert status == 200 and page.count("<rect ") == 288
    pngs = sql(layout, "SELECT png_path FROM images WHERE status IN ('ok', 'flagged') ORDER BY window_key")
    for (png,) in pngs:
        assert f'src="/files/{Path(png).relative_to(layout.products).as_posix()}"' in page
    mosaic_png = sql(layout, "SELECT png_path FROM mosaics WHERE status = 'current'")[0][0]
    assert f'src="/files/{Path(mosaic_png).relative_to(layout.products).as_posix()}"' in page
    assert window_of_slug(stream["cal_window"]) in page  # the calibration set used
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    status, body, headers = server.request("GET", f"/night/{stream['date']}/rms.png")
    assert status == 200 and headers["content-type"] == "image/png" and body[:4] == b"\x89PNG"
    w = stream["targets"][0]
    status, body, _ = server.request("GET", f"/chunk/{w}")
    page = body.decode()
    run_id = sql(layout, "SELECT run_id FROM images WHERE window_key = ?", w)[0][0]
    assert status == 200 and f'href="{DAGSTER_URL}/runs/{run_id}"' in page
    assert "CORRECTED_DATA" in page and "BMAJ" in page  # FITS header essentials, read from the file
    assert ".bandpass.png" in page
    status, body, _ = server.request("GET", "/calibration")
    assert status == 200 and stream["cal_window"] in body.decode() and "0834+555" in body.decode()
    assert server.request("GET", "/chunk/2026-01-25T03:00")[0] == 404
    status, body, _ = server.request("GET", "/docs")
    assert status == 200 and "https://" not in body.decode() and "/static/swagger/swagger-ui-bundle.js" in body.decode()
    assert server.request("GET", "/static/swagger/swagger-ui-bundle.js")[0] == 200
    assert set(server.get_json("/openapi.json")["paths"]) >= {
        "/api/status",
        "/api/products",
        "/api/qa",
        "/api/qa/thumbs",
        "/api/groups/{window}",
        "/api/ms_index",
        "/api/calibrator_matches",
        "/api/reprocess/{window}",
    }


def test_missing_then_empty_catalogue_gives_empty_answers(tmp_path):
    from contimg.catalogue import connect
    from contimg.catalogue.ingest import upsert_group

    root = tmp_path / "contimg"
    srv = Server(root, extra_env={"CONTIMG_WEB_CACHE_S": "0"})  # each answer from the catalogue as it is now
    try:
        for _ in ("missing", "empty"):
            status = srv.get_json("/api/status")
            assert status["groups_by_state"] == {} and status["last_image"] is None
            assert status["recent_failures"] == [] and status["backlog"]["n_chunks"] == 0
            assert srv.get_json("/api/products") == [] and srv.get_json("/api/products?date=2026-01-25") == []
            assert srv.get_json("/api/qa")["images"] == []
            assert srv.get_json("/api/qa/thumbs")["thumbs"] == []
            assert srv.get_json("/api/ms_index") == [] and srv.get_json("/api/calibrator_matches") == []
            assert srv.request("GET", "/api/groups/2026-01-25T00:00")[0] == 404
            assert srv.request("GET", "/")[0] == 200 and srv.request("GET", "/calibration")[0] == 200
            assert srv.request("GET", "/night/2026-01-25")[0] == 200
            assert srv.request("GET", "/api/qa?since=yesterday")[0] == 422
            if not root.exists():
                layout = Layout.under(root).ensure()
                connect(layout.catalogue).close()  # the pipeline's first start: schema, no rows
        assert srv.get_json("/api/status")["catalogue_exists"] is True
        # text from the catalogue is escaped on the pages
        conn = connect(Layout.under(root).catalogue)
        upsert_group(conn, "2026-01-25T00:00", state="failed", error='<script>alert("x")</script>')
        conn.close()
        page = srv.request("GET", "/chunk/2026-01-25T00:00")[1].decode()
        assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        assert srv.get_json("/api/groups/2026-01-25T00:00")["group"]["error"] == '<script>alert("x")</script>'
        # a new catalogue in place of the old one (a new demo): the service reads the new file
        catalogue = Layout.under(root).catalogue
        for suffix in ("", "-wal", "-shm"):
            Path(f"{catalogue}{suffix}").unlink(missing_ok=True)
        conn = connect(catalogue)
        upsert_group(conn, "2026-01-26T00:00", state="imaged")
        conn.close()
        assert srv.get_json("/api/status")["groups_by_state"] == {"imaged": 1}
        assert srv.request("GET", "/api/groups/2026-01-25T00:00")[0] == 404
    finally:
        srv.stop()


def test_cached_answers_follow_the_catalogue_within_the_cache_age(tmp_path):
    from contimg.catalogue import connect
    from contimg.catalogue.ingest import upsert_group

    root = tmp_path / "contimg"
    srv = Server(root)  # the default cache: answers at most MIN_AGE_S behind the catalogue
    try:
        assert srv.get_json("/api/status")["catalogue_exists"] is False
        conn = connect(Layout.under(root).ensure().catalogue)
        upsert_group(conn, "2026-01-25T00:00", state="failed", error="boom")
        time.sleep(MIN_AGE_S + 0.1)
        info = srv.get_json("/api/status")
        assert info["catalogue_exists"] is True and info["groups_by_state"] == {"failed": 1}
        night = srv.request("GET", "/night/2026-01-25")[1].decode()
        assert "1 of 288 windows seen" in night and "1 chunks failed" in night
        upsert_group(conn, "2026-01-25T00:05", state="imaged")
        time.sleep(MIN_AGE_S + 0.1)
        assert srv.get_json("/api/status")["groups_by_state"] == {"failed": 1, "imaged": 1}
        assert "2 of 288 windows seen" in srv.request("GET", "/night/2026-01-25")[1].decode()
        conn.close()
    finally:
        srv.stop()
