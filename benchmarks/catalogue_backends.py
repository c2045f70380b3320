"""Catalogue writes and an operator query on both backends: the SQLite file beside PostgreSQL (cluster mode).

    python benchmarks/catalogue_backends.py [--writers 1,4] [--transactions 300]

Writers are processes doing ``record_timing`` (one short transaction each, as every stage writes), all at
once; the figure is transactions per second over the slowest writer. Both backends queue writers on one lock
(SQLite's database lock, Postgres' advisory lock), so more writers add waiting, not throughput. The query is
what ``contimg status`` opens and asks (DuckDB attach + views, chunks by state, recent failures) on a
small filled catalogue. The Postgres server is a throwaway local one with fsync off (``tests/pg_server.py``):
a production server with fsync on commits more slowly. A pipeline writes a few transactions per chunk run of
~50 s, so either backend is far from limiting; the figures say how far.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERY_REPEATS = 10
RANGE = ("2026-01-24T00:00", "2026-01-27T00:00")


def _writer(url: str, path: str | None, k: int, n_tx: int, barrier, out) -> None:
    from contimg.catalogue.db import connect
    from contimg.catalogue.ingest import record_timing

    conn = connect(path, url=url)
    barrier.wait()
    t0 = time.perf_counter()
    for i in range(n_tx):
        record_timing(conn, f"2026-01-25T00:{(i % 12) * 5:02d}", "image", float(i), run_id=f"{k}-{i}")
    out.put(time.perf_counter() - t0)
    conn.close()


def writes_per_s(url: str, path: Path | None, n_writers: int, n_tx: int) -> float:
    """Transactions per second of ``n_writers`` processes writing ``n_tx`` each at once."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(n_writers), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, str(path) if path else None, k, n_tx, barrier, out))
        for k in range(n_writers)
    ]
    for p in procs:
        p.start()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return n_writers * n_tx / max(times)


def status_query_s(url: str, path: Path | None) -> float:
    """Median time to open the catalogue through DuckDB and answer two of ``contimg status``'s queries."""
    from contimg.catalogue import queries as q

    times = []
    for _ in range(QUERY_REPEATS):
        t0 = time.perf_counter()
        with q.reading(path, url=url) as con:
            q.groups_by_state(con, *RANGE)
            q.recent_failures(con, *RANGE, 20)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="1,4", help="comma-separated numbers of writer processes")
    parser.add_argument("--transactions", type=int, default=300, help="transactions per writer")
    args = parser.parse_args(argv)
    from contimg.catalogue.db import connect
    from tests.catalogue_backends import new_database
    from tests.catalogue_fill import fill
    from tests.pg_server import postgres_server

    with postgres_server("postgres_admin") as pg, tempfile.TemporaryDirectory() as tmp:
        print(f"{'writers':>8} {'sqlite tx/s':>12} {'postgres tx/s':>14}")
        for n in (int(x) for x in args.writers.split(",")):
            lite = Path(tmp) / f"w{n}.sqlite3"
            connect(lite, url="").close()
            url = new_database(pg)
            connect(url=url).close()
            lite_rate = writes_per_s("", lite, n, args.transactions)
            pg_rate = writes_per_s(url, None, n, args.transactions)
            print(f"{n:>8} {lite_rate:>12.0f} {pg_rate:>14.0f}")
        lite = Path(tmp) / "filled.sqlite3"
        url = new_database(pg)
        for conn in (connect(lite, url=""), connect(url=url)):
            fill(conn)
            conn.close()
        t_lite, t_pg = status_query_s("", lite), status_query_s(url, None)
        print(f"catalogue: status query {t_lite * 1e3:.0f} ms on sqlite, {t_pg * 1e3:.0f} ms on postgres (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
