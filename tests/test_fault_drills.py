"""Fault drills on the whole stream, unattended: a real dagster-daemon, real CASA child jobs, the real catalogue.

Six small chunks (8 antennas, 4 channels per subband, 4 integrations), delivered as the correlator does:

| chunk | window | drill | expected |
| --- | --- | --- | --- |
| 0 | 00:00 | a duplicate of sb02 | imaged from 16 subbands; the duplicate recorded |
| 1 | 00:05 | the daemon's process group gets SIGKILL while this chunk converts; a new daemon starts | the run fails by run monitoring, is re-run, imaged once; its CASA job does not outlive the kill |
| 2 | 00:10 | sb04 truncated | imaged from 15; the corrupt file recorded |
| 3 | 00:15 | sb00-sb04 never arrive | `incomplete` after the grace minute, with the reason; no run |
| 4 | 00:20 | ~1% NaN visibilities in sb05 | imaged; NaNs flagged, none in the MS or image |
| 5 | 00:25 | the imaging job hangs on its first attempt | killed at its 35 s timeout, the reason recorded, imaged on the retry |

Afterwards: every complete chunk has exactly one image (FITS open, MS open), every faulty one a recorded
reason, nothing half-written under products/, and no CASA, WSClean or instance process left.
"""  # noqa: E501 (a markdown table: its rows cannot be wrapped)

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from contimg.core.settings import Layout, window_slug
from contimg.sim import simulate
from contimg_assets.instance.processes import casa_processes
from contimg_assets.instance.stream import DaemonKillDrill, run_stream
from tests.casa_helpers import run_in_child
from tests.test_stream_e2e import _mentions, casa_children

W = [f"2026-01-25T00:{m:02d}" for m in (0, 5, 10, 15, 20, 25)]
IMAGED = [W[0], W[1], W[2], W[4], W[5]]
KILLED, INCOMPLETE, NAN, HUNG = W[1], W[3], W[4], W[5]
FAULTS = "duplicate@0:2,truncate@2:4," + ",".join(f"missing@3:{sb}" for sb in range(5)) + ",nan@4:5"
ENV = {
    "CONTIMG_SENSOR_INTERVAL_S": "5",
    "CONTIMG_ALLOW_UNCALIBRATED": "1",  # no calibrator transit in these chunks
    "CONTIMG_IMAGING_CONFIG": '{"max_size_px": 512, "niter": 300}',
    "CONTIMG_MIN_FREE_GB": "1",
    "CONTIMG_GRACE_MINUTES": "1",  # chunk 3 (11 subbands) is declared incomplete after a minute
    "CONTIMG_CASA_TIMEOUT_S": "image=35",  # a real small image takes ~10 s, the hung one is killed at 35 s
    "CONTIMG_MS_KEEP_DAYS": "100000",  # the 04:30 UTC housekeeping would delete these (old) imaged windows' MS
    "CONTIMG_DRILL_HANG": f"image:{HUNG}",  # first attempt only
}
HALF_WRITTEN_MARKERS = (".tmp", ".old-", ".deleting-", "_incomplete")


def catalogue_rows(layout, sql, *params):
    con = sqlite3.connect(layout.catalogue)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def product_entries(products: Path) -> set:
    """Every file and folder under products/, relative, without descending into Measurement Sets."""
    out = set()
    for root, dirs, files in os.walk(products):
        rel = Path(root).relative_to(products)
        for name in dirs + files:
            out.add(str(rel / name))
        dirs[:] = [d for d in dirs if not d.endswith(".ms")]
    return out


def failure_messages(instance, run_id) -> str:
    events = instance.all_logs(run_id, of_type={DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT})
    return "\n".join(e.dagster_event.message or "" for e in events if e.dagster_event)


@pytest.mark.e2e
def test_fault_drills_every_complete_chunk_imaged_once_every_fault_recorded_nothing_left(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    layout = Layout.under(tmp_path / "root").ensure()
    simulate(
        tmp_path / "sim",
        "2026-01-25T00:00:00",
        n_chunks=6,
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=4,
        seed=3,
        gains=False,
        faults=FAULTS,
    )
    outcome = run_stream(
        tmp_path / "sim",
        layout,
        interval_s=3,
        timeout_s=780,
        env_extra=ENV,
        kill_daemon=DaemonKillDrill(job="convert", window=KILLED, delay_s=1.0, restart_after_s=5.0),
    )
    print(
        f"drill outcome: wall {outcome.wall_s} s, runs {outcome.runs}, kills {outcome.kills}, "
        f"leftovers {outcome.leftovers}, reaped {outcome.reaped}"
    )
    assert not outcome.timed_out, open(outcome.daemon_log).read()[-4000:]

    # --- every complete chunk imaged, the incomplete one says why
    assert outcome.windows == {**{w: "imaged" for w in IMAGED}, INCOMPLETE: "incomplete"}
    groups = {w: (n, err) for w, n, err in catalogue_rows(layout, "SELECT window_key, n_subbands, error FROM groups")}
    assert groups[W[0]][0] == 16 and groups[W[2]][0] == 15 and groups[INCOMPLETE][0] == 11
    assert "11" in groups[INCOMPLETE][1] and "12" in groups[INCOMPLETE][1], groups[INCOMPLETE]
    files = catalogue_rows(layout, "SELECT window_key, status, reason FROM subband_files WHERE status != 'accepted'")
    by_status = {}
    for w, status, reason in files:
        assert reason, f"{status} file of {w} without a reason"
        by_status.setdefault(status, set()).add(w)
    assert by_status == {"duplicate": {W[0]}, "corrupt": {W[2]}, "excluded": {INCOMPLETE}}, files
    assert len([f for f in files if f[1] == "excluded"]) == 11

    # --- exactly one image per window; the hang's timeout is on record, superseded by the retry's image
    images = catalogue_rows(layout, "SELECT window_key, status, reason, image_path FROM images ORDER BY id")
    current = [(w, s) for w, s, _, _ in images if s in ("ok", "flagged")]
    assert sorted(current) == [(w, "ok") for w in IMAGED], images
    hung = [(s, r) for w, s, r, _ in images if w == HUNG and s != "ok"]
    assert len(hung) == 1 and hung[0][0] == "superseded" and "image timed out after 35 s" in hung[0][1], images
    assert all(w == HUNG for w, s, _, _ in images if s != "ok"), "only the hung window has an earlier attempt"
    assert "FAULT DRILL" in (layout.logs / f"image-{window_slug(HUNG)}.log").read_text()

    # --- the daemon kill: runs were in progress, their CASA job did not outlive them, they were re-run
    assert len(outcome.kills) == 1
    kill = outcome.kills[0]
    assert kill["runs_in_progress"] and kill["casa"], kill
    assert kill["orphans"] == [], f"CASA processes outlived their killed run workers: {kill['orphans']}"
    # the guard, not the job's own end, stopped the orphaned conversion; the failure reached the catalogue sensor
    assert "childguard: parent process" in (layout.logs / f"convert-{window_slug(KILLED)}.log").read_text()
    assert f"record_failed_runs - {KILLED}: run " in Path(outcome.daemon_log).read_text()
    instance = DagsterInstance.from_config(str(layout.dagster_home))
    try:
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": KILLED}))
        failed = [r for r in runs if r.status == DagsterRunStatus.FAILURE]
        succeeded = [r for r in runs if r.status == DagsterRunStatus.SUCCESS]
        assert [r.run_id for r in failed] and set(kill["runs_in_progress"]) >= {r.run_id for r in failed}
        assert all("is gone" in failure_messages(instance, r.run_id) for r in failed), "not failed by run monitoring"
        assert len(succeeded) == 1 and succeeded[0].parent_run_id in {r.run_id for r in failed}
        assert {r.status for r in instance.get_runs()} <= {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}
        for key in ("subband_group", "measurement_set", "image"):
            assert instance.get_materialized_partitions(AssetKey(key)) == set(IMAGED), key
    finally:
        instance.dispose()

    # --- products: exactly the expected ones, nothing half-written, every FITS and MS opens
    products = product_entries(layout.products)
    assert not [p for p in products if any(m in Path(p).name for m in HALF_WRITTEN_MARKERS)], products
    expected = {"images", "images/2026-01-25", "ms", "ms/2026-01-25"}
    for w in IMAGED:
        slug = window_slug(w)
        products_of_an_image = (".fits", ".pbcor.fits", ".pb.fits", ".png", ".sources.fits")  # + the source list
        expected |= {f"images/2026-01-25/{slug}{s}" for s in products_of_an_image}
        expected.add(f"ms/2026-01-25/{slug}.ms")
    assert products == expected, products ^ expected
    for w in IMAGED:
        prefix = layout.image_prefix(w)
        for suffix in (".fits", ".pbcor.fits", ".pb.fits"):
            with fits.open(f"{prefix}{suffix}") as hdul:
                assert hdul[0].header["WINDOW"] == w and hdul[0].data.size > 0
                if suffix == ".fits":
                    assert np.isfinite(hdul[0].data).all()
        with fits.open(f"{prefix}.sources.fits") as hdul:  # the science-QA source list, a whole FITS table
            assert hdul["SOURCES"].header["WINDOW"] == w
    ms_paths = [str(layout.ms_path(w)) for w in IMAGED]
    checks = run_in_child(
        f"""
        import json
        import numpy as np
        from casacore import tables
        out = {{}}
        for p in {ms_paths!r}:
            t = tables.table(p, ack=False)
            data, flag = t.getcol("DATA"), t.getcol("FLAG")
            out[p] = {{"rows": t.nrows(), "finite": bool(np.isfinite(data).all()), "flagged": float(flag.mean())}}
            t.close()
        print(json.dumps(out))
    """,
        layout.casa_state,
    )
    assert all(c["rows"] > 0 and c["finite"] for c in checks.values()), checks
    flagged = {w: checks[str(layout.ms_path(w))]["flagged"] for w in IMAGED}
    assert flagged[NAN] > flagged[W[0]], f"the NaN chunk should have more flags: {flagged}"

    # --- nothing left running
    assert outcome.leftovers == [], "CASA processes were still running when the stream stopped"
    assert casa_processes(layout.dagster_home) == {} and casa_children(tmp_path) == []
    needle = str(layout.dagster_home).encode()
    leftovers = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and int(p.name) != os.getpid() and _mentions(p, needle)
    ]
    assert leftovers == [], "code server, run workers or daemon of the instance left running"
