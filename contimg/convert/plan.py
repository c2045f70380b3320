"""Conversion planning: read and check one chunk's subband files before any MS is written.

Reads only HDF5 headers (plus one probe of each file's last data row, which catches truncated
copies) with h5py, so it is cheap and fails early with an error naming the bad file. The CASA-side
writer (``contimg.convert.job``) consumes the :class:`ChunkPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.time import Time

from contimg.convert.bands import ms_spectral_layout
from contimg.convert.header import ConversionError, SubbandInput, parse_subband_name, read_subband
from contimg.core.instrument import N_SUBBANDS
from contimg.core.phasing import meridian_icrs

__all__ = [
    "GROUP_TOLERANCE_S",
    "ChunkPlan",
    "ConversionError",
    "SubbandInput",
    "parse_subband_name",
    "plan_chunk",
    "read_subband",
]

GROUP_TOLERANCE_S = 60.0  # subbands of one chunk start within seconds; chunks are 309 s apart
# The files of one chunk were fringe-stopped at one declination; 1e-6 deg only absorbs rounding.
POINTING_DEC_TOL_DEG = 1e-6


@dataclass
class ChunkPlan:
    """The conversion plan of one chunk (:func:`plan_chunk`).

    Attributes
    ----------
    subbands : dict
        Subband index -> :class:`~contimg.convert.header.SubbandInput`, in subband order.
    missing : list of int
        The subband indices without a file.
    n_chan : int
        Channels per subband.
    pointing_dec_deg : float
        The declination the files were fringe-stopped at, degrees.
    start_jd, end_jd : float
        The chunk's start and end, JD (UTC): the first and last integration's centre -/+ half an integration.
    phase_center_ra_deg, phase_center_dec_deg : float
        The MS phase centre (ICRS, degrees): the meridian at ``mid_jd`` at the pointing declination.
    warnings : list of str
        Warnings about the plan (empty unless a caller adds some).
    """

    subbands: dict  # subband index -> SubbandInput
    missing: list
    n_chan: int
    pointing_dec_deg: float
    start_jd: float
    end_jd: float
    phase_center_ra_deg: float = 0.0
    phase_center_dec_deg: float = 0.0
    warnings: list = field(default_factory=list)

    @property
    def mid_jd(self) -> float:
        """The chunk's mid-time, JD (UTC)."""
        return 0.5 * (self.start_jd + self.end_jd)

    @property
    def template(self) -> SubbandInput:
        """The first subband present; its header stands for all of them (:func:`plan_chunk` checked they agree)."""
        return next(iter(self.subbands.values()))

    @property
    def bytes_in(self) -> int:
        """The total size of the chunk's files, bytes."""
        return sum(s.size_bytes for s in self.subbands.values())

    def spectral_layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The MS's channel frequencies, widths and SPW per channel (``bands.ms_spectral_layout``)."""
        return ms_spectral_layout({k: (s.freqs_hz, s.channel_widths_hz) for k, s in self.subbands.items()}, self.n_chan)


def plan_chunk(paths, tolerance_s: float = GROUP_TOLERANCE_S) -> ChunkPlan:
    """Check that ``paths`` are the subbands of one chunk and plan its conversion.

    Raises
    ------
    ConversionError
        No files; two files for one subband; stamps further apart than ``tolerance_s``;
        different antennas, time counts, channel counts or pointing declinations; subbands whose
        frequencies overlap.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConversionError("no subband files given")
    subbands: dict[int, SubbandInput] = {}
    for p in paths:
        info = read_subband(p)
        if info.subband in subbands:
            raise ConversionError(
                f"two files for subband {info.subband}: {subbands[info.subband].path.name} and {p.name}"
            )
        subbands[info.subband] = info
    ordered = [subbands[k] for k in sorted(subbands)]
    first = ordered[0]
    stamps = [s.stamp for s in ordered]
    spread = (max(stamps) - min(stamps)).total_seconds()
    if spread > tolerance_s:
        raise ConversionError(
            f"files span {spread:.0f} s (> {tolerance_s:.0f} s): not one chunk: "
            f"{min(ordered, key=lambda s: s.stamp).path.name} .. {max(ordered, key=lambda s: s.stamp).path.name}"
        )
    for s in ordered[1:]:
        for attr in ("n_times", "n_bls"):
            if getattr(s, attr) != getattr(first, attr):
                raise ConversionError(
                    f"{s.path.name}: {attr}={getattr(s, attr)} differs from {first.path.name} ({getattr(first, attr)})"
                )
        if len(s.freqs_hz) != len(first.freqs_hz):
            raise ConversionError(
                f"{s.path.name}: {len(s.freqs_hz)} channels, {first.path.name} has {len(first.freqs_hz)}"
            )
        if not (np.array_equal(s.ant1, first.ant1) and np.array_equal(s.ant2, first.ant2)):
            raise ConversionError(f"{s.path.name}: baselines differ from {first.path.name}")
        if abs(s.pointing_dec_deg - first.pointing_dec_deg) > POINTING_DEC_TOL_DEG:
            raise ConversionError(
                f"{s.path.name}: pointing dec {s.pointing_dec_deg} differs from {first.pointing_dec_deg}"
            )
    try:  # the subbands' own labels must not overlap once side by side
        ms_spectral_layout({s.subband: (s.freqs_hz, s.channel_widths_hz) for s in ordered}, len(first.freqs_hz))
    except ValueError as err:
        raise ConversionError(f"{first.path.parent}: {err}: " + ", ".join(s.path.name for s in ordered)) from err
    half = first.integration_s / 2.0 / 86400.0
    start_jd = min(s.time_jd.min() for s in ordered) - half
    end_jd = max(s.time_jd.max() for s in ordered) + half
    plan = ChunkPlan(
        subbands=dict(sorted(subbands.items())),
        missing=[k for k in range(N_SUBBANDS) if k not in subbands],
        n_chan=len(first.freqs_hz),
        pointing_dec_deg=first.pointing_dec_deg,
        start_jd=start_jd,
        end_jd=end_jd,
    )
    centre = meridian_icrs(Time(plan.mid_jd, format="jd", scale="utc"), plan.pointing_dec_deg)
    plan.phase_center_ra_deg = float(centre.ra.to_value(u.deg))
    plan.phase_center_dec_deg = float(centre.dec.to_value(u.deg))
    return plan
