"""Catalogue: the writer and DuckDB reader of the processing catalogue, as a resource.

The catalogue is the SQLite file by default, the Postgres database at ``CONTIMG_CATALOGUE_URL`` in cluster
mode (``contimg.catalogue.db.connect`` and ``open_duckdb`` read the setting).
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from contimg.catalogue import connect
from contimg.catalogue.db import Connection
from contimg.catalogue.duck import open_duckdb
from contimg.core.settings import Layout


class Catalogue(ConfigurableResource):
    """Where the SQLite catalogue lives: ``path`` or, unset, ``<state>/catalogue.sqlite3`` from the environment
    (unused when ``CONTIMG_CATALOGUE_URL`` names a Postgres catalogue)."""

    path: str | None = None

    def sqlite_path(self) -> Path:
        return Path(self.path) if self.path else Layout.from_env().catalogue

    def connect(self) -> Connection:
        """A short-lived writer connection (SQLite: WAL, busy timeout; Postgres: the writers' lock); close it."""
        return connect(self.sqlite_path())

    def duckdb(self):
        """A read-only DuckDB connection with the catalogue attached as ``cat``."""
        return open_duckdb(self.sqlite_path())
