"""Quality figures and the bandpass plot of solved tables (casatools reads; child process only).

The figures themselves are computed by ``contimg.calibrate.solutions`` from the columns read here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from contimg.calibrate.report import TableQuality
from contimg.calibrate.solutions import solution_quality

__all__ = ["plot_bandpass", "table_quality"]


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


def plot_bandpass(table: str, png: Path) -> None:
    """Amplitude and phase of the first polarization of every bandpass solution against frequency."""
    import casatools
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tb = casatools.table()
    tb.open(table)
    gains, flags, spw = tb.getcol("CPARAM"), tb.getcol("FLAG"), tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(table + "/SPECTRAL_WINDOW")
    freqs = [tb.getcell("CHAN_FREQ", i) for i in range(tb.nrows())]
    tb.close()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for row in range(gains.shape[2]):
        f = freqs[spw[row]] / 1e6
        g = np.where(flags[0, :, row], np.nan, gains[0, :, row])
        ax1.plot(f, np.abs(g), ",", color="k", alpha=0.5)
        ax2.plot(f, np.degrees(np.angle(g)), ",", color="k", alpha=0.5)
    ax1.set_ylabel("|B| (X)")
    ax2.set_ylabel("phase (deg)")
    ax2.set_xlabel("frequency (MHz)")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
