"""The free-disk guard: low space (a threshold above the real free space) holds with a recorded reason,
and returning space releases it. Free space is checked against os.statvfs, independently of shutil."""

import json
import os
import sqlite3

import pytest

from contimg.catalogue import connect
from contimg.catalogue.ops import last_guard_event
from contimg.cli import main
from contimg.ops.diskguard import DEFAULT_MIN_FREE_GB, check_free_space, min_free_gb_from_env, record_guard_event

# statvfs and disk_usage are read a moment apart while other processes write: allow 0.5 GB of drift
FREE_DRIFT_GB = 0.5


def statvfs_free_gb(path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1e9


def test_free_space_agrees_with_statvfs(layout):
    d = check_free_space([layout.products, layout.scratch], 0.0)
    assert not d.hold and d.decision == "ok"
    assert d.free_gb[str(layout.products)] == pytest.approx(statvfs_free_gb(layout.products), abs=FREE_DRIFT_GB)
    # a folder that does not exist yet is measured on the file system that will hold it
    d = check_free_space([layout.products / "mosaics" / "later"], 0.0)
    assert d.free_gb[str(layout.products / "mosaics" / "later")] == pytest.approx(
        statvfs_free_gb(layout.products), abs=FREE_DRIFT_GB
    )


def test_low_space_holds_with_a_recorded_reason_and_releases(layout, monkeypatch, capsys):
    conn = connect(layout.catalogue)
    real = statvfs_free_gb(layout.products)
    full = real + 1000.0  # a threshold 1 TB above what is free: the disk looks full
    d = check_free_space([layout.products, layout.scratch], full)
    assert d.hold
    assert d.reason.startswith("holding new runs: ") and str(layout.products) in d.reason
    assert f"below CONTIMG_MIN_FREE_GB={full:g}" in d.reason
    assert record_guard_event(conn, d, full)
    assert not record_guard_event(conn, check_free_space([layout.products], full), full)  # still held: no new row

    # operators see the hold in `contimg status`
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", str(full))
    assert main(["status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["disk_guard"]["hold"] is True and info["disk_guard"]["last_event"]["decision"] == "hold"
    assert info["disk_guard"]["last_event"]["reason"] == d.reason

    # space returns: the guard lets runs go, and the release is recorded too
    monkeypatch.setenv("CONTIMG_MIN_FREE_GB", "0")
    ok = check_free_space([layout.products, layout.scratch], min_free_gb_from_env())
    assert not ok.hold
    assert record_guard_event(conn, ok, 0.0)
    rows = (
        sqlite3.connect(layout.catalogue)
        .execute("SELECT decision, min_free_gb, free_gb FROM disk_guard_events ORDER BY id")
        .fetchall()
    )
    assert [r[0] for r in rows] == ["hold", "ok"] and rows[0][1] == pytest.approx(full)
    assert json.loads(rows[0][2])[str(layout.products)] == pytest.approx(real, abs=FREE_DRIFT_GB)
    assert last_guard_event(conn)["decision"] == "ok"
    conn.close()


def test_first_ok_is_not_recorded(layout):
    conn = connect(layout.catalogue)
    assert not record_guard_event(conn, check_free_space([layout.products], 0.0), 0.0)
    assert last_guard_event(conn) is None
    conn.close()


def test_threshold_setting():
    assert min_free_gb_from_env({}) == DEFAULT_MIN_FREE_GB
    assert min_free_gb_from_env({"CONTIMG_MIN_FREE_GB": "5.5"}) == 5.5
    with pytest.raises(ValueError, match="CONTIMG_MIN_FREE_GB='lots'"):
        min_free_gb_from_env({"CONTIMG_MIN_FREE_GB": "lots"})
    with pytest.raises(ValueError, match="must be >= 0"):
        check_free_space(["/"], -1)
