"""Ingest-sensor tick time with 1k, 10k and 100k files in the ingest folder.

    python benchmarks/sensor_tick.py

Each size is a folder of empty, validly named subband files (complete chunks) and a catalogue in
which all but the newest chunk were already handled, the steady state of a running system. The
tick is ``contimg.ingest.scan_tick`` (what the sensor runs); the first tick on a fresh catalogue,
where every file is new and recorded, is timed too.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from contimg.catalogue import connect
from contimg.catalogue.db import transaction
from contimg.ingest.scan import IngestSettings, scan_tick


def make_folder(root: Path, n_files: int) -> None:
    t0 = datetime(2026, 1, 25)
    for i in range(n_files // 16):
        start = t0 + timedelta(seconds=309.24 * i)
        for sb in range(16):
            (root / f"{(start + timedelta(seconds=sb % 3)).strftime('%Y-%m-%dT%H:%M:%S')}_sb{sb:02d}.hdf5").touch()


def mark_handled(conn, root: Path, keep_last: int = 16) -> None:
    """Record all but the newest chunk as handled (a running system's steady state)."""
    names = sorted(p.name for p in root.iterdir())[:-keep_last]
    now = datetime.now().isoformat()
    with transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO subband_files (path, name, status, first_seen, updated_at) "
            "VALUES (?, ?, 'accepted', ?, ?)",
            [(str(root / n), n, now, now) for n in names],
        )


def main() -> None:
    print(f"{'files':>8} {'first tick (all new) s':>24} {'steady tick s':>14}")
    for n in (1_000, 10_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ingest"
            root.mkdir()
            make_folder(root, n)
            conn = connect(Path(tmp) / "cat.sqlite3")
            t = time.perf_counter()
            scan_tick(root, conn, {}, datetime(2026, 2, 1), IngestSettings())
            t_first = time.perf_counter() - t
            conn.close()
            conn = connect(Path(tmp) / "cat2.sqlite3")
            mark_handled(conn, root)
            cursor = {}
            times = []
            for _ in range(3):
                t = time.perf_counter()
                tick = scan_tick(root, conn, cursor, datetime(2026, 2, 1), IngestSettings())
                times.append(time.perf_counter() - t)
                cursor = tick.cursor
            conn.close()
            print(
                f"{n:>8} {t_first:>24.2f} {min(times):>14.3f}   "
                "(first tick requests nothing: sizes must be seen unchanged twice)"
            )


if __name__ == "__main__":
    main()
