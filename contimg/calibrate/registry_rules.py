"""The caltable registry's rules (pure; the SQLite storage is ``contimg.catalogue.registry``).

Which set applies at a time, the validity window around a calibrator transit, the order tables
are applied in, and which solved sets may ever be applied. A time with no valid set is an explicit
answer (None), never a silent reuse of stale tables.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["APPLY_ORDER", "DEFAULT_VALIDITY_H", "CalSet", "select_active", "set_status", "validity_window"]

DEFAULT_VALIDITY_H = 6.0  # +/- hours around the transit

# CASA applies tables in the order given: the delays first, then the bandpass solved with them
# applied, then the gains solved with both. Gaps leave room for a table type between them without
# renumbering registered sets (K took 5 below B's 10).
APPLY_ORDER = {"K": 5, "B": 10, "G": 20}


@dataclass(frozen=True)
class CalSet:
    """A registered set as the lookup needs it."""

    set_name: str
    valid_start_mjd: float
    valid_end_mjd: float
    status: str  # "active", "failed" or "retired"; only active sets are ever applied
    created_at: str  # ISO 8601 UTC: sorts as it reads


def select_active(sets: list[CalSet], mjd: float) -> CalSet | None:
    """The newest active set whose validity window holds ``mjd`` (None if there is none).

    Overlapping windows are normal (a day's transits of several calibrators): the newest solve
    wins, ties broken by name so the answer never depends on row order.
    """
    valid = [s for s in sets if s.status == "active" and s.valid_start_mjd <= mjd <= s.valid_end_mjd]
    return max(valid, key=lambda s: (s.created_at, s.set_name)) if valid else None


def validity_window(transit_mjd: float, validity_h: float = DEFAULT_VALIDITY_H) -> tuple[float, float]:
    """(start, end) MJD of a set solved at ``transit_mjd``: ``validity_h`` hours either side.

    Raises
    ------
    ValueError
        If ``validity_h`` is not positive (a set that is valid nowhere would be silently unused).
    """
    if not validity_h > 0:
        raise ValueError(f"validity_h must be a positive number of hours, got {validity_h!r}")
    return transit_mjd - validity_h / 24.0, transit_mjd + validity_h / 24.0


def set_status(quality_ok: bool) -> str:
    """A new set's status: ``active`` if it passed the quality thresholds, else ``failed`` (never applied)."""
    return "active" if quality_ok else "failed"
