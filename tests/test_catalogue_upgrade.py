"""A catalogue written by an older release (fewer tables) still opens for DuckDB's read-only views."""

import sqlite3

from contimg.catalogue.db import connect
from contimg.catalogue.duck import open_duckdb


def test_views_open_on_a_catalogue_without_the_newer_tables(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    connect(path).close()
    # what an older release left: no photometry tables, one group row that must survive the upgrade
    raw = sqlite3.connect(path)
    raw.execute(
        "INSERT INTO groups (window_key, start_utc, state, updated_at) "
        "VALUES ('2026-01-25T00:00', '2026-01-25T00:01:02', 'imaged', '2026-01-25T00:20:00')"
    )
    for table in ("photometry", "flux_scale", "variables"):
        raw.execute(f"DROP TABLE {table}")
    raw.commit()
    raw.close()

    con = open_duckdb(path)
    try:
        assert con.execute("SELECT count(*) FROM lightcurves").fetchone() == (0,)
        assert con.execute("SELECT window_key, state FROM cat.groups").fetchall() == [("2026-01-25T00:00", "imaged")]
    finally:
        con.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"photometry", "flux_scale", "variables"} <= tables
