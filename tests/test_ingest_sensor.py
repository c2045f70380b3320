"""The ingest sensor over a real ingest folder, a real catalogue and a real Dagster instance."""

import json
import shutil
import sqlite3

import pytest
from dagster import DagsterInstance, build_sensor_context

from contimg.sim import simulate

START = "2026-01-25T00:00:00"


@pytest.fixture(scope="module")
def sim_chunks(tmp_path_factory):
    """Three small chunks: chunk 1 has a duplicate and a misnamed subband, chunk 2 misses four subbands."""
    out = tmp_path_factory.mktemp("sim")
    simulate(
        out,
        START,
        n_chunks=3,
        n_antennas=6,
        n_chan_per_subband=4,
        n_integrations=2,
        seed=2,
        faults="duplicate@1:4,badname@1:9,missing@2:0,missing@2:1,missing@2:2,missing@2:3",
    )
    chunks = {}
    for p in sorted(out.glob("*.hdf5")):
        chunks.setdefault(0 if p.name < "2026-01-25T00:05" else (1 if p.name < "2026-01-25T00:10" else 2), []).append(p)
    return chunks


@pytest.fixture
def env(layout, monkeypatch):
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", "0")
    from contimg_assets.definitions import defs

    instance = DagsterInstance.ephemeral()
    sensor = defs.get_sensor_def("ingest_sensor")
    resources = {"storage": defs.resources["storage"], "catalogue": defs.resources["catalogue"]}

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
        return sensor.evaluate_tick(ctx)

    return layout, tick


def rows(layout, sql):
    con = sqlite3.connect(layout.catalogue)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def copy(files, dest):
    for f in files:
        shutil.copyfile(f, dest / f.name)


def test_one_request_per_complete_stable_group_and_never_twice(env, sim_chunks):
    layout, tick = env
    chunk0 = sim_chunks[0]
    copy(chunk0[:-1], layout.ingest)
    # the last subband is still being written under its temporary name
    (layout.ingest / chunk0[-1].name.replace(".hdf5", "_incomplete.hdf5")).write_bytes(b"partial")
    r = tick(None)
    assert r.run_requests == [], "15 subbands: wait"
    copy(chunk0[-1:], layout.ingest)
    (layout.ingest / chunk0[-1].name.replace(".hdf5", "_incomplete.hdf5")).unlink()
    r = tick(r.cursor)
    assert r.run_requests == [], "sizes seen once: not yet stable"
    r = tick(r.cursor)
    assert [q.partition_key for q in r.run_requests] == ["2026-01-25T00:00"]
    first_key = r.run_requests[0].run_key
    assert r.run_requests[0].run_key.startswith("2026-01-25T00:00:")
    # nothing twice: next tick, and after a restart with the cursor lost
    assert tick(r.cursor).run_requests == []
    assert tick(None).run_requests == []
    assert rows(layout, "SELECT state, n_subbands, run_key FROM groups") == [("requested", 16, first_key)]
    assert rows(layout, "SELECT count(*) FROM subband_files WHERE status = 'accepted'") == [(16,)]


def test_growing_file_is_not_taken_until_it_stops_growing(env, sim_chunks):
    layout, tick = env
    chunk0 = sim_chunks[0]
    copy(chunk0[:-1], layout.ingest)
    last = layout.ingest / chunk0[-1].name
    data = chunk0[-1].read_bytes()
    last.write_bytes(data[: len(data) // 3])  # a copy in progress under the final name (rsync without temp)
    r = tick(None)
    assert r.run_requests == []
    last.write_bytes(data[: 2 * len(data) // 3])
    r = tick(r.cursor)
    assert r.run_requests == [], "size changed since the last tick"
    last.write_bytes(data)
    r = tick(r.cursor)
    assert r.run_requests == [], "size changed since the last tick"
    r = tick(r.cursor)
    assert len(r.run_requests) == 1


def test_late_duplicate_and_misnamed_files_are_recorded_with_reasons(env, sim_chunks, monkeypatch):
    layout, tick = env
    monkeypatch.setenv("CONTIMG_GRACE_MINUTES", "0")  # chunk 1 lacks sb09 (misnamed): run it with 15
    copy(sim_chunks[0], layout.ingest)
    r = tick(None)
    r = tick(r.cursor)
    assert len(r.run_requests) == 1
    copy(sim_chunks[1], layout.ingest)
    # a late re-send of chunk 0's sb03 with a later stamp
    from datetime import timedelta

    from contimg.ingest.grouping import parse_name

    stamp, sb = parse_name(sim_chunks[0][3].name)
    late = layout.ingest / f"{(stamp + timedelta(seconds=7)).isoformat()}_sb{sb:02d}.hdf5"
    shutil.copyfile(sim_chunks[0][3], late)
    r = tick(r.cursor)
    r = tick(r.cursor)
    assert [q.partition_key for q in r.run_requests] == ["2026-01-25T00:05"]
    status = dict(rows(layout, "SELECT status, count(*) FROM subband_files GROUP BY status"))
    assert status.get("duplicate") == 1 and status.get("misnamed") == 1 and status.get("late", 0) >= 1
    reasons = dict(
        rows(layout, "SELECT status, reason FROM subband_files WHERE status IN ('duplicate', 'misnamed', 'late')")
    )
    assert "already provided by" in reasons["duplicate"]
    assert "does not parse" in reasons["misnamed"]
    assert "after chunk 2026-01-25T00:00" in reasons["late"]


def test_grace_period_partial_run_and_incomplete_failure(env, sim_chunks, monkeypatch):
    layout, tick = env
    monkeypatch.setenv("CONTIMG_GRACE_MINUTES", "0")
    copy(sim_chunks[1], layout.ingest)  # 15 subbands (sb09 misnamed) + a duplicate
    copy(sim_chunks[2], layout.ingest)  # 12 subbands
    monkeypatch.setenv("CONTIMG_MIN_SUBBANDS", "13")
    r = tick(None)
    r = tick(r.cursor)
    assert [q.partition_key for q in r.run_requests] == ["2026-01-25T00:05"]
    groups = dict(rows(layout, "SELECT window_key, state FROM groups"))
    assert groups == {"2026-01-25T00:05": "requested", "2026-01-25T00:10": "incomplete"}
    error = rows(layout, "SELECT error FROM groups WHERE window_key = '2026-01-25T00:10'")[0][0]
    assert "12/16" in error and "minimum 13" in error
    assert json.loads(
        rows(layout, "SELECT missing_subbands FROM groups WHERE window_key = '2026-01-25T00:05'")[0][0]
    ) == [9]


def test_low_disk_holds_new_runs_with_a_visible_reason(env, sim_chunks, monkeypatch):
    layout, tick = env
    copy(sim_chunks[0], layout.ingest)
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", "1e9")
    r = tick(None)
    r = tick(r.cursor)
    assert r.run_requests == [] and "holding new runs" in r.skip_message
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", "0")
    r = tick(r.cursor)
    r = tick(r.cursor)
    assert len(r.run_requests) == 1
