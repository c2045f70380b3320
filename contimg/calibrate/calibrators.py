"""The VLA calibrator list (shipped as ``contimg/core/data/vlacalibrators.txt``) as Python objects.

Each block starts with a J2000 line (name, ``J2000``, position code, RA ``08h34m54.90s``, Dec
``55d34'21.07"``), then a B1950 line and band rows ``BAND code A B C D FLUX(Jy) UVMIN UVMAX``.
Every source is kept; ``flux_jy`` is the 20 cm (L band) flux, None where the list has none.
A spectral index is derived from the 20 cm and 6 cm (else 90 cm) fluxes when both exist.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["Calibrator", "CalibratorListError", "load_vla_calibrators", "find_calibrator", "parse_vla_calibrators"]

_J2000 = re.compile(
    r"^(?P<name>\S+)\s+J2000\s+(?P<code>\S)\s+(?P<ra>\d{1,2}h\d{1,2}m[\d.]+s)\s+(?P<dec>[-+]?\d{1,2}d\d{1,2}'[\d.]+\")"
)
_BAND = re.compile(r"^\s*(?P<band>[\d.]+cm)\s+(?P<rest>.*)$")
_FREQ_HZ = {"90cm": 0.33e9, "20cm": 1.4e9, "6cm": 4.86e9}


class CalibratorListError(ValueError):
    """A malformed entry in the calibrator list."""


@dataclass(frozen=True)
class Calibrator:
    """One source of the VLA calibrator list.

    Attributes
    ----------
    name : str
        The B1950-style VLA name, e.g. ``0834+555``.
    ra_deg, dec_deg : float
        J2000 position, degrees.
    flux_jy : float or None
        The 20 cm (L band) flux, Jy; None where the list has none.
    position_code : str
        The list's position accuracy code (``A``, ``B``, ``C`` or ``T``); empty if not given.
    spectral_index : float or None
        From the 20 cm and 6 cm (else 90 cm) fluxes; None unless both exist.
    """

    name: str  # B1950-style VLA name, e.g. "0834+555"
    ra_deg: float  # J2000
    dec_deg: float
    flux_jy: float | None  # at 20 cm
    position_code: str = ""
    spectral_index: float | None = None

    @property
    def jname(self) -> str:
        """The name with a ``J`` prefix, e.g. ``J0834+555``."""
        return f"J{self.name}"


def _ra_deg(text: str) -> float:
    h, m, s = re.match(r"(\d+)h(\d+)m([\d.]+)s", text).groups()
    return 15.0 * (int(h) + int(m) / 60.0 + float(s) / 3600.0)


def _dec_deg(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    d, m, s = re.match(r"[-+]?(\d+)d(\d+)'([\d.]+)\"", text).groups()
    return sign * (int(d) + int(m) / 60.0 + float(s) / 3600.0)


def _band_flux(rest: str) -> float | None:
    """The flux column of a band row: the first token after the band code and the 4 array codes."""
    tokens = rest.split()
    # tokens: code, A, B, C, D, FLUX, [UVMIN], [UVMAX], [notes]
    if len(tokens) < 6:
        return None
    try:
        return float(tokens[5])
    except ValueError:
        return None  # '?' or missing


def parse_vla_calibrators(text: str, source: str = "vlacalibrators.txt") -> list[Calibrator]:
    """Parse the list's text.

    Raises
    ------
    CalibratorListError
        On a J2000 line whose position cannot be read, naming the line number.
    """
    out: list[Calibrator] = []
    current: dict | None = None
    fluxes: dict[str, float] = {}

    def flush():
        if current is not None:
            s20 = fluxes.get("20cm")
            alpha = None
            other = "6cm" if "6cm" in fluxes else ("90cm" if "90cm" in fluxes else None)
            if s20 and other and fluxes[other] > 0:
                alpha = math.log(fluxes[other] / s20) / math.log(_FREQ_HZ[other] / _FREQ_HZ["20cm"])
            out.append(Calibrator(current["name"], current["ra"], current["dec"], s20, current["code"], alpha))

    for lineno, line in enumerate(text.splitlines(), start=1):
        if " J2000 " in f" {line} ":
            m = _J2000.match(line.strip())
            if not m:
                raise CalibratorListError(f"{source}:{lineno}: cannot parse J2000 position line {line.strip()!r}")
            flush()
            try:
                current = {"name": m["name"], "ra": _ra_deg(m["ra"]), "dec": _dec_deg(m["dec"]), "code": m["code"]}
            except (AttributeError, ValueError) as err:
                raise CalibratorListError(f"{source}:{lineno}: bad position in {line.strip()!r}") from err
            if not (0 <= current["ra"] < 360 and -90 <= current["dec"] <= 90):
                raise CalibratorListError(f"{source}:{lineno}: position out of range in {line.strip()!r}")
            fluxes = {}
            continue
        m = _BAND.match(line)
        if m and current is not None:
            flux = _band_flux(m["rest"])
            if flux is not None:
                fluxes.setdefault(m["band"], flux)
    flush()
    return out


@lru_cache(maxsize=4)
def load_vla_calibrators(path: str | None = None) -> tuple[Calibrator, ...]:
    """All calibrators of the shipped list (or of ``path``)."""
    if path is None:
        text = resources.files("contimg.core.data").joinpath("vlacalibrators.txt").read_text()
        return tuple(parse_vla_calibrators(text))
    return tuple(parse_vla_calibrators(Path(path).read_text(), source=str(path)))


def find_calibrator(name: str) -> Calibrator:
    """Look a calibrator up by VLA name (``0834+555`` or ``J0834+555``).

    Raises
    ------
    ValueError
        If no calibrator has that name (close names are suggested).
    """
    key = name.strip().upper().removeprefix("J")
    cals = load_vla_calibrators()
    for cal in cals:
        if cal.name.upper() == key:
            return cal
    close = [c.name for c in cals if c.name[:4] == key[:4]][:5]
    raise ValueError(
        f"no calibrator named {name!r} in the VLA list" + (f"; close: {', '.join(close)}" if close else "")
    )
