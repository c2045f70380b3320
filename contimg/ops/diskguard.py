"""Free-disk guard: hold new runs back while the products or scratch file system is nearly full.

The decision is a pure function of the free space; the ingest sensor turns a hold into a
``SkipReason`` carrying :attr:`GuardDecision.reason`. Changes of decision are recorded in the
catalogue (``disk_guard_events``) so that ``contimg status`` and SQL show when and why runs were held.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from contimg.catalogue.ops import record_guard_decision
from contimg.core.config import SETTINGS, read

__all__ = [
    "GuardDecision",
    "DEFAULT_MIN_FREE_GB",
    "min_free_gb_from_env",
    "free_space_gb",
    "check_free_space",
    "record_guard_event",
    "guard",
]

# 288 MS a day at 2-5 GB each is ~1 TB/day; 20 GB is a few chunks' worth of headroom (MS + image + scratch).
DEFAULT_MIN_FREE_GB = SETTINGS["CONTIMG_MIN_FREE_GB"].default  # 20.0
BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class GuardDecision:
    """The guard's verdict: ``hold`` new runs or not, why, and the free space seen per path (GB)."""

    hold: bool
    reason: str
    free_gb: dict = field(default_factory=dict)

    @property
    def decision(self) -> str:
        """``hold`` or ``ok``, as recorded in the catalogue's disk-guard events."""
        return "hold" if self.hold else "ok"


def min_free_gb_from_env(environ: dict | None = None) -> float:
    """``CONTIMG_MIN_FREE_GB`` (default :data:`DEFAULT_MIN_FREE_GB`).

    Raises
    ------
    SettingsError
        If the setting is not a non-negative number.
    """
    return float(read("CONTIMG_MIN_FREE_GB", environ))


def free_space_gb(paths: Iterable[Path], *, usage: Callable = shutil.disk_usage) -> dict:
    """Free space (GB, available to this user) of the file system holding each path.

    A path that does not exist yet is measured at its nearest existing parent.
    """
    out = {}
    for p in paths:
        probe = Path(p).absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        out[str(p)] = usage(probe).free / BYTES_PER_GB
    return out


def check_free_space(
    paths: Iterable[Path], min_free_gb: float, *, usage: Callable = shutil.disk_usage
) -> GuardDecision:
    """Hold when any of ``paths`` has less than ``min_free_gb`` GB free.

    Parameters
    ----------
    paths
        The products and scratch directories (any path on each file system).
    min_free_gb
        Threshold in GB (``CONTIMG_MIN_FREE_GB``); a threshold above the real free space simulates a full disk.
    usage
        ``shutil.disk_usage``-like callable (returns an object with ``.free`` in bytes).

    Returns
    -------
    GuardDecision
        ``hold`` with a reason naming the fullest path, or ok.
    """
    if min_free_gb < 0:
        raise ValueError(f"min_free_gb={min_free_gb} must be >= 0")
    free = free_space_gb(paths, usage=usage)
    if not free:
        raise ValueError("check_free_space needs at least one path")
    low = {p: gb for p, gb in free.items() if gb < min_free_gb}
    if low:
        worst = min(low, key=low.get)
        reason = f"holding new runs: {low[worst]:.1f} GB free on {worst}, below CONTIMG_MIN_FREE_GB={min_free_gb:g}" + (
            f" (and {len(low) - 1} more path(s))" if len(low) > 1 else ""
        )
        return GuardDecision(True, reason, free)
    worst = min(free, key=free.get)
    return GuardDecision(False, f"ok: at least {free[worst]:.1f} GB free (minimum {min_free_gb:g} GB)", free)


def record_guard_event(
    conn: sqlite3.Connection, decision: GuardDecision, min_free_gb: float, *, only_on_change: bool = True
) -> bool:
    """Record the decision in ``disk_guard_events``; by default only when it differs from the last one.

    Returns
    -------
    bool
        True when a row was written.
    """
    # no row for the first "ok": nothing has been held yet
    return record_guard_decision(
        conn, decision.decision, decision.reason, decision.free_gb, min_free_gb, only_on_change=only_on_change
    )


def guard(layout, conn: sqlite3.Connection, min_free_gb: float | None = None) -> GuardDecision:
    """Check the products and scratch file systems and record a change of decision: one call for the ingest sensor.

    Parameters
    ----------
    layout
        :class:`contimg.settings.Layout` (its ``products`` and ``scratch`` folders are checked).
    conn
        Catalogue connection (``disk_guard_events`` gets a row when the decision changes).
    min_free_gb
        Threshold; default ``CONTIMG_MIN_FREE_GB``.
    """
    threshold = min_free_gb_from_env() if min_free_gb is None else min_free_gb
    decision = check_free_space([layout.products, layout.scratch], threshold)
    record_guard_event(conn, decision, threshold)
    return decision
