"""The processing catalogue: SQLite (or, in cluster mode, PostgreSQL) written by the engine, DuckDB for queries.

``db`` opens the SQLite file (WAL, busy timeout, schema applied), or the Postgres database of
``CONTIMG_CATALOGUE_URL`` behind the same interface, and gives short transactions; ``duck`` opens DuckDB
over either read-only; ``copy`` moves a SQLite catalogue into Postgres. Each stage owns its own tables: a
schema file in ``schema/`` and a writer module beside this one (``groups``, ``caltables``, ``images``, ...).
"""

from contimg.catalogue.db import connect, transaction

__all__ = ["connect", "transaction"]
