"""Copy an existing SQLite catalogue into a PostgreSQL one (moving a single-host install to cluster mode).

Every table of the schema is copied row for row, ids included, in one Postgres transaction: the copy is
complete or absent. The target must hold no rows yet (a second copy would duplicate history). Identity
counters are moved past the copied ids so the next row written gets a new one.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from contimg.catalogue.db import PgConnection, connect, schema_files, transaction

__all__ = ["schema_tables", "copy_sqlite_to_postgres", "BATCH_ROWS"]

BATCH_ROWS = 2000  # rows per executemany: bounded memory on a large sources table

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")


def schema_tables() -> list[str]:
    """The catalogue's tables in schema order (a table after the ones its foreign keys name)."""
    return [name for _file, text in schema_files() for name in _TABLE.findall(text)]


def _columns_sqlite(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]


def _columns_pg(conn: PgConnection, table: str) -> list[str]:
    cur = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [r[0] for r in cur]


def copy_sqlite_to_postgres(sqlite_path: Path, url: str) -> dict[str, int]:
    """Copy every table of the SQLite catalogue at ``sqlite_path`` into the Postgres database at ``url``.

    Returns ``{table: rows copied}``. Tables the SQLite file lacks (made by a newer release) copy as empty.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``sqlite_path``.
    RuntimeError
        If a target table already holds rows, or a table's row count differs after the copy; nothing is
        written then.
    ValueError
        If the SQLite file has a column the target table lacks (a catalogue newer than this release).
    """
    sqlite_path = Path(sqlite_path)
    if not sqlite_path.is_file():
        raise FileNotFoundError(f"no SQLite catalogue at {sqlite_path}")
    src = sqlite3.connect(f"file:{sqlite_path.absolute()}?mode=ro", uri=True, timeout=30)
    dst = connect(url=url)
    try:
        present = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        counts: dict[str, int] = {}
        with transaction(dst):
            for table in schema_tables():
                if dst.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
                    raise RuntimeError(f"the target catalogue's table {table} already holds rows: copy refused")
            for table in schema_tables():
                counts[table] = _copy_table(src, dst, table) if table in present else 0
    finally:
        src.close()
        dst.close()
    return counts


def _copy_table(src: sqlite3.Connection, dst: PgConnection, table: str) -> int:
    cols = _columns_sqlite(src, table)
    extra = set(cols) - set(_columns_pg(dst, table))
    if extra:
        raise ValueError(f"table {table} of the SQLite catalogue has columns {sorted(extra)} the target lacks")
    names = ", ".join(cols)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})"
    cur = src.execute(f"SELECT {names} FROM {table} ORDER BY rowid")
    n = 0
    while batch := cur.fetchmany(BATCH_ROWS):
        dst.executemany(insert, batch)
        n += len(batch)
    got = dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if got != n:
        raise RuntimeError(f"table {table}: {n} rows read, {got} in the target")
    if "id" in cols and n:
        # ids were copied as they were: move the identity past them so new rows do not collide
        dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    return n
