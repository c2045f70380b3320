"""The processing catalogue: SQLite written by the engine, DuckDB for queries.

``db`` opens the SQLite file (WAL, busy timeout, schema applied) and gives short transactions;
``duck`` opens DuckDB over it read-only. Each stage owns its own tables: a schema file in
``schema/`` and a writer module beside this one (``groups``, ``caltables``, ``images``, ...).
"""

from contimg.catalogue.db import connect, transaction

__all__ = ["connect", "transaction"]
