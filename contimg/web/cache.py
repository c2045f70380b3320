"""A small answer cache for the busiest routes (the status and the night page), safe with a writing pipeline.

An answer is reused while the catalogue has not changed -- the SQLite file and its write-ahead log keep
their size and modification time; every commit changes the log -- and for at most ``max_age_s`` anyway
(the status also reports free disk and ages that move with the clock). While the pipeline writes, an
answer is at most ``min_age_s`` old: people refreshing a page see the pipeline's state of a moment ago, and
fifty of them cost one set of queries per ``min_age_s``, not fifty. Concurrent misses of one key wait for a
single computation. A catalogue in Postgres (cluster mode) has no file to watch: there an answer lives
``min_age_s`` only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["AnswerCache", "MIN_AGE_S", "MAX_AGE_S"]

MIN_AGE_S = 1.0  # an answer is reused this long even while the catalogue changes
MAX_AGE_S = 30.0  # and never longer than this, even when it does not
MAX_ENTRIES = 256


class AnswerCache:
    """Answers keyed by route and parameters, reused while the catalogue at ``catalogue`` is unchanged.

    An entry lives at least ``min_age_s`` and at most ``max_age_s``; see the module docstring.
    """

    def __init__(self, catalogue: Path | None, *, min_age_s: float = MIN_AGE_S, max_age_s: float = MAX_AGE_S):
        self.catalogue = Path(catalogue) if catalogue is not None else None
        self.min_age_s, self.max_age_s = min_age_s, max_age_s
        self._entries: dict = {}
        self._locks: dict = {}
        self._lock = threading.Lock()

    def fingerprint(self) -> tuple:
        """(size, mtime) of the catalogue and its WAL; None for a file that does not exist, or no file at all."""
        if self.catalogue is None:
            return None
        out = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.catalogue}{suffix}")
                out.append((st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def get(self, key, compute: Callable):
        """The cached answer for ``key``, or ``compute()`` (stored) when it is stale; ``min_age_s`` 0 disables."""
        if self.min_age_s <= 0:
            return compute()
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            now, fp = time.monotonic(), self.fingerprint()
            entry = self._entries.get(key)
            if entry is not None:
                age = now - entry[1]
                if age < self.min_age_s or (fp is not None and entry[0] == fp and age < self.max_age_s):
                    return entry[2]
            value = compute()
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (fp, now, value)
            return value
