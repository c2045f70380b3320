"""DuckDB side of the catalogue: read-only SQL over the SQLite file or, in cluster mode, the Postgres database.

DuckDB cannot download extensions here, so sqlite_scanner and postgres_scanner are loaded from the
``duckdb-extension-sqlite-scanner`` / ``duckdb-extension-postgres-scanner`` wheels by path, with autoinstall
and autoload off. The catalogue is attached read-only as ``cat`` (SQLite file, or the database at
``CONTIMG_CATALOGUE_URL``) and the views in ``views/*.sql`` are created in the connection's own in-memory
database, so ``SELECT * FROM status_per_day`` just works on either.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb

__all__ = ["open_duckdb", "sqlite_scanner_path", "postgres_scanner_path"]


def _extension_path(module: str, wheel: str, name: str) -> Path:
    import importlib

    pkg = importlib.import_module(module)
    version = duckdb.__version__
    path = Path(pkg.__file__).parent / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise FileNotFoundError(
            f"{name} for DuckDB v{version} not found at {path}: "
            f"duckdb and {wheel} must be the same release (pinned in pyproject.toml)"
        )
    return path


def sqlite_scanner_path() -> Path:
    """The sqlite_scanner binary shipped in the installed wheel, matching the installed DuckDB."""
    return _extension_path("duckdb_extension_sqlite_scanner", "duckdb-extension-sqlite-scanner", "sqlite_scanner")


def postgres_scanner_path() -> Path:
    """The postgres_scanner binary shipped in the installed wheel, matching the installed DuckDB."""
    return _extension_path("duckdb_extension_postgres_scanner", "duckdb-extension-postgres-scanner", "postgres_scanner")


def open_duckdb(catalogue_path: Path | None = None, *, url: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the catalogue attached read-only as ``cat`` and the views made.

    The catalogue is the Postgres database at ``url`` (default ``CONTIMG_CATALOGUE_URL``) when one is
    given, else the SQLite file ``catalogue_path``.

    A catalogue written by an older release lacks the tables a newer release's views read (``lightcurves``
    reads ``photometry``): then the schema is brought up to date once through the writer (it only
    creates the missing tables, empty; no row changes) and the views are made again.

    Raises
    ------
    FileNotFoundError
        If the catalogue file does not exist (SQLite).
    duckdb.Error
        If the Postgres server cannot be reached.
    """
    from contimg.catalogue.db import catalogue_url, connect

    url = url if url is not None else catalogue_url()
    if url:
        try:
            return _attach_with_views(url=url)
        except duckdb.CatalogException:
            connect(url=url).close()  # applies the current schema: CREATE TABLE IF NOT EXISTS ...
            return _attach_with_views(url=url)
    if catalogue_path is None:
        raise ValueError("no catalogue: give the SQLite file's path or set CONTIMG_CATALOGUE_URL")
    catalogue_path = Path(catalogue_path)
    if not catalogue_path.exists():
        raise FileNotFoundError(f"no catalogue at {catalogue_path}")
    try:
        return _attach_with_views(catalogue_path)
    except duckdb.CatalogException:
        connect(catalogue_path, url="").close()  # applies the current schema: CREATE TABLE IF NOT EXISTS ...
        return _attach_with_views(catalogue_path)


def _attach_with_views(catalogue_path: Path | None = None, *, url: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        if url:
            con.execute(f"LOAD '{postgres_scanner_path()}'")
            quoted = url.replace("'", "''")  # ATTACH takes no bound parameters
            con.execute(f"ATTACH '{quoted}' AS cat (TYPE postgres, READ_ONLY)")
        else:
            con.execute(f"LOAD '{sqlite_scanner_path()}'")
            quoted = str(catalogue_path.absolute()).replace("'", "''")
            con.execute(f"ATTACH '{quoted}' AS cat (TYPE sqlite, READ_ONLY)")
        views = resources.files("contimg.catalogue").joinpath("views")
        if views.is_dir():
            for entry in sorted(views.iterdir(), key=lambda p: p.name):
                if entry.name.endswith(".sql"):
                    con.execute(entry.read_text())
    except BaseException:
        con.close()
        raise
    return con
