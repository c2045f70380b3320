"""Pure ingest rules: names, windows, grouping with jitter, readiness decisions."""

from datetime import datetime, timedelta

from contimg.ingest.grouping import FileEntry, decide, group_files, is_temporary, parse_name, window_key


def entries(stamps_sbs, size=100):
    return [FileEntry(f"{s}_sb{sb:02d}.hdf5", size, 0.0) for s, sb in stamps_sbs]


def test_names_and_windows():
    assert parse_name("2026-01-25T00:04:58_sb07.hdf5") == (datetime(2026, 1, 25, 0, 4, 58), 7)
    for bad in (
        "2026-01-25T00:04:58_sb16.hdf5",
        "2026-01-25T00:04:58_sb7.hdf5",
        "2026-01-25T00:04:58_subband07.hdf5",
        "2026-13-25T00:04:58_sb07.hdf5",
        "x_sb07.hdf5",
    ):
        assert parse_name(bad) is None, bad
    assert is_temporary("2026-01-25T00:04:58_sb07_incomplete.hdf5") and is_temporary(".2026-01-25T00:04:58_sb07.hdf5")
    assert not is_temporary("2026-01-25T00:04:58_sb07.hdf5")
    assert window_key(datetime(2026, 1, 25, 0, 4, 59)) == "2026-01-25T00:00"
    assert window_key(datetime(2026, 1, 25, 0, 5, 0)) == "2026-01-25T00:05"


def test_jittered_subbands_form_one_group_across_a_window_boundary():
    # a chunk starting 00:04:58 whose later subbands are stamped 00:05:01: one group, window 00:00
    t0 = datetime(2026, 1, 25, 0, 4, 58)
    stamps = [((t0 + timedelta(seconds=sb % 4)).isoformat(), sb) for sb in range(16)]
    nxt = [((t0 + timedelta(seconds=309 + sb % 3)).isoformat(), sb) for sb in range(16)]
    groups = group_files(entries(stamps + nxt + [((t0 + timedelta(seconds=2)).isoformat(), 5)]))
    assert [g.window for g in groups] == ["2026-01-25T00:00", "2026-01-25T00:10"]
    assert groups[0].complete and groups[1].complete
    assert [e.name for e in groups[0].duplicates] == ["2026-01-25T00:05:00_sb05.hdf5"]


def test_decisions():
    t0 = datetime(2026, 1, 25)
    full = group_files(entries([(t0.isoformat(), sb) for sb in range(16)]))[0]
    part = group_files(entries([(t0.isoformat(), sb) for sb in range(13)]))[0]
    few = group_files(entries([(t0.isoformat(), sb) for sb in range(5)]))[0]
    kw = dict(first_seen=t0, grace_s=600, min_subbands=12)
    assert decide(full, stable=True, now=t0, **kw).action == "run"
    assert decide(full, stable=False, now=t0, **kw).action == "wait"
    assert decide(part, stable=True, now=t0 + timedelta(seconds=599), **kw).action == "wait"
    late = t0 + timedelta(seconds=601)
    d = decide(part, stable=True, now=late, **kw)
    assert d.action == "run" and "[13, 14, 15]" in d.reason
    d = decide(few, stable=True, now=late, **kw)
    assert d.action == "incomplete" and "5/16" in d.reason
