"""The reference catalogue of the field around a calibrator (pure; no CASA).

A calibrator chunk sees the calibrator and every other source in the primary beam; left out of the
model, a 100 mJy source a degree away is a phase error that grows with baseline. The catalogue is the
one ``CONTIMG_REFERENCE_CATALOG`` or ``contimg calibrate --reference-catalog`` names:

- a CSV with columns ``ra_deg,dec_deg,flux_jy,spectral_index`` (ICRS degrees, 1.4 GHz Jy; other
  columns allowed, e.g. the simulator's ``sky.csv``; a missing spectral index column means -0.7;
  optional ``maj_arcsec,min_arcsec,pa_deg`` give a Gaussian's FWHM and position angle), or
- a VizieR-format table (TSV ``.tsv`` with ``#`` comments and a units/dashes line, or FITS) read by
  astropy: RA/Dec from ``RAJ2000``/``DEJ2000`` (or ``_RAJ2000``/``_DEJ2000``, ``RA_ICRS``/``DE_ICRS``,
  degrees), flux from ``S1.4`` (mJy; NVSS) or ``Flux``/``Fint``/``Fpeak`` (mJy), spectral index
  ``alpha`` or ``SpIdx`` if present.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_SPECTRAL_INDEX", "RefSource", "ReferenceCatalogError", "read_reference_catalog", "field_sources"]

DEFAULT_SPECTRAL_INDEX = -0.7  # the median index of 1.4 GHz sources (steep-spectrum synchrotron)
CSV_COLUMNS = ("ra_deg", "dec_deg", "flux_jy")
VIZIER_RA = ("RAJ2000", "_RAJ2000", "RA_ICRS", "RAdeg", "ra_deg")
VIZIER_DEC = ("DEJ2000", "_DEJ2000", "DE_ICRS", "DEdeg", "dec_deg")
VIZIER_FLUX_MJY = ("S1.4", "S1_4", "Flux", "Fint", "Fpeak")
VIZIER_ALPHA = ("alpha", "SpIdx", "spectral_index")


class ReferenceCatalogError(ValueError):
    """A reference catalogue that cannot be read: names the file and the column."""


@dataclass(frozen=True)
class RefSource:
    """One catalogue source: ICRS position (deg), 1.4 GHz flux (Jy), spectral index."""

    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float
    maj_arcsec: float = 0.0  # Gaussian FWHM along the major axis; 0: a point
    min_arcsec: float = 0.0
    pa_deg: float = 0.0  # east of north


def read_reference_catalog(path) -> list[RefSource]:
    """Every source of the catalogue at ``path`` (CSV, VizieR TSV or FITS; see the module's note).

    Raises
    ------
    ReferenceCatalogError
        If the file is missing, lacks a needed column (named), or holds a value that is not a finite
        number (file, column and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceCatalogError(f"{path}: no such reference catalogue")
    suffix = path.suffix.lower()
    if suffix in (".fits", ".fit", ".tsv", ".vot", ".xml"):
        return _read_vizier(path)
    return _read_csv(path)


def _number(path: Path, column: str, line: int, text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value):
        raise ReferenceCatalogError(f"{path}: line {line}, column {column!r}: {text!r} is not a finite number")
    return value


def _read_csv(path: Path) -> list[RefSource]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(line for line in fh if not line.startswith("#"))
        names = [n.strip() for n in (reader.fieldnames or [])]
        for col in CSV_COLUMNS:
            if col not in names:
                raise ReferenceCatalogError(
                    f"{path}: no column {col!r} (columns: {', '.join(names) or 'none'}); a CSV reference "
                    "catalogue needs ra_deg,dec_deg,flux_jy[,spectral_index]"
                )
        out = []
        for i, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            alpha = row.get("spectral_index")
            shape = [
                0.0 if row.get(c) in (None, "") else _number(path, c, i, row[c])
                for c in ("maj_arcsec", "min_arcsec", "pa_deg")  # optional: a Gaussian's size (the sky.csv's)
            ]
            out.append(
                RefSource(
                    _number(path, "ra_deg", i, row["ra_deg"]),
                    _number(path, "dec_deg", i, row["dec_deg"]),
                    _number(path, "flux_jy", i, row["flux_jy"]),
                    DEFAULT_SPECTRAL_INDEX if alpha in (None, "") else _number(path, "spectral_index", i, alpha),
                    *shape,
                )
            )
    return out


def _pick(path: Path, names: list[str], wanted: tuple[str, ...], what: str) -> str | None:
    for n in wanted:
        if n in names:
            return n
    if what:
        raise ReferenceCatalogError(
            f"{path}: no {what} column (looked for {', '.join(wanted)}; has {', '.join(names)})"
        )
    return None


def _read_vizier(path: Path) -> list[RefSource]:
    from astropy.table import Table

    try:
        fmt = "ascii.tab" if path.suffix.lower() == ".tsv" else None
        if fmt:
            lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            # VizieR's TSV: header, units line, dashes line, then rows
            body = [lines[0]] + [ln for ln in lines[1:] if not set(ln.replace("\t", "")) <= {"-", " "}]
            if len(body) > 1 and not _is_numeric_row(body[1]):
                body = [body[0]] + body[2:]  # the units line
            table = Table.read("\n".join(body), format="ascii.tab")
        else:
            table = Table.read(path)
    except Exception as err:  # astropy raises many types for a malformed file
        raise ReferenceCatalogError(f"{path}: not a readable VizieR table ({err})") from err
    names = list(table.colnames)
    ra_col = _pick(path, names, VIZIER_RA, "RA")
    dec_col = _pick(path, names, VIZIER_DEC, "Dec")
    flux_col = _pick(path, names, VIZIER_FLUX_MJY + ("flux_jy",), "1.4 GHz flux")
    alpha_col = _pick(path, names, VIZIER_ALPHA, "")
    scale = 1.0 if flux_col == "flux_jy" else 1e-3  # VizieR's radio fluxes are mJy
    out = []
    for i, row in enumerate(table, start=1):
        alpha = row[alpha_col] if alpha_col else None
        masked = alpha is None or np.ma.is_masked(alpha)
        out.append(
            RefSource(
                _number(path, ra_col, i, row[ra_col]),
                _number(path, dec_col, i, row[dec_col]),
                scale * _number(path, flux_col, i, row[flux_col]),
                DEFAULT_SPECTRAL_INDEX if masked else _number(path, alpha_col, i, alpha),
            )
        )
    return out


def _is_numeric_row(line: str) -> bool:
    try:
        float(line.split("\t")[0])
        return True
    except ValueError:
        return False


def field_sources(
    sources: list[RefSource],
    ra_deg: float,
    dec_deg: float,
    *,
    radius_deg: float,
    min_flux_jy: float,
    exclude_within_deg: float = 0.0,
) -> list[RefSource]:
    """The catalogue's sources within ``radius_deg`` of (ra, dec) with at least ``min_flux_jy``.

    Fluxes at 1.4 GHz, before the beam; those within ``exclude_within_deg`` (the calibrator itself)
    are left out.
    """
    if not sources:
        return []
    ra = np.radians([s.ra_deg for s in sources])
    dec = np.radians([s.dec_deg for s in sources])
    r0, d0 = np.radians(ra_deg), np.radians(dec_deg)
    cos_sep = np.sin(dec) * np.sin(d0) + np.cos(dec) * np.cos(d0) * np.cos(ra - r0)
    sep = np.degrees(np.arccos(np.clip(cos_sep, -1, 1)))
    flux = np.array([s.flux_jy for s in sources])
    keep = (sep <= radius_deg) & (sep > exclude_within_deg) & (flux >= min_flux_jy)
    return [s for s, k in zip(sources, keep, strict=True) if k]
