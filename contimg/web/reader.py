"""The catalogue, read-only, for many request threads at once.

One DuckDB database (the SQLite catalogue attached ``READ_ONLY`` through sqlite_scanner, views made) is
opened on first use and shared; each request gets its own cursor, DuckDB's thread-safe handle on the same
database. The scanner reads the SQLite file at every query, so a request sees what the pipeline committed
last (WAL mode: readers never block the writers). While the catalogue does not exist the service answers
with empty results, and it attaches the catalogue as soon as it appears.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from contimg.catalogue.duck import open_duckdb

__all__ = ["CatalogueReader"]


class CatalogueReader:
    """Read-only access to the catalogue at ``path``: ``with reader.cursor() as con`` (``con`` is None if absent)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._con = None
        self._lock = threading.Lock()

    def _base(self):
        if self._con is None:
            with self._lock:
                if self._con is None and self.path.exists():
                    self._con = open_duckdb(self.path)
        return self._con

    @contextmanager
    def cursor(self) -> Iterator:
        base = self._base()
        if base is None:
            yield None
            return
        cur = base.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
