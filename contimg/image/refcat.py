"""The reference catalogue for science QA: a CSV or a VizieR-format table read into plain arrays.

Two formats (``CONTIMG_REFERENCE_CATALOG``, ``contimg image --reference-catalog``):

- CSV with a header and at least ``ra_deg,dec_deg,flux_jy,spectral_index`` (ICRS degrees, flux at
  :data:`REF_FREQ_HZ`); other columns are ignored.
- A table astropy reads with units (VizieR's FITS, VOTable or CDS/MRT "ReadMe" formats, ECSV): the
  position columns (``RAJ2000``/``DEJ2000``, ``_RAJ2000``, ``RA_ICRS``, ``ra``, ...; sexagesimal strings
  accepted) and a flux column (``S1.4``, ``S1_4``, ``S1400``, ``Flux``, ``flux_jy``, ``Speak``/``Sint``...)
  whose unit (mJy, Jy) is read from the table; a spectral index column (``alpha``, ``spectral_index``,
  ``SpIdx``) is optional (default :data:`DEFAULT_SPECTRAL_INDEX`).

Self-contained (the calibration side has its own reader, ``contimg.calibrate.refcat``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ReferenceCatalog", "read_reference_catalog", "REF_FREQ_HZ", "DEFAULT_SPECTRAL_INDEX"]

REF_FREQ_HZ = 1.4e9  # the reference fluxes' frequency (NVSS, FIRST and the simulator's sky are at 1.4 GHz)
# A synchrotron source's typical index (Condon 1992): used for rows without one. Across our band
# (1.31-1.50 GHz) it moves a flux by at most 5 % from 1.4 GHz.
DEFAULT_SPECTRAL_INDEX = -0.7

_CSV_COLUMNS = ("ra_deg", "dec_deg", "flux_jy", "spectral_index")
_RA_NAMES = ("ra_deg", "RAJ2000", "_RAJ2000", "RA_ICRS", "RAdeg", "RA", "ra")
_DEC_NAMES = ("dec_deg", "DEJ2000", "_DEJ2000", "DE_ICRS", "DEdeg", "DEC", "Dec", "dec")
_FLUX_NAMES = ("flux_jy", "S1.4", "S1_4", "S1400", "Flux", "flux", "Sint", "Fint", "Speak", "Fpeak")
_ALPHA_NAMES = ("spectral_index", "alpha", "SpIdx", "Alpha")


@dataclass(frozen=True)
class ReferenceCatalog:
    """Reference sources: ICRS positions (deg), flux (Jy) at ``ref_freq_hz``, spectral index (S ~ nu**alpha)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    path: str
    ref_freq_hz: float = REF_FREQ_HZ

    def __len__(self) -> int:
        """The number of sources."""
        return int(self.ra_deg.size)

    def flux_at(self, freq_hz: float) -> np.ndarray:
        """Each source's flux (Jy) at ``freq_hz``, extrapolated with its spectral index."""
        return self.flux_jy * (float(freq_hz) / self.ref_freq_hz) ** self.spectral_index


def read_reference_catalog(path) -> ReferenceCatalog:
    """Read a reference catalogue (CSV or a VizieR-format table; module docstring).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ReferenceCatalog

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    ValueError
        If the file cannot be read as a table, lacks a position or flux column, or holds a value that
        is not a number, an out-of-range coordinate or a negative flux: the message names the file
        and the column (and the row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference catalogue {path}: no such file")
    if path.suffix.lower() == ".csv":
        table = _read_csv(path)
    else:
        table = _read_table(path)
    ra, dec, flux, alpha = table
    _check_range(path, "ra", ra, -360.0, 360.0)  # some catalogues write RA in (-180, 180]
    _check_range(path, "dec", dec, -90.0, 90.0)
    _check_range(path, "flux", flux, 0.0, np.inf)
    return ReferenceCatalog(ra % 360.0, dec, flux, alpha, str(path))


def _read_csv(path: Path):
    from astropy.io import ascii

    try:
        t = ascii.read(path, format="csv", fast_reader=False)
    except Exception as err:  # astropy raises several types for a malformed CSV
        raise ValueError(f"reference catalogue {path}: not a readable CSV ({err})") from err
    missing = [c for c in _CSV_COLUMNS if c not in t.colnames]
    if missing:
        raise ValueError(
            f"reference catalogue {path}: missing column(s) {', '.join(missing)}; a CSV needs "
            f"{','.join(_CSV_COLUMNS)} (extra columns allowed); it has {','.join(t.colnames)}"
        )
    return tuple(_floats(path, t, c) for c in _CSV_COLUMNS)


def _read_table(path: Path):
    from astropy import units as u
    from astropy.table import Table

    try:
        t = Table.read(path)
    except Exception as err:  # the format is guessed: any reader error means "not a table we can read"
        try:  # a CDS/MRT table
            t = Table.read(path, format="ascii.cds")
        except Exception:
            raise ValueError(
                f"reference catalogue {path}: not a table astropy can read (FITS, VOTable, ECSV, CDS) nor a CSV "
                f"named *.csv ({err})"
            ) from err
    ra_name = _first(t, _RA_NAMES)
    dec_name = _first(t, _DEC_NAMES)
    flux_name = _first(t, _FLUX_NAMES)
    for what, name, options in (
        ("RA", ra_name, _RA_NAMES),
        ("Dec", dec_name, _DEC_NAMES),
        ("flux", flux_name, _FLUX_NAMES),
    ):
        if name is None:
            raise ValueError(
                f"reference catalogue {path}: no {what} column (looked for {', '.join(options)}); "
                f"it has {', '.join(t.colnames)}"
            )
    ra, dec = _positions(path, t, ra_name, dec_name)
    flux = _floats(path, t, flux_name)
    unit = t[flux_name].unit
    if unit is not None:
        try:
            flux = flux * float(u.Unit(unit).to(u.Jy))
        except (u.UnitConversionError, ValueError) as err:
            raise ValueError(
                f"reference catalogue {path}: column {flux_name} has unit {unit}, not a flux density"
            ) from err
    alpha_name = _first(t, _ALPHA_NAMES)
    alpha = _floats(path, t, alpha_name) if alpha_name else np.full(flux.size, DEFAULT_SPECTRAL_INDEX)
    alpha = np.where(np.isfinite(alpha), alpha, DEFAULT_SPECTRAL_INDEX)  # VizieR leaves unknown indices blank
    return ra, dec, flux, alpha


def _first(table, names):
    return next((n for n in names if n in table.colnames), None)


def _positions(path: Path, t, ra_name: str, dec_name: str):
    """Degrees from numeric columns (degrees, or with an angle unit) or sexagesimal strings."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if t[ra_name].dtype.kind in "US" or t[dec_name].dtype.kind in "US":
        try:
            # FITS hands strings back as bytes: astype(str) decodes them
            ra_s, dec_s = np.asarray(t[ra_name]).astype(str), np.asarray(t[dec_name]).astype(str)
            c = SkyCoord(ra_s, dec_s, unit=(u.hourangle, u.deg))
        except ValueError as err:
            raise ValueError(
                f"reference catalogue {path}: columns {ra_name}/{dec_name} are not sexagesimal ({err})"
            ) from err
        return c.ra.deg, c.dec.deg
    out = []
    for name in (ra_name, dec_name):
        v = _floats(path, t, name)
        unit = t[name].unit
        if unit is not None and u.Unit(unit) != u.deg:
            try:
                v = v * float(u.Unit(unit).to(u.deg))
            except u.UnitConversionError as err:
                raise ValueError(f"reference catalogue {path}: column {name} has unit {unit}, not an angle") from err
        out.append(v)
    return out[0], out[1]


def _floats(path: Path, t, name: str) -> np.ndarray:
    col = t[name]
    if hasattr(col, "mask") and np.any(col.mask) and name not in _ALPHA_NAMES:
        row = int(np.flatnonzero(col.mask)[0])
        raise ValueError(f"reference catalogue {path}: column {name} is empty in data row {row + 1}")
    try:
        return np.asarray(col.filled(np.nan) if hasattr(col, "filled") else col, dtype=float)
    except (TypeError, ValueError):
        for i, v in enumerate(col):
            try:
                float(v)
            except (TypeError, ValueError):
                raise ValueError(
                    f"reference catalogue {path}: column {name}, data row {i + 1}: {str(v)!r} is not a number"
                ) from None
        raise


def _check_range(path: Path, what: str, v: np.ndarray, lo: float, hi: float) -> None:
    bad = ~np.isfinite(v) | (v < lo) | (v > hi)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"reference catalogue {path}: {what} {float(v[i])!r} in data row {i + 1} is outside [{lo}, {hi}]"
        )
