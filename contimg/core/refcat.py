"""The reference catalogue: the one reader of ``CONTIMG_REFERENCE_CATALOG`` / ``--reference-catalog``.

Calibration (field sources in the model), imaging (science QA's cross-match) and photometry (forced
fluxes, the daily flux scale) all read it through :func:`read_reference_catalog` into one columnar
:class:`ReferenceCatalog`. Formats, chosen by the file's suffix (and, without a known one, its content):

- CSV (``.csv``, or any text whose first line has a comma): a header with at least
  ``ra_deg,dec_deg,flux_jy`` (ICRS degrees, Jy at :data:`REF_FREQ_HZ`), exactly so named; optional
  ``spectral_index`` (S ~ nu**alpha), ``maj_arcsec,min_arcsec,pa_deg`` (a Gaussian's FWHM and position
  angle east of north; blank or absent: a point), ``compact`` (1/0, true/false, yes/no, t/f, y/n) and
  ``source_id`` or ``name`` (the first present names the sources); other columns are ignored, lines starting
  with ``#`` are comments. The simulator's ``sky.csv`` is one.
- A VizieR-format table: TSV (``.tsv``: ``#`` comments, header, units line, dashes line, rows), or anything
  astropy reads (FITS, VOTable, ECSV, CDS/MRT). Positions from ``ra_deg``/``dec_deg``, ``RAJ2000``/``DEJ2000``,
  ``_RAJ2000``/``_DEJ2000``, ``RA_ICRS``/``DE_ICRS``, ``RAdeg``/``DEdeg``, ``RA``/``DEC``, ``ra``/``dec``
  (degrees, another angle unit, or sexagesimal strings); flux from ``flux_jy``, ``S1.4``, ``S1_4``, ``S1400``,
  ``Flux``, ``flux``, ``Sint``, ``Fint``, ``Speak``, ``Fpeak`` in the column's unit, or, without one, Jy for
  ``flux_jy`` and mJy for the others (VizieR's radio fluxes are mJy); spectral index from ``spectral_index``,
  ``alpha``, ``SpIdx``, ``Alpha``; the optional CSV columns above by the same names.

Choices where the three former readers disagreed:

- A missing ``spectral_index`` column, or a blank (masked, NaN in a table) value, means
  :data:`DEFAULT_SPECTRAL_INDEX`, in every format (NVSS and most 1.4 GHz catalogues have none; across the band
  it moves a flux by at most 5 %). A value that is not a number is an error.
- RA may be given in [-360, 360] and is wrapped to [0, 360); Dec must be in [-90, 90]; fluxes finite and >= 0.
- A catalogue without sources, or one that names two sources alike, is refused.
- Every error is a :class:`ReferenceCatalogError` (a ``ValueError``) naming the file, the column and the line
  (text formats: the file's line, counted from 1 with the header and comments) or the row (binary tables,
  counted from 1); a missing file is a :class:`ReferenceCatalogNotFoundError`, also a ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_SPECTRAL_INDEX",
    "REF_FREQ_HZ",
    "ReferenceCatalog",
    "ReferenceCatalogError",
    "ReferenceCatalogNotFoundError",
    "ReferenceSource",
    "read_reference_catalog",
    "source_name",
]

REF_FREQ_HZ = 1.4e9  # the reference fluxes' frequency (NVSS, FIRST and the simulator's sky are at 1.4 GHz)
# A synchrotron source's typical index (Condon 1992): used for rows without one. Across our band
# (1.31-1.50 GHz) it moves a flux by at most 5 % from 1.4 GHz.
DEFAULT_SPECTRAL_INDEX = -0.7

CSV_REQUIRED = ("ra_deg", "dec_deg", "flux_jy")
SHAPE_COLUMNS = ("maj_arcsec", "min_arcsec", "pa_deg")  # optional: a Gaussian's FWHM (arcsec) and PA (deg)
ID_COLUMNS = ("source_id", "name")  # the first present names the sources; else a name from the position
COMPACT_COLUMN = "compact"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "t", "y"), ("0", "false", "no", "f", "n")
RA_NAMES = ("ra_deg", "RAJ2000", "_RAJ2000", "RA_ICRS", "RAdeg", "RA", "ra")
DEC_NAMES = ("dec_deg", "DEJ2000", "_DEJ2000", "DE_ICRS", "DEdeg", "DEC", "Dec", "dec")
FLUX_NAMES = ("flux_jy", "S1.4", "S1_4", "S1400", "Flux", "flux", "Sint", "Fint", "Speak", "Fpeak")
ALPHA_NAMES = ("spectral_index", "alpha", "SpIdx", "Alpha")
TABLE_SUFFIXES = (".fits", ".fit", ".fts", ".gz", ".xml", ".vot", ".votable", ".ecsv", ".mrt", ".cds", ".dat")


class ReferenceCatalogError(ValueError):
    """A reference catalogue that cannot be read: the message names the file, the column and the line or row."""


class ReferenceCatalogNotFoundError(ReferenceCatalogError, FileNotFoundError):
    """Nothing at the reference catalogue's path."""


@dataclass(frozen=True)
class ReferenceSource:
    """One source of a :class:`ReferenceCatalog` (floats; ``compact`` None when the catalogue does not say)."""

    source_id: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float
    maj_arcsec: float = 0.0  # Gaussian FWHM along the major axis; 0: a point
    min_arcsec: float = 0.0
    pa_deg: float = 0.0  # east of north
    compact: bool | None = None


@dataclass(frozen=True)
class ReferenceCatalog:
    """Reference sources as arrays, one entry per source in catalogue order.

    ICRS positions (deg), flux (Jy) at ``ref_freq_hz``, spectral index (S ~ nu**alpha), a Gaussian's FWHM
    (arcsec; 0: a point) and position angle (deg), ``compact`` (bool, or None when the catalogue has no such
    column), ``path`` the file it came from. Iterating (or indexing with an int) gives
    :class:`ReferenceSource` rows; indexing with a mask or index array gives a sub-catalogue.
    """

    source_id: np.ndarray  # str
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    spectral_index: np.ndarray
    maj_arcsec: np.ndarray | None = None  # None: zeros (points)
    min_arcsec: np.ndarray | None = None
    pa_deg: np.ndarray | None = None
    compact: np.ndarray | None = None
    path: str = ""
    ref_freq_hz: float = field(default=REF_FREQ_HZ)

    def __post_init__(self):
        """Zeros for the shape columns not given."""
        n = len(self.ra_deg)
        for name in SHAPE_COLUMNS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(n))

    def __len__(self) -> int:
        """The number of sources."""
        return len(self.ra_deg)

    def flux_at(self, freq_hz: float) -> np.ndarray:
        """Each source's flux (Jy) at ``freq_hz``, extrapolated with its spectral index."""
        return self.flux_jy * (float(freq_hz) / self.ref_freq_hz) ** self.spectral_index

    def __getitem__(self, key):
        """Row ``key`` (an int) as a :class:`ReferenceSource`, or the sub-catalogue of a mask or index array."""
        if isinstance(key, (int, np.integer)):
            i = int(key)
            return ReferenceSource(
                str(self.source_id[i]),
                *(float(getattr(self, c)[i]) for c in ("ra_deg", "dec_deg", "flux_jy", "spectral_index")),
                *(float(getattr(self, c)[i]) for c in SHAPE_COLUMNS),
                None if self.compact is None else bool(self.compact[i]),
            )
        arrays = {
            c: np.asarray(getattr(self, c))[key]
            for c in ("source_id", "ra_deg", "dec_deg", "flux_jy", "spectral_index", *SHAPE_COLUMNS)
        }
        compact = None if self.compact is None else np.asarray(self.compact)[key]
        return ReferenceCatalog(**arrays, compact=compact, path=self.path, ref_freq_hz=self.ref_freq_hz)

    def __iter__(self):
        """The sources as :class:`ReferenceSource` rows."""
        return (self[i] for i in range(len(self)))


def source_name(ra_deg: float, dec_deg: float) -> str:
    """A stable name from a position: ``Jhhh.hhhh+dd.dddd`` in degrees (0.36" steps).

    Parameters
    ----------
    ra_deg, dec_deg : float
        ICRS position (RA wrapped to [0, 360)).

    Returns
    -------
    str
        The name a source gets when the catalogue has no ``source_id`` or ``name`` for it.
    """
    return f"J{ra_deg % 360.0:08.4f}{dec_deg:+08.4f}"


def read_reference_catalog(path) -> ReferenceCatalog:
    """Read a reference catalogue: a CSV or a VizieR-format table (formats and rules: the module's note).

    Parameters
    ----------
    path : str or Path
        The catalogue (``CONTIMG_REFERENCE_CATALOG``, ``--reference-catalog``).

    Returns
    -------
    ReferenceCatalog
        Every source, RA wrapped to [0, 360), fluxes in Jy at 1.4 GHz, a missing spectral index
        :data:`DEFAULT_SPECTRAL_INDEX`.

    Raises
    ------
    ReferenceCatalogNotFoundError
        If nothing is at ``path`` (also a ``FileNotFoundError``).
    ReferenceCatalogError
        If the file cannot be read as a table, lacks a position or flux column, holds a value that is not a
        number, an out-of-range coordinate, a negative flux or a ``compact`` word it does not know, has no
        sources or repeats a source's name: the message names the file, the column and the line or row.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceCatalogNotFoundError(f"{path}: no such reference catalogue")
    kind = _kind(path)
    cols = _read_csv(path) if kind == "csv" else _read_tsv(path) if kind == "tsv" else _read_table(path)
    n = len(cols["ra_deg"][0])
    if n == 0:
        raise ReferenceCatalogError(f"reference catalogue {path}: no sources")
    ra, dec, flux = cols["ra_deg"][0], cols["dec_deg"][0], cols["flux_jy"][0]
    _check_range(path, cols["ra_deg"], -360.0, 360.0, "ra_deg")  # some catalogues write RA in (-180, 180]
    _check_range(path, cols["dec_deg"], -90.0, 90.0, "dec_deg")
    _check_range(path, cols["flux_jy"], 0.0, np.inf, "flux_jy")
    for name in SHAPE_COLUMNS:
        if name in cols:
            _check_range(path, cols[name], -np.inf, np.inf, name)
    ids = cols.get("source_id")
    names = [
        i if i else source_name(a, d)
        for i, a, d in zip(ids[0] if ids else [""] * n, ra.tolist(), dec.tolist(), strict=True)
    ]
    seen = {}
    for k, name in enumerate(names):
        if name in seen:
            where = cols["ra_deg"][1]
            how = "" if ids and ids[0][k] else " (a name from the position)"
            raise ReferenceCatalogError(
                f"reference catalogue {path}: {where(k)}: source {name!r}{how} appears twice (first at "
                f"{where(seen[name])})"
            )
        seen[name] = k
    shape = {c: np.where(np.isfinite(cols[c][0]), cols[c][0], 0.0) if c in cols else np.zeros(n) for c in SHAPE_COLUMNS}
    return ReferenceCatalog(
        np.array(names),
        ra % 360.0,
        dec,
        flux,
        cols["spectral_index"][0] if "spectral_index" in cols else np.full(n, DEFAULT_SPECTRAL_INDEX),
        **shape,
        compact=cols["compact"][0] if "compact" in cols else None,
        path=str(path),
    )


# Each reader returns {canonical name: (values, where)} with ``where(k)`` the k-th source's location
# ("line 5" or "row 4"; also given the column's name in messages).


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if suffix in TABLE_SUFFIXES:
        return "table"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith((b"SIMPLE", b"<?xml", b"<VOTABLE", b"\x1f\x8b")):
        return "table"
    first = next((ln for ln in head.decode("latin-1").splitlines() if ln.strip() and not ln.startswith("#")), "")
    return "csv" if "," in first else "table"


def _not_number(path: Path, where: str, column: str, text) -> ReferenceCatalogError:
    return ReferenceCatalogError(f"reference catalogue {path}: {where}, column {column!r}: {text!r} is not a number")


def _read_csv(path: Path) -> dict:
    with open(path, newline="") as fh:
        numbered = [(i, ln) for i, ln in enumerate(fh, start=1) if ln.strip() and not ln.startswith("#")]
    if not numbered:
        raise ReferenceCatalogError(f"reference catalogue {path}: empty (a CSV needs a header line)")
    reader = csv.reader(ln for _, ln in numbered)
    try:
        rows = list(reader)
    except csv.Error as err:
        raise ReferenceCatalogError(f"reference catalogue {path}: not a readable CSV ({err})") from err
    header = [h.strip() for h in rows[0]]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ReferenceCatalogError(
            f"reference catalogue {path}: missing column(s) {', '.join(missing)} (has: {', '.join(header) or 'none'});"
            f" a CSV needs {','.join(CSV_REQUIRED)}[,spectral_index] (extra columns allowed)"
        )
    lines = [i for i, _ in numbered[1:]]
    body = rows[1:]

    def where(k):
        return f"line {lines[k]}"

    for k, r in enumerate(body):
        if len(r) > len(header):
            raise ReferenceCatalogError(
                f"reference catalogue {path}: line {lines[k]}: {len(r)} fields, the header has {len(header)}"
            )

    def cells(name):
        j = header.index(name)
        return [r[j].strip() if j < len(r) else "" for r in body]

    def numbers(name, blank):
        out = []
        for k, text in enumerate(cells(name)):
            if text == "" and blank is not None:
                out.append(blank)
                continue
            try:
                out.append(float(text))
            except ValueError:
                raise _not_number(path, where(k), name, text) from None
        return np.array(out, dtype=float), where

    cols = {c: numbers(c, None) for c in CSV_REQUIRED}
    if "spectral_index" in header:
        cols["spectral_index"] = numbers("spectral_index", DEFAULT_SPECTRAL_INDEX)
        _check_range(path, cols["spectral_index"], -np.inf, np.inf, "spectral_index")
    for c in SHAPE_COLUMNS:
        if c in header:
            cols[c] = numbers(c, 0.0)
    id_col = next((c for c in ID_COLUMNS if c in header), None)
    if id_col:
        cols["source_id"] = (cells(id_col), where)
    if COMPACT_COLUMN in header:
        cols["compact"] = (_compact(path, cells(COMPACT_COLUMN), where), where)
    return cols


def _compact(path: Path, words, where) -> np.ndarray:
    out = []
    for k, w in enumerate(words):
        w = str(w).strip().lower()
        if w not in TRUE_WORDS + FALSE_WORDS:
            raise ReferenceCatalogError(
                f"reference catalogue {path}: {where(k)}, column 'compact' holds {w!r}; allowed: 1/0, true/false, "
                "yes/no, t/f, y/n"
            )
        out.append(w in TRUE_WORDS)
    return np.array(out, dtype=bool)


def _read_tsv(path: Path) -> dict:
    """VizieR's TSV: ``#`` comments, header, units line, dashes line, then rows (tab-separated)."""
    from astropy import units as u
    from astropy.table import Table

    numbered = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), start=1)]
    numbered = [(i, ln) for i, ln in numbered if ln.strip() and not ln.startswith("#")]
    if not numbered:
        raise ReferenceCatalogError(f"reference catalogue {path}: empty (a TSV needs a header line)")
    header = numbered[0]
    rest = [(i, ln) for i, ln in numbered[1:] if not set(ln.replace("\t", "")) <= {"-", " "}]
    units = None
    if rest and not _is_numeric_row(rest[0][1]):
        # the units line (VizieR's), unless the first row just holds a sexagesimal/string first column
        first = rest[0][1].split("\t")
        if all(_unit_or_blank(f) for f in first):
            units, rest = first, rest[1:]
    try:
        table = Table.read("\n".join([header[1]] + [ln for _, ln in rest]), format="ascii.tab")
    except Exception as err:  # astropy raises many types for a malformed file
        raise ReferenceCatalogError(f"reference catalogue {path}: not a readable VizieR TSV ({err})") from err
    if units:
        for name, unit in zip(table.colnames, units, strict=False):
            try:
                if unit.strip():
                    table[name].unit = u.Unit(unit.strip())
            except ValueError:
                pass  # e.g. "h:m:s": the strings say it
    lines = [i for i, _ in rest]
    return _columns(path, table, lambda k: f"line {lines[k]}")


def _unit_or_blank(text: str) -> bool:
    from astropy import units as u

    text = text.strip()
    if not text or ":" in text:  # VizieR writes "h:m:s" / "d:m:s" above sexagesimal columns
        return True
    try:
        u.Unit(text)
    except ValueError:
        return False
    return True


def _is_numeric_row(line: str) -> bool:
    try:
        float(line.split("\t")[0])
        return True
    except ValueError:
        return False


def _read_table(path: Path) -> dict:
    from astropy.table import Table

    try:
        table = Table.read(path)
    except Exception as err:  # the format is guessed: any reader error means "not a table we can read"
        try:  # a CDS/MRT table
            table = Table.read(path, format="ascii.cds")
        except Exception:
            raise ReferenceCatalogError(
                f"reference catalogue {path}: not a table astropy can read (FITS, VOTable, ECSV, CDS) nor a CSV "
                f"named *.csv nor a VizieR TSV named *.tsv ({err})"
            ) from err
    return _columns(path, table, lambda k: f"row {k + 1}")


def _first(table, names):
    return next((n for n in names if n in table.colnames), None)


def _columns(path: Path, t, where) -> dict:
    """The canonical columns of an astropy table (VizieR's names and units)."""
    from astropy import units as u

    ra_name, dec_name, flux_name = _first(t, RA_NAMES), _first(t, DEC_NAMES), _first(t, FLUX_NAMES)
    for what, name, options in (
        ("RA", ra_name, RA_NAMES),
        ("Dec", dec_name, DEC_NAMES),
        ("1.4 GHz flux", flux_name, FLUX_NAMES),
    ):
        if name is None:
            raise ReferenceCatalogError(
                f"reference catalogue {path}: no {what} column (looked for {', '.join(options)}); "
                f"it has {', '.join(t.colnames)}"
            )
    ra, dec = _positions(path, t, ra_name, dec_name, where)
    flux = _floats(path, t, flux_name, where)
    unit = t[flux_name].unit
    if unit is not None:
        try:
            flux = flux * float(u.Unit(unit).to(u.Jy))
        except (u.UnitConversionError, ValueError) as err:
            raise ReferenceCatalogError(
                f"reference catalogue {path}: column {flux_name!r} has unit {unit}, not a flux density"
            ) from err
    elif flux_name != "flux_jy":
        flux = flux * 1e-3  # VizieR's radio fluxes are mJy
    cols = {"ra_deg": (ra, where), "dec_deg": (dec, where), "flux_jy": (flux, where)}
    alpha_name = _first(t, ALPHA_NAMES)
    if alpha_name:
        alpha = _floats(path, t, alpha_name, where, blank=np.nan)
        cols["spectral_index"] = (np.where(np.isfinite(alpha), alpha, DEFAULT_SPECTRAL_INDEX), where)
    for c in SHAPE_COLUMNS:
        if c in t.colnames:
            cols[c] = (_floats(path, t, c, where, blank=0.0), where)
    id_col = _first(t, ID_COLUMNS)
    if id_col:
        values = t[id_col].filled("") if hasattr(t[id_col], "filled") else t[id_col]
        cols["source_id"] = ([str(v).strip() for v in np.asarray(values).astype(str)], where)
    if COMPACT_COLUMN in t.colnames:
        values = t[COMPACT_COLUMN].filled("") if hasattr(t[COMPACT_COLUMN], "filled") else t[COMPACT_COLUMN]
        words = [str(v) if not isinstance(v, (bool, np.bool_)) else str(int(v)) for v in np.asarray(values).tolist()]
        cols["compact"] = (_compact(path, words, where), where)
    return cols


def _positions(path: Path, t, ra_name: str, dec_name: str, where):
    """Degrees from numeric columns (degrees, or with an angle unit) or sexagesimal strings."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if t[ra_name].dtype.kind in "USO" or t[dec_name].dtype.kind in "USO":
        # FITS hands strings back as bytes: astype(str) decodes them
        ra_s, dec_s = np.asarray(t[ra_name]).astype(str).tolist(), np.asarray(t[dec_name]).astype(str).tolist()
        out_ra, out_dec = np.empty(len(t)), np.empty(len(t))
        for k, (a, d) in enumerate(zip(ra_s, dec_s, strict=True)):
            try:
                c = SkyCoord(a, d, unit=(u.hourangle, u.deg))
            except ValueError as err:
                raise ReferenceCatalogError(
                    f"reference catalogue {path}: {where(k)}, columns {ra_name!r}/{dec_name!r}: {a!r} {d!r} is not "
                    f"a sexagesimal position ({err})"
                ) from err
            out_ra[k], out_dec[k] = c.ra.deg, c.dec.deg
        return out_ra, out_dec
    out = []
    for name in (ra_name, dec_name):
        v = _floats(path, t, name, where)
        unit = t[name].unit
        if unit is not None and u.Unit(unit) != u.deg:
            try:
                v = v * float(u.Unit(unit).to(u.deg))
            except u.UnitConversionError as err:
                raise ReferenceCatalogError(
                    f"reference catalogue {path}: column {name!r} has unit {unit}, not an angle"
                ) from err
        out.append(v)
    return out[0], out[1]


def _floats(path: Path, t, name: str, where, blank=None) -> np.ndarray:
    col = t[name]
    mask = np.asarray(getattr(col, "mask", np.zeros(len(col), dtype=bool)), dtype=bool)
    if blank is None and np.any(mask):
        raise ReferenceCatalogError(
            f"reference catalogue {path}: {where(int(np.flatnonzero(mask)[0]))}, column {name!r} is empty"
        )
    try:
        values = np.asarray(col.filled(np.nan) if hasattr(col, "filled") else col, dtype=float)
    except (TypeError, ValueError):
        for k, v in enumerate(col):
            if mask[k]:
                continue
            try:
                float(v)
            except (TypeError, ValueError):
                raise _not_number(path, where(k), name, str(v)) from None
        raise
    if blank is not None:
        values = np.where(mask, blank, values)
    return values


def _check_range(path: Path, col, lo: float, hi: float, name: str) -> None:
    values, where = col
    bad = ~np.isfinite(values) | (values < lo) | (values > hi)
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        what = "not a finite number" if not np.isfinite(values[k]) else f"outside [{lo:g}, {hi:g}]"
        raise ReferenceCatalogError(
            f"reference catalogue {path}: {where(k)}, column {name!r}: {float(values[k])!r} is {what}"
        )
