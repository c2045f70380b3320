"""Quality figures and the bandpass plot of solved tables (casatools reads; child process only).

The figures themselves are computed by ``contimg.calibrate.solutions`` and
``contimg.calibrate.bandpass_qa`` from the columns read here.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from contimg.calibrate.bandpass_qa import BandpassQA, bandpass_cube, bandpass_qa
from contimg.calibrate.report import TableQuality
from contimg.calibrate.solutions import solution_quality

__all__ = ["bandpass_verdict", "flag_cells", "plot_bandpass", "solution_columns", "table_quality"]

PANEL_COLUMNS = 12  # 96 antennas: 8 rows of 12 panel pairs (amplitude over phase)


def table_quality(table: str, present: list[int]) -> TableQuality:
    """Quality of the solutions in CASA table ``table`` over the antennas ``present`` (with data)."""
    import casatools

    tb = casatools.table()
    tb.open(table)
    delays = "FPARAM" in tb.colnames()  # a K table: delays (ns), no complex gains
    gains = tb.getcol("FPARAM") if delays else tb.getcol("CPARAM")
    flags = tb.getcol("FLAG")
    snr = tb.getcol("SNR")
    ant = tb.getcol("ANTENNA1")
    tb.close()
    if delays:  # flags and SNR are what a K table's quality is; gain scatter means nothing for it
        quality = solution_quality(np.ones(gains.shape, complex), flags, snr, ant, present)
        return replace(quality, amp_scatter=None, phase_scatter_deg=None)
    return solution_quality(gains, flags, snr, ant, present)


def solution_columns(table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ANTENNA1, SPECTRAL_WINDOW_ID and FLAG of a solved table (for ``unsolved_spw_problems``)."""
    import casatools

    tb = casatools.table()
    tb.open(table)
    try:
        return tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID"), tb.getcol("FLAG")
    finally:
        tb.close()


def _read_bandpass(table: str, present: list[int]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The B table as cubes (antenna, spw, pol, chan) over ``present`` and each SPW's frequencies (Hz)."""
    import casatools

    tb = casatools.table()
    tb.open(table)
    gains, flags = tb.getcol("CPARAM"), tb.getcol("FLAG")
    ant, spw = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(table + "/SPECTRAL_WINDOW")
    freqs = [np.asarray(tb.getcell("CHAN_FREQ", i)) for i in range(tb.nrows())]
    tb.close()
    g, f = bandpass_cube(gains, flags, ant, spw, present)
    return g, f, freqs


def bandpass_verdict(table: str, present: list[int]) -> BandpassQA:
    """The bandpass QA (``contimg.calibrate.bandpass_qa``) of B table ``table`` over the antennas ``present``."""
    g, f, _ = _read_bandpass(table, present)
    return bandpass_qa(g, f, present)


def flag_cells(table: str, cells: list[list[int]]) -> int:
    """Flag every solution of the (antenna, spw) ``cells`` in CASA table ``table``; return the rows flagged.

    The bandpass QA's outlier cells: a solve on a dead input or on RFI left in the data is not applied
    (a flagged solution flags the data it would calibrate) while the rest of the set is.
    """
    import casatools

    if not cells:
        return 0
    tb = casatools.table()
    tb.open(table, nomodify=False)
    try:
        flags = tb.getcol("FLAG")
        ant, spw = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID")
        bad = {(int(a), int(s)) for a, s in cells}
        rows = [r for r in range(ant.size) if (int(ant[r]), int(spw[r])) in bad]
        flags[:, :, rows] = True
        tb.putcol("FLAG", flags)
    finally:
        tb.close()
    return len(rows)


def plot_bandpass(table: str, png: Path, present: list[int], qa: BandpassQA | None = None) -> None:
    """One small panel pair per antenna: amplitude over phase against frequency, X and Y.

    ``present`` are the antennas shown (those with data). With ``qa``, outlier antennas get a red frame and
    title, and each title says the antenna's flagged fraction. Written atomically to ``png``.
    """
    g, f, freqs = _read_bandpass(table, present)
    _draw_panels(g, f, freqs, present, png, Path(table).name, qa)


def _draw_panels(g, f, freqs, present, png: Path, title: str, qa: BandpassQA | None) -> None:
    """The panels drawn in one Axes with shared lines (a Matplotlib Axes per panel took 26 s for 96 antennas)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    n_ant, n_spw = g.shape[:2]
    cols = min(PANEL_COLUMNS, max(n_ant, 1))
    rows = max(1, math.ceil(n_ant / cols))
    good = ~f & np.isfinite(g)
    amp_max = float(np.percentile(np.abs(g[good]), 99.5)) * 1.1 if good.any() else 1.0
    # one phase range for all: the B phases sit near a constant per antenna (K applied), so a shared
    # range that holds 99.5 % of them shows each antenna's ripple better than +/-180
    ph_max = float(min(180.0, max(10.0, 1.1 * np.percentile(np.abs(np.degrees(np.angle(g[good]))), 99.5))))
    ph_max = ph_max if good.any() else 180.0
    # one line per antenna and polarization through the SPWs in frequency order, broken (NaN) between
    # SPWs, antennas and where flagged; panel (r, c) spans x in [c, c + 0.9], amplitude y in [-r - 0.5, -r - 0.12]
    # (from the top), phase just below in [-r - 0.9, -r - 0.52], the title above
    order = np.argsort([fr.mean() for fr in freqs[:n_spw]])
    nu = np.concatenate([np.append(freqs[s], np.nan) for s in order])
    lo, hi = np.nanmin(nu), np.nanmax(nu)
    x_unit = (nu - lo) / max(hi - lo, 1.0) * 0.9
    fig = plt.figure(figsize=(1.6 * cols, 1.5 * rows + 0.5), dpi=80)
    ax = fig.add_axes((0.005, 0.005, 0.99, 1 - 0.45 / (1.5 * rows + 0.5)))
    outliers = set(qa.outlier_antennas) if qa is not None else set()
    frames, colours = [], []
    for pol, colour in zip(range(g.shape[2]), ("tab:blue", "tab:red"), strict=False):
        xs, ya, yp = [], [], []
        for k in range(n_ant):
            r, c = divmod(k, cols)
            y = np.concatenate([np.append(np.where(f[k, s, pol], np.nan, g[k, s, pol]), np.nan) for s in order])
            xs.append(np.append(c + x_unit, np.nan))
            ya.append(np.append(-r - 0.5 + 0.38 * np.clip(np.abs(y) / amp_max, 0, 1), np.nan))
            yp.append(
                np.append(-r - 0.9 + 0.38 * np.clip((np.degrees(np.angle(y)) + ph_max) / (2 * ph_max), 0, 1), np.nan)
            )
        ax.plot(np.concatenate(xs), np.concatenate(ya), "-", lw=0.5, color=colour)
        ax.plot(np.concatenate(xs), np.concatenate(yp), ".", ms=0.6, color=colour)
    for k, a in enumerate(present):
        r, c = divmod(k, cols)
        bad = a in outliers
        for y0 in (-r - 0.5, -r - 0.9):
            frames.append(Rectangle((c, y0), 0.9, 0.38))
            colours.append("red" if bad else "0.6")
        label = f"DSA-{a + 1:03d} {100 * f[k].mean():.0f}% flagged" + (" OUTLIER" if bad else "")
        ax.text(c + 0.45, -r - 0.11, label, ha="center", va="bottom", fontsize=6, color="red" if bad else "black")
    ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor=colours, linewidths=0.8))
    ax.set_xlim(-0.05, cols)
    ax.set_ylim(-rows - 0.02, 0.12)
    ax.axis("off")
    verdict = "" if qa is None else ("  QA ok" if qa.ok else "  QA FAILED: " + "; ".join(qa.problems))
    fig.suptitle(
        f"{title}: |B| (upper panel, 0-{amp_max:.2f}) and phase (lower, +/-{ph_max:.0f} deg) against frequency "
        f"({lo / 1e6:.0f}-{hi / 1e6:.0f} MHz); X blue, Y red{verdict}",
        fontsize=9,
    )
    tmp = png.with_name(png.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
