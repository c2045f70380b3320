"""Fixtures running a catalogue test on both backends: the SQLite file and a real PostgreSQL server.

``catalogue_backend`` (parametrised ``sqlite``, ``postgres``) sets ``CONTIMG_CATALOGUE_URL`` to a fresh,
empty database on one server per test session for the Postgres case, so ``contimg.catalogue.connect`` and
the DuckDB reader go there; the test itself is unchanged. Import the fixtures into a test module
(``from tests.catalogue_backends import catalogue_backend_fixture, pg_catalogue_server_fixture  # noqa: F401``;
the functions carry a ``_fixture`` suffix so a test's argument of the fixture's name does not shadow them).
"""

from __future__ import annotations

import uuid

import pytest

from tests.pg_server import PgServer, postgres_server

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session", name="pg_catalogue_server")
def pg_catalogue_server_fixture():
    """One throwaway PostgreSQL server for the session's catalogue tests (a database per test)."""
    with postgres_server("postgres_admin") as pg:
        yield pg


def new_database(server: PgServer) -> str:
    """Create an empty database on ``server``; its libpq URL."""
    import psycopg2

    name = f"contimg_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=server.dbname)
    admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
    finally:
        admin.close()
    return f"postgresql://{server.user}@{server.host}:{server.port}/{name}"


@pytest.fixture(params=BACKENDS, name="catalogue_backend")
def catalogue_backend_fixture(request, monkeypatch) -> str | None:
    """The catalogue's backend for this test: None (SQLite) or the Postgres URL now in CONTIMG_CATALOGUE_URL."""
    if request.param == "sqlite":
        monkeypatch.delenv("CONTIMG_CATALOGUE_URL", raising=False)
        return None
    url = new_database(request.getfixturevalue("pg_catalogue_server"))
    monkeypatch.setenv("CONTIMG_CATALOGUE_URL", url)
    return url
