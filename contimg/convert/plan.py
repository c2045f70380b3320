"""Conversion planning: read and check one chunk's subband files before any MS is written.

Reads only HDF5 headers (plus one probe of each file's last data row, which catches truncated
copies) with h5py, so it is cheap and fails early with an error naming the bad file. The CASA-side
writer (``contimg.convert.job``) consumes the :class:`ChunkPlan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
from astropy import units as u
from astropy.time import Time

from contimg.core.instrument import N_SUBBANDS, SUBBAND_WIDTH_HZ, subband_freqs_hz
from contimg.core.phasing import meridian_icrs

__all__ = ["ConversionError", "SubbandInput", "ChunkPlan", "parse_subband_name", "read_subband", "plan_chunk",
           "GROUP_TOLERANCE_S"]

SUBBAND_NAME = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(?P<sb>\d{2})\.hdf5$")
GROUP_TOLERANCE_S = 60.0  # subbands of one chunk start within seconds; chunks are 309 s apart
FREQ_TOL_HZ = 1.0  # channel centres are exact multiples of the raw channel width


class ConversionError(RuntimeError):
    """A chunk's files cannot be converted; the message names the file(s)."""


@dataclass
class SubbandInput:
    path: Path
    subband: int
    stamp: datetime
    freqs_hz: np.ndarray  # file order (descending)
    channel_width_hz: float
    time_jd: np.ndarray  # (Nblts,)
    ant1: np.ndarray
    ant2: np.ndarray
    n_times: int
    n_bls: int
    integration_s: float
    pointing_dec_deg: float
    antenna_numbers: np.ndarray
    antenna_names: list
    antenna_positions_m: np.ndarray  # relative to telescope_xyz_m
    antenna_diameters_m: np.ndarray
    telescope_name: str
    telescope_lat_lon_alt: tuple  # (rad, rad, m)
    size_bytes: int

    @property
    def unique_times_jd(self) -> np.ndarray:
        return np.unique(self.time_jd)


@dataclass
class ChunkPlan:
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
        return 0.5 * (self.start_jd + self.end_jd)

    @property
    def template(self) -> SubbandInput:
        return next(iter(self.subbands.values()))

    @property
    def bytes_in(self) -> int:
        return sum(s.size_bytes for s in self.subbands.values())


def parse_subband_name(path: Path) -> tuple[datetime, int]:
    """(start stamp, subband index) from ``<YYYY-MM-DDTHH:MM:SS>_sbNN.hdf5``.

    Raises
    ------
    ConversionError
        If the name does not have that form or the subband is out of range.
    """
    m = SUBBAND_NAME.match(Path(path).name)
    if not m or int(m["sb"]) >= N_SUBBANDS:
        raise ConversionError(f"{path}: not a subband file name (expected <YYYY-MM-DDTHH:MM:SS>_sbNN.hdf5, NN < 16)")
    return datetime.fromisoformat(m["stamp"]), int(m["sb"])


def _text(value) -> str:
    value = value[()] if isinstance(value, h5py.Dataset) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def read_subband(path: Path) -> SubbandInput:
    """Read a subband file's header and probe its data.

    Raises
    ------
    ConversionError
        If the file cannot be opened or read (truncated or corrupt), lacks a header item, or its
        frequencies do not belong to the subband its name says.
    """
    path = Path(path)
    stamp, sb = parse_subband_name(path)
    try:
        with h5py.File(path, "r") as h5:
            h = h5["Header"]
            vis = h5["Data/visdata"]
            nblts = int(h["Nblts"][()])
            if vis.shape[0] != nblts or vis.shape[-1] != 2:
                raise ConversionError(f"{path}: visdata shape {vis.shape} does not match Nblts={nblts} and 2 pols")
            vis[nblts - 1]  # reading the last row fails on a truncated file
            h5["Data/flags"][nblts - 1]
            freqs = np.asarray(h["freq_array"][()], dtype=float).ravel()
            cw = np.asarray(h["channel_width"][()], dtype=float).ravel()
            ek = h["extra_keywords"]
            names = [_text(n) for n in h["antenna_names"][()]]
            diam = h["antenna_diameters"][()] if "antenna_diameters" in h else np.full(len(names), 4.65)
            out = SubbandInput(
                path=path, subband=sb, stamp=stamp, freqs_hz=freqs, channel_width_hz=float(abs(cw[0])),
                time_jd=np.asarray(h["time_array"][()], dtype=float),
                ant1=np.asarray(h["ant_1_array"][()], dtype=int), ant2=np.asarray(h["ant_2_array"][()], dtype=int),
                n_times=int(h["Ntimes"][()]), n_bls=int(h["Nbls"][()]),
                integration_s=float(np.median(h["integration_time"][()])),
                pointing_dec_deg=float(np.degrees(ek["phase_center_dec"][()])),
                antenna_numbers=np.asarray(h["antenna_numbers"][()], dtype=int), antenna_names=names,
                antenna_positions_m=np.asarray(h["antenna_positions"][()], dtype=float),
                antenna_diameters_m=np.asarray(diam, dtype=float),
                telescope_name=_text(h["telescope_name"]),
                telescope_lat_lon_alt=(np.radians(float(h["latitude"][()])), np.radians(float(h["longitude"][()])),
                                       float(h["altitude"][()])),
                size_bytes=path.stat().st_size,
            )
    except ConversionError:
        raise
    except (OSError, KeyError, ValueError, IndexError) as err:
        raise ConversionError(f"{path}: cannot read UVH5 file ({type(err).__name__}: {err}); truncated or corrupt?") from err
    expected = subband_freqs_hz(sb, len(freqs)) if 384 % len(freqs) == 0 else None
    if expected is None or not np.allclose(np.sort(freqs), np.sort(expected), rtol=0, atol=FREQ_TOL_HZ):
        raise ConversionError(f"{path}: frequencies {freqs.min() / 1e6:.3f}-{freqs.max() / 1e6:.3f} MHz do not belong "
                              f"to subband {sb} ({len(freqs)} channels)")
    if not np.isclose(out.channel_width_hz * len(freqs), SUBBAND_WIDTH_HZ, rtol=1e-6):
        raise ConversionError(f"{path}: channel width {out.channel_width_hz} Hz x {len(freqs)} is not one subband")
    if len(out.time_jd) != out.n_times * out.n_bls:
        raise ConversionError(f"{path}: Nblts={len(out.time_jd)} is not Ntimes x Nbls = {out.n_times} x {out.n_bls}")
    return out


def plan_chunk(paths, tolerance_s: float = GROUP_TOLERANCE_S) -> ChunkPlan:
    """Check that ``paths`` are the subbands of one chunk and plan its conversion.

    Raises
    ------
    ConversionError
        No files; two files for one subband; stamps further apart than ``tolerance_s``;
        different antennas, time counts, channel counts or pointing declinations.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConversionError("no subband files given")
    subbands: dict[int, SubbandInput] = {}
    for p in paths:
        info = read_subband(p)
        if info.subband in subbands:
            raise ConversionError(f"two files for subband {info.subband}: {subbands[info.subband].path.name} and {p.name}")
        subbands[info.subband] = info
    ordered = [subbands[k] for k in sorted(subbands)]
    first = ordered[0]
    stamps = [s.stamp for s in ordered]
    spread = (max(stamps) - min(stamps)).total_seconds()
    if spread > tolerance_s:
        raise ConversionError(f"files span {spread:.0f} s (> {tolerance_s:.0f} s): not one chunk: "
                              f"{min(ordered, key=lambda s: s.stamp).path.name} .. {max(ordered, key=lambda s: s.stamp).path.name}")
    for s in ordered[1:]:
        for attr in ("n_times", "n_bls"):
            if getattr(s, attr) != getattr(first, attr):
                raise ConversionError(f"{s.path.name}: {attr}={getattr(s, attr)} differs from {first.path.name} ({getattr(first, attr)})")
        if len(s.freqs_hz) != len(first.freqs_hz):
            raise ConversionError(f"{s.path.name}: {len(s.freqs_hz)} channels, {first.path.name} has {len(first.freqs_hz)}")
        if not (np.array_equal(s.ant1, first.ant1) and np.array_equal(s.ant2, first.ant2)):
            raise ConversionError(f"{s.path.name}: baselines differ from {first.path.name}")
        if abs(s.pointing_dec_deg - first.pointing_dec_deg) > 1e-6:
            raise ConversionError(f"{s.path.name}: pointing dec {s.pointing_dec_deg} differs from {first.pointing_dec_deg}")
    half = first.integration_s / 2.0 / 86400.0
    start_jd = min(s.time_jd.min() for s in ordered) - half
    end_jd = max(s.time_jd.max() for s in ordered) + half
    plan = ChunkPlan(subbands=dict(sorted(subbands.items())), missing=[k for k in range(N_SUBBANDS) if k not in subbands],
                     n_chan=len(first.freqs_hz), pointing_dec_deg=first.pointing_dec_deg, start_jd=start_jd, end_jd=end_jd)
    centre = meridian_icrs(Time(plan.mid_jd, format="jd", scale="utc"), plan.pointing_dec_deg)
    plan.phase_center_ra_deg = float(centre.ra.to_value(u.deg))
    plan.phase_center_dec_deg = float(centre.dec.to_value(u.deg))
    return plan
