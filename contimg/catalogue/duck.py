"""DuckDB side of the catalogue: read-only SQL over the SQLite file, no network.

DuckDB cannot download extensions here, so sqlite_scanner is loaded from the
``duckdb-extension-sqlite-scanner`` wheel by path, with autoinstall and autoload off.
The catalogue is attached as ``cat`` and the views in ``views/*.sql`` are created in the
connection's own in-memory database, so ``SELECT * FROM status_per_day`` just works.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

__all__ = ["open_duckdb", "sqlite_scanner_path"]


def sqlite_scanner_path() -> Path:
    """The sqlite_scanner binary shipped in the installed wheel, matching the installed DuckDB."""
    import duckdb_extension_sqlite_scanner as pkg

    version = duckdb.__version__
    path = Path(pkg.__file__).parent / "extensions" / f"v{version}" / "sqlite_scanner.duckdb_extension"
    if not path.exists():
        raise FileNotFoundError(
            f"sqlite_scanner for DuckDB v{version} not found at {path}: "
            "duckdb and duckdb-extension-sqlite-scanner must be the same release (pinned in pyproject.toml)"
        )
    return path


def open_duckdb(catalogue_path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the SQLite catalogue attached read-only as ``cat`` and the views made.

    A catalogue written by an older release lacks the tables a newer release's views read (``lightcurves``
    reads ``photometry``): then the schema is brought up to date once through the SQLite writer (it only
    creates the missing tables, empty; no row changes) and the views are made again.

    Raises
    ------
    FileNotFoundError
        If the catalogue file does not exist.
    """
    catalogue_path = Path(catalogue_path)
    if not catalogue_path.exists():
        raise FileNotFoundError(f"no catalogue at {catalogue_path}")
    try:
        return _attach_with_views(catalogue_path)
    except duckdb.CatalogException:
        from contimg.catalogue.db import connect

        connect(catalogue_path).close()  # applies the current schema: CREATE TABLE IF NOT EXISTS ...
        return _attach_with_views(catalogue_path)


def _attach_with_views(catalogue_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"LOAD '{sqlite_scanner_path()}'")
    quoted = str(catalogue_path.absolute()).replace("'", "''")  # ATTACH takes no bound parameters
    con.execute(f"ATTACH '{quoted}' AS cat (TYPE sqlite, READ_ONLY)")
    views = resources.files("contimg.catalogue").joinpath("views")
    try:
        if views.is_dir():
            for entry in sorted(views.iterdir(), key=lambda p: p.name):
                if entry.name.endswith(".sql"):
                    con.execute(entry.read_text())
    except duckdb.CatalogException:
        con.close()
        raise
    return con
