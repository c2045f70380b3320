"""The catalogue, read-only, for many request threads at once.

One DuckDB database (the SQLite catalogue attached ``READ_ONLY`` through sqlite_scanner, views made) is
opened on first use and shared; each request gets its own cursor, DuckDB's thread-safe handle on the same
database. The scanner reads the SQLite file at every query, so a request sees what the pipeline committed
last (WAL mode: readers never block the writers). While the catalogue does not exist the service answers
with empty results, and it attaches the catalogue as soon as it appears (again if the file is replaced).

In cluster mode (``CONTIMG_CATALOGUE_URL``) the catalogue is the Postgres database, attached through
postgres_scanner once; every query is its own Postgres transaction, so it too sees the last commit. An
unreachable server is an error of the request (500), not an empty catalogue.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from contimg.catalogue.duck import open_duckdb

__all__ = ["CatalogueReader"]


class CatalogueReader:
    """Read-only access to the catalogue: ``with reader.cursor() as con`` (``con`` is None if absent).

    The catalogue is the SQLite file at ``path``, or the Postgres database at ``url`` when one is given.
    """

    def __init__(self, path: Path, *, url: str | None = None):
        self.path = Path(path)
        self.url = url
        self._con = None
        self._fd = None  # held open on the attached file: its inode cannot be reused while we compare
        self._lock = threading.Lock()

    def _replaced(self) -> bool:
        """Whether the attached file is no longer the one at ``path`` (removed, or replaced by a new catalogue)."""
        fd = self._fd
        try:
            st = os.stat(self.path)
            held = os.fstat(fd) if fd is not None else None
        except OSError:  # the file is gone, or another thread let go of it meanwhile
            return True
        return held is None or (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino)

    def _base(self):
        if self.url:
            with self._lock:
                if self._con is None:
                    self._con = open_duckdb(url=self.url)
                return self._con
        if self._con is not None and not self._replaced():
            return self._con
        with self._lock:
            if self._con is not None and self._replaced():
                # e.g. a new demo wiped the state folder: let go of the old file
                self._close()
            if self._con is None and self.path.exists():
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    self._con = open_duckdb(self.path)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            return self._con

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextmanager
    def cursor(self) -> Iterator:
        """A DuckDB cursor over the read-only catalogue, or None while there is no catalogue file."""
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
        """Close the shared DuckDB connection (it is opened again on the next cursor)."""
        with self._lock:
            self._close()
