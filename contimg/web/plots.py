"""Server-side figures (PNG, matplotlib's Agg canvas) and FITS header essentials for the pages.

Figures are built with matplotlib's object API (``Figure`` + ``FigureCanvasAgg``), not pyplot, so request
threads never share pyplot's global state.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

__all__ = ["rms_trend_png", "HEADER_KEYS", "header_essentials"]

# FITS keywords an astronomer checks first, with what they mean (shown beside each value)
HEADER_KEYS = {
    "OBJECT": "field",
    "DATE-OBS": "start (UTC)",
    "TELESCOP": "telescope",
    "NAXIS1": "pixels (RA)",
    "NAXIS2": "pixels (Dec)",
    "CRVAL1": "centre RA (deg)",
    "CRVAL2": "centre Dec (deg)",
    "CDELT2": "pixel (deg)",
    "CRVAL3": "frequency (Hz)",
    "CDELT3": "bandwidth (Hz)",
    "BMAJ": "beam major (deg)",
    "BMIN": "beam minor (deg)",
    "BPA": "beam PA (deg)",
    "BUNIT": "unit",
    "CALSET": "calibration set",
    "NCALTAB": "calibration tables",
    "DATACOL": "data column",
    "IMAGER": "imager",
    "WINDOW": "window",
}


def _window_hours(window: str) -> float:
    t = datetime.strptime(window, "%Y-%m-%dT%H:%M")
    return t.hour + t.minute / 60.0


def rms_trend_png(date: str, rows: list[dict]) -> bytes:
    """Image noise over the night (mJy/beam against UTC hour): ok and flagged images, and the radiometer noise."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for status, colour, marker in (("ok", "#2e9e44", "o"), ("flagged", "#f0a020", "s")):
        pts = [
            (_window_hours(r["window_key"]), r["rms_jy"] * 1e3)
            for r in rows
            if r["status"] == status and r["rms_jy"] is not None
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker, color=colour, ms=5, label=f"{status} ({len(pts)})", ls="none")
    expected = sorted(
        (_window_hours(r["window_key"]), r["expected_rms_jy"] * 1e3)
        for r in rows
        if r.get("expected_rms_jy") is not None
    )
    if expected:
        ax.plot(*zip(*expected, strict=True), "-", color="#555", lw=1, label="radiometer")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 2))
    ax.set_xlabel(f"{date} UTC (h)")
    ax.set_ylabel("rms (mJy/beam)")
    if rows:
        from matplotlib.ticker import FuncFormatter, LogFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 10, not 10^1
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncol=3)
    else:
        ax.text(12, 0.5, "no images this night", ha="center", va="center", color="#888", transform=ax.transData)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def header_essentials(path: Path) -> list[dict]:
    """[{key, value, meaning}] of :data:`HEADER_KEYS` present in the primary header of the FITS file ``path``.

    Raises
    ------
    OSError
        If the file cannot be read as FITS.
    """
    from astropy.io import fits

    header = fits.getheader(path, 0)
    return [
        {"key": k, "value": header[k], "meaning": meaning, "readable": _readable(k, header[k])}
        for k, meaning in HEADER_KEYS.items()
        if k in header
    ]


def _readable(key: str, value) -> str:
    """The value in the units people read: sexagesimal centre, arcsec beam and pixel, MHz."""
    from astropy import units as u
    from astropy.coordinates import Angle

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    if key == "CRVAL1":
        return str(Angle(value, u.deg).wrap_at(360 * u.deg).to_string(unit=u.hourangle, sep=":", precision=1))
    if key == "CRVAL2":
        return str(Angle(value, u.deg).to_string(unit=u.deg, sep=":", precision=0, alwayssign=True))
    if key in ("BMAJ", "BMIN", "CDELT2"):
        return f"{abs(value) * 3600:.1f} arcsec"
    if key in ("CRVAL3", "CDELT3"):
        return f"{value / 1e6:.1f} MHz"
    return ""
