"""Sky models for the simulator: point sources with a power-law spectrum."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["Source", "read_sky_csv", "default_sky", "REF_FREQ_HZ"]

REF_FREQ_HZ = 1.4e9  # fluxes are quoted at 1.4 GHz


@dataclass(frozen=True)
class Source:
    """A point source: ICRS position (deg), flux at 1.4 GHz (Jy), spectral index (S ~ nu**alpha)."""

    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float = 0.0
    name: str = ""

    def flux_at(self, freq_hz) -> np.ndarray:
        """Flux density (Jy) at ``freq_hz`` (Hz, scalar or array): flux_jy (freq / 1.4 GHz) ** spectral_index."""
        return self.flux_jy * (np.asarray(freq_hz, dtype=float) / REF_FREQ_HZ) ** self.spectral_index

    def as_dict(self) -> dict:
        """The source as a dict keyed by field name."""
        return asdict(self)


def read_sky_csv(path: Path) -> list[Source]:
    """Read ``ra_deg,dec_deg,flux_jy,spectral_index`` rows (header required; ``name`` optional).

    Raises
    ------
    ValueError
        On a missing column or a value that is not a number, naming the line.
    """
    sources = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"ra_deg", "dec_deg", "flux_jy"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {sorted(missing)}; need ra_deg,dec_deg,flux_jy[,spectral_index]"
            )
        for lineno, row in enumerate(reader, start=2):
            try:
                sources.append(
                    Source(
                        float(row["ra_deg"]) % 360.0,
                        float(row["dec_deg"]),
                        float(row["flux_jy"]),
                        float(row.get("spectral_index") or 0.0),
                        (row.get("name") or "").strip(),
                    )
                )
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from err
    return sources


def default_sky(ra_span_deg: tuple[float, float], dec_deg: float, rng: np.random.Generator, n: int = 6) -> list[Source]:
    """A few seeded sources (0.05-2 Jy) inside the primary beam along the strip that drifts by.

    ``ra_span_deg`` is the meridian RA at the start and end of the simulated time.
    """
    ra0, ra1 = ra_span_deg
    span = (ra1 - ra0) % 360.0
    sources = []
    for i in range(n):
        ra = (ra0 + rng.uniform(0.0, span)) % 360.0
        dec = dec_deg + rng.uniform(-1.0, 1.0)
        flux = float(np.exp(rng.uniform(np.log(0.05), np.log(2.0))))
        sources.append(Source(ra, dec, flux, float(rng.uniform(-1.0, 0.0)), f"sim{i:02d}"))
    return sources
