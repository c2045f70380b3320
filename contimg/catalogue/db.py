"""SQLite side of the catalogue: connection, schema, short transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

__all__ = ["connect", "transaction", "apply_schema", "BUSY_TIMEOUT_S"]

BUSY_TIMEOUT_S = 30.0  # writers wait this long for a lock before failing


def apply_schema(conn: sqlite3.Connection) -> None:
    """Create every table, index and trigger of ``schema/*.sql`` (idempotent, in file-name order)."""
    schema_dir = resources.files("contimg.catalogue").joinpath("schema")
    for entry in sorted(schema_dir.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".sql"):
            conn.executescript(entry.read_text())


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the catalogue at ``path`` in WAL mode with a busy timeout, schema applied.

    Raises
    ------
    FileNotFoundError
        If ``create`` is false and the catalogue does not exist.
    """
    path = Path(path)
    if not create and not path.exists():
        raise FileNotFoundError(f"no catalogue at {path} (set CONTIMG_STATE_DIR or CONTIMG_ROOT?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so writers queue on the lock early.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    apply_schema(conn)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction: committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
