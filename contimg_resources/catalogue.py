"""Catalogue: the SQLite writer and DuckDB reader of the processing catalogue, as a resource."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dagster import ConfigurableResource

from contimg.catalogue import connect
from contimg.catalogue.duck import open_duckdb
from contimg.core.settings import Layout


class Catalogue(ConfigurableResource):
    """Where the catalogue lives: ``path`` or, unset, ``<state>/catalogue.sqlite3`` from the environment."""

    path: str | None = None

    def sqlite_path(self) -> Path:
        return Path(self.path) if self.path else Layout.from_env().catalogue

    def connect(self) -> sqlite3.Connection:
        """A short-lived writer connection (WAL, busy timeout); close it when done."""
        return connect(self.sqlite_path())

    def duckdb(self):
        """A read-only DuckDB connection with the catalogue attached as ``cat``."""
        return open_duckdb(self.sqlite_path())
