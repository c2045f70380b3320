"""The DSA-110 simulator: UVH5 subband files as the correlator writes them, plus ``truth.json``.

Usage::

    from contimg.sim import simulate, Source
    truth = simulate("out/", "2026-01-25T00:00:00", n_chunks=2, n_antennas=16,
                     n_chan_per_subband=4, n_integrations=6, dec_deg=55.0,
                     sky=[Source(ra_deg=..., dec_deg=..., flux_jy=1.0)], seed=1)

Realism, all off by default: ``delays=True`` (cable delays), ``drift=True`` (gains drifting in time;
``truth_gains`` evaluates them), ``rfi=True``, ``sky="counts"`` (a field from the 1.4 GHz source counts,
Gaussians included) and light curves (``day_index``). The sky is written beside the data as ``sky.csv``.

Tests use small arrays (10-16 antennas, 4-8 channels per subband, 4-8 integrations); the
benchmarks use the full size (96 antennas, 16 x 48 channels, 24 integrations, ~1.9 GB a chunk).
Conventions (signs, gains, file layout) are in ``docs/conventions.md``.
"""

from contimg.sim.core import DEFAULT_DEC_DEG, noise_sigma_jy, simulate, transit_start
from contimg.sim.faults import Fault, parse_faults
from contimg.sim.gains import truth_gains
from contimg.sim.lightcurves import flux_factor
from contimg.sim.sky import Source, counts_sky, default_sky, read_sky_csv, write_sky_csv

__all__ = [
    "simulate",
    "Source",
    "Fault",
    "parse_faults",
    "read_sky_csv",
    "write_sky_csv",
    "counts_sky",
    "truth_gains",
    "flux_factor",
    "default_sky",
    "noise_sigma_jy",
    "transit_start",
    "DEFAULT_DEC_DEG",
]
