"""Sky models for the simulator: point and Gaussian sources with a power-law spectrum.

``counts_sky`` draws a realistic field from the 1.4 GHz differential source counts of Hopkins et al.
(2003, AJ 125, 465); ``read_sky_csv`` / ``write_sky_csv`` carry a sky as the reference catalogue
(``sky.csv``, columns in docs/conventions.md).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

__all__ = [
    "Source",
    "read_sky_csv",
    "write_sky_csv",
    "default_sky",
    "counts_sky",
    "hopkins_dnds",
    "REF_FREQ_HZ",
    "SKY_CSV_COLUMNS",
]

REF_FREQ_HZ = 1.4e9  # fluxes are quoted at 1.4 GHz
SKY_CSV_COLUMNS = (
    "ra_deg",
    "dec_deg",
    "flux_jy",
    "spectral_index",
    "maj_arcsec",
    "min_arcsec",
    "pa_deg",
    "name",
    "lightcurve",
)

# Hopkins et al. 2003 (AJ 125, 465), eq. 2: log10(S^2.5 dN/dS / Jy^1.5 sr^-1) = sum a_i x^i, x = log10(S / mJy);
# Euclidean (S^2.5 dN/dS constant) above 1 Jy, where the polynomial is not constrained.
HOPKINS_COEFFS = (0.859, 0.508, 0.376, -0.049, -0.121, 0.057, -0.008)
EUCLIDEAN_ABOVE_JY = 1.0
MAX_FLUX_JY = 30.0  # brightest source drawn (the counts above it add < 0.02 sources per 100 deg^2)
MAIN_LOBE_DEG = 3.2  # first null of the 4.65 m dish's Airy beam at 1.4 GHz (1.22 lambda / D ~ 3.2 deg)
SIDELOBE_DEG = 6.0  # the first sidelobe's outer edge
MIN_FLUX_JY = 2e-3  # every source in the main lobe above this
BRIGHT_FLUX_JY = 0.1  # ... and those above this out to SIDELOBE_DEG
STEEP_FRACTION = 0.9  # spectral indices: 90 % N(-0.75, 0.2) (synchrotron), 10 % N(0, 0.3) (flat)
STEEP_ALPHA = (-0.75, 0.2)
FLAT_ALPHA = (0.0, 0.3)
RESOLVED_FRACTION = 0.1  # a fraction of sources are Gaussians (each costs its Gauss-Hermite components)
# Windhorst, Mathis & Neuschaefer 1990: median FWHM 2" (S / mJy)^0.3, integral size distribution
# h(> psi) = exp(-ln 2 (psi / psi_med)^0.62)
WINDHORST_MEDIAN_ARCSEC = 2.0
WINDHORST_INDEX = 0.3
WINDHORST_SHAPE = 0.62
MAX_MAJOR_ARCSEC = 20.0  # the size distribution's tail cut (each Gauss-Hermite component costs a matrix product)
AXIS_RATIO = (0.3, 1.0)


@dataclass(frozen=True)
class Source:
    """A source: ICRS position (deg), flux at 1.4 GHz (Jy), spectral index (S ~ nu**alpha).

    ``maj_arcsec`` > 0 makes it an elliptical Gaussian (FWHM axes, position angle east of north).
    ``lightcurve`` (see ``contimg.sim.lightcurves``) scales the flux day by day; empty is constant.
    """

    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float = 0.0
    name: str = ""
    maj_arcsec: float = 0.0
    min_arcsec: float = 0.0
    pa_deg: float = 0.0
    lightcurve: str = ""

    def flux_at(self, freq_hz) -> np.ndarray:
        """Flux density (Jy) at ``freq_hz`` from the power law."""
        return self.flux_jy * (np.asarray(freq_hz, dtype=float) / REF_FREQ_HZ) ** self.spectral_index

    def as_dict(self) -> dict:
        """The fields as a dict (truth.json)."""
        return asdict(self)


def _float(row: dict, key: str, default: float = 0.0) -> float:
    value = (row.get(key) or "").strip()
    return float(value) if value else default


def read_sky_csv(path: Path) -> list[Source]:
    """Read ``ra_deg,dec_deg,flux_jy[,spectral_index,maj_arcsec,min_arcsec,pa_deg,name,lightcurve]`` rows.

    A header is required; columns may come in any order, other columns are ignored, empty optional
    cells mean 0 (a point source, a flat spectrum) or a constant flux.

    Raises
    ------
    ValueError
        On a missing column, a value that is not a number or a malformed light curve, naming the line.
    """
    from contimg.sim.lightcurves import parse_lightcurve

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
                lightcurve = (row.get("lightcurve") or "").strip()
                parse_lightcurve(lightcurve)
                sources.append(
                    Source(
                        float(row["ra_deg"]) % 360.0,
                        float(row["dec_deg"]),
                        float(row["flux_jy"]),
                        _float(row, "spectral_index"),
                        (row.get("name") or "").strip(),
                        _float(row, "maj_arcsec"),
                        _float(row, "min_arcsec"),
                        _float(row, "pa_deg"),
                        lightcurve,
                    )
                )
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from err
    return sources


def write_sky_csv(path: Path, sources: list[Source]) -> Path:
    """Write ``sources`` with the columns of ``SKY_CSV_COLUMNS`` (readable by ``read_sky_csv``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    names = [f.name for f in fields(Source)]
    assert set(names) == set(SKY_CSV_COLUMNS)
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(SKY_CSV_COLUMNS)
        for s in sources:
            d = s.as_dict()
            writer.writerow([repr(float(d[c])) if isinstance(d[c], float | int) else d[c] for c in SKY_CSV_COLUMNS])
    tmp.replace(path)
    return path


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


def hopkins_dnds(s_jy) -> np.ndarray:
    """Differential source counts dN/dS (Jy^-1 sr^-1) at 1.4 GHz (Hopkins et al. 2003; Euclidean above 1 Jy)."""
    s = np.asarray(s_jy, dtype=float)
    x = np.log10(np.minimum(s, EUCLIDEAN_ABOVE_JY) * 1e3)
    poly = sum(a * x**i for i, a in enumerate(HOPKINS_COEFFS))
    return 10.0**poly * s**-2.5


def _cumulative_counts(s_lo: float, s_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid of ln S from ``s_lo`` to ``s_hi`` (Jy) and N(< S) - N(< s_lo) per sr (trapezoids in ln S)."""
    ln_s = np.linspace(np.log(s_lo), np.log(s_hi), 4001)
    dn = hopkins_dnds(np.exp(ln_s)) * np.exp(ln_s)  # dN / dln S
    return ln_s, np.concatenate([[0.0], np.cumsum(0.5 * (dn[1:] + dn[:-1]) * np.diff(ln_s))])


def _track_distance_deg(ra, dec, ra0, span, dec0) -> np.ndarray:
    """Angular distance (deg) from (ra, dec) to the track at dec0 from RA ra0 eastwards over ``span`` deg."""
    d_ra = (ra - ra0) % 360.0
    on = d_ra <= span

    def sep(ra_b):
        r1, d1, r2, d2 = map(np.radians, (ra, dec, ra_b, dec0))
        c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
        return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))

    return np.where(on, np.abs(dec - dec0), np.minimum(sep(ra0), sep(ra0 + span)))


def _uniform_near_track(rng, density_sr: float, ra0: float, span: float, dec0: float, radius: float):
    """Poisson points of ``density_sr`` uniform on the sphere within ``radius`` deg of the track."""
    lo, hi = max(dec0 - radius, -90.0), min(dec0 + radius, 90.0)
    s_rad = np.sin(np.radians(radius))
    c_dec = np.cos(np.radians(min(abs(dec0) + radius, 90.0)))
    half = 180.0 if s_rad >= c_dec else np.degrees(np.arcsin(s_rad / c_dec)) + 1e-6
    width = min(span + 2 * half, 360.0)
    box_sr = np.radians(width) * (np.sin(np.radians(hi)) - np.sin(np.radians(lo)))
    n = rng.poisson(density_sr * box_sr)
    ra = (ra0 - (width - span) / 2 + rng.uniform(0.0, width, n)) % 360.0
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(lo)), np.sin(np.radians(hi)), n)))
    keep = _track_distance_deg(ra, dec, ra0, span, dec0) <= radius
    return ra[keep], dec[keep]


def counts_sky(
    ra_span_deg: tuple[float, float],
    dec_deg: float,
    rng: np.random.Generator,
    *,
    min_flux_jy: float = MIN_FLUX_JY,
    bright_flux_jy: float = BRIGHT_FLUX_JY,
    main_lobe_deg: float = MAIN_LOBE_DEG,
    sidelobe_deg: float = SIDELOBE_DEG,
    resolved_fraction: float = RESOLVED_FRACTION,
) -> list[Source]:
    """A seeded realistic sky along the strip that drifts through the beam.

    Every source within ``main_lobe_deg`` of the track (dec ``dec_deg``, RA from ``ra_span_deg[0]``
    eastwards to ``ra_span_deg[1]``) above ``min_flux_jy``, and those above ``bright_flux_jy`` out to
    ``sidelobe_deg``; positions uniform on the sphere, fluxes from the Hopkins et al. (2003) counts
    (up to ``MAX_FLUX_JY``), spectral indices 90 % N(-0.75, 0.2) and 10 % N(0, 0.3), and a
    ``resolved_fraction`` of Gaussians with Windhorst et al. (1990) sizes (random axis ratio 0.3-1
    and position angle).
    """
    ra0, ra1 = ra_span_deg
    span = (ra1 - ra0) % 360.0
    ra, dec, flux = [], [], []
    for s_lo, s_hi, radius in (
        (min_flux_jy, bright_flux_jy, main_lobe_deg),
        (bright_flux_jy, MAX_FLUX_JY, sidelobe_deg),
    ):
        if s_hi <= s_lo:
            continue
        # the region's sources: a Poisson draw of the count density (per sr) over a box, thinned to the region
        ln_s, cum = _cumulative_counts(s_lo, s_hi)
        r, d = _uniform_near_track(rng, float(cum[-1]), ra0, span, dec_deg, radius)
        s = np.exp(np.interp(rng.uniform(0.0, cum[-1], len(r)), cum, ln_s))  # inverse of the flux distribution
        ra.append(r)
        dec.append(d)
        flux.append(s)
    ra, dec, flux = (np.concatenate(x) for x in (ra, dec, flux))
    n = len(flux)
    steep = rng.random(n) < STEEP_FRACTION
    alpha = np.where(steep, rng.normal(*STEEP_ALPHA, n), rng.normal(*FLAT_ALPHA, n))
    resolved = rng.random(n) < resolved_fraction
    median = WINDHORST_MEDIAN_ARCSEC * (flux * 1e3) ** WINDHORST_INDEX
    u = rng.uniform(np.finfo(float).tiny, 1.0, n)
    major = np.minimum(median * (-np.log(u) / np.log(2.0)) ** (1.0 / WINDHORST_SHAPE), MAX_MAJOR_ARCSEC)
    ratio = rng.uniform(*AXIS_RATIO, n)
    pa = rng.uniform(0.0, 180.0, n)
    return [
        Source(
            float(ra[k]),
            float(dec[k]),
            float(flux[k]),
            float(alpha[k]),
            f"cnt{k:05d}",
            float(major[k]) if resolved[k] else 0.0,
            float(major[k] * ratio[k]) if resolved[k] else 0.0,
            float(pa[k]) if resolved[k] else 0.0,
        )
        for k in range(n)
    ]
