"""The reference catalogue (``CONTIMG_REFERENCE_CATALOG``): positions and 1.4 GHz fluxes of known sources."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ReferenceSources", "read_reference", "source_name"]

REQUIRED_COLUMNS = ("ra_deg", "dec_deg", "flux_jy", "spectral_index")
ID_COLUMNS = ("source_id", "name")  # the first present names the sources; else a name from the position
COMPACT_COLUMN = "compact"  # optional: 1/0 or true/false; only compact sources set the daily flux scale
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "t", "y"), ("0", "false", "no", "f", "n")


@dataclass(frozen=True)
class ReferenceSources:
    """Reference sources as arrays (one entry per source, catalogue order)."""

    source_id: np.ndarray  # str
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    compact: np.ndarray | None = None  # bool; None: the catalogue does not say (all may be references)

    def compact_ids(self) -> set[str] | None:
        """Ids of the sources the catalogue marks compact, or None when it has no ``compact`` column."""
        return (
            None if self.compact is None else {str(i) for i, c in zip(self.source_id, self.compact, strict=True) if c}
        )

    def __len__(self) -> int:
        """The number of sources."""
        return len(self.ra_deg)


def source_name(ra_deg: float, dec_deg: float) -> str:
    """A stable name from a position: ``Jhhh.hhhh+dd.dddd`` in degrees (0.36" steps)."""
    return f"J{ra_deg % 360.0:08.4f}{dec_deg:+08.4f}"


def read_reference(path) -> ReferenceSources:
    """Read a CSV reference catalogue with columns ``ra_deg,dec_deg,flux_jy,spectral_index``.

    Other columns are allowed; ``source_id`` or ``name``, when present, names the sources; ``compact``
    (1/0, true/false), when present, says which may set the daily flux scale.

    Raises
    ------
    ValueError
        If a required column is missing, a value is not a number, a position is out of range, or the
        catalogue has no rows or repeats a source id.
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"reference catalogue {path}: missing column(s) {', '.join(missing)} (has: {columns})")
        id_col = next((c for c in ID_COLUMNS if c in columns), None)
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    if not rows:
        raise ValueError(f"reference catalogue {path}: no sources")
    values = {}
    for col in REQUIRED_COLUMNS:
        try:
            values[col] = np.array([float(r[col]) for r in rows])
        except ValueError as err:
            raise ValueError(f"reference catalogue {path}: column {col}: {err}") from err
    ra, dec = values["ra_deg"], values["dec_deg"]
    if not (np.all(np.isfinite(ra)) and np.all(np.abs(dec) <= 90)):
        raise ValueError(f"reference catalogue {path}: positions must be finite with |dec_deg| <= 90")
    ids = np.array(
        [r[id_col] if id_col and r[id_col] else source_name(a, d) for r, a, d in zip(rows, ra, dec, strict=True)]
    )
    if len(set(ids)) != len(ids):
        raise ValueError(f"reference catalogue {path}: source ids are not unique")
    compact = None
    if COMPACT_COLUMN in columns:
        words = [r[COMPACT_COLUMN].lower() for r in rows]
        bad = sorted({w for w in words if w not in TRUE_WORDS + FALSE_WORDS})
        if bad:
            raise ValueError(f"reference catalogue {path}: column compact holds {bad}; allowed: 1/0, true/false")
        compact = np.array([w in TRUE_WORDS for w in words])
    return ReferenceSources(ids, ra, dec, values["flux_jy"], values["spectral_index"], compact)
