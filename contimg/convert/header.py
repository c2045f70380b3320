"""One subband file's header, read by the UVH5 standard with h5py (no pyuvdata, no casacore).

Accepts what real correlator files and pyuvdata's own writer produce: ``freq_array`` of shape
(1, Nfreqs) (old UVH5) or (Nfreqs,); ``channel_width`` a scalar or one per channel; float32
``uvw_array`` (never read: the converter recomputes uvw); optional items (``antenna_diameters``,
``extra_keywords`` beyond the fringe-stop centre) and keywords this reader does not know. Every
failure is a :class:`ConversionError` naming the file and the header item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np

from contimg.convert.bands import BandError, check_subband_labels
from contimg.core.instrument import DISH_DIAMETER_M, N_SUBBANDS, POLARIZATION_ARRAY

__all__ = [
    "HA_PHASE_CENTER_TOL_RAD",
    "SUBBAND_NAME",
    "ConversionError",
    "SubbandInput",
    "parse_subband_name",
    "read_subband",
]

SUBBAND_NAME = re.compile(r"^(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(?P<sb>\d{2})\.hdf5$")
# The correlator fringe-stops on the meridian (ha_phase_center = 0); the rotation to the field
# assumes it. 1e-6 rad (0.2") only absorbs a float32 round trip of zero-ish values.
HA_PHASE_CENTER_TOL_RAD = 1e-6


class ConversionError(RuntimeError):
    """A chunk's files cannot be converted; the message names the file(s)."""


@dataclass
class SubbandInput:
    """What the converter reads from one subband file's header (no visibilities).

    Frequencies and channel widths are in Hz and in the file's own order, times are JD (UTC) per
    baseline-time row, antenna positions are metres relative to the telescope's position, and
    ``telescope_lat_lon_alt`` is (rad, rad, m).
    """

    path: Path
    subband: int
    stamp: datetime
    freqs_hz: np.ndarray  # (Nfreqs,) the file's own labels, file order (descending in DSA-110's files)
    channel_widths_hz: np.ndarray  # (Nfreqs,) positive, file order
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
        """The file's integration times, JD (UTC), sorted and without repeats."""
        return np.unique(self.time_jd)

    @property
    def channel_width_hz(self) -> float:
        """The typical channel width (the median), Hz."""
        return float(np.median(self.channel_widths_hz))

    @property
    def descending(self) -> bool:
        """True when the file's channels run from high to low frequency (DSA-110's files)."""
        return bool(len(self.freqs_hz) > 1 and self.freqs_hz[0] > self.freqs_hz[-1])


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


class _Fields:
    """Reads items of one open file; every problem raises a ConversionError naming file and item."""

    def __init__(self, path: Path, h5: h5py.File):
        self.path, self.h5 = path, h5

    def fail(self, name: str, problem: str) -> ConversionError:
        return ConversionError(f"{self.path}: {name}: {problem}")

    def has(self, name: str) -> bool:
        return name in self.h5

    def raw(self, name: str):
        if name not in self.h5:
            raise self.fail(name, "missing (required by the UVH5 standard and the converter)")
        item = self.h5[name]
        if not isinstance(item, h5py.Dataset):
            raise self.fail(name, "is a group, expected a dataset")
        try:
            return item[()]
        except (OSError, ValueError, TypeError) as err:
            raise self.fail(name, f"cannot be read ({type(err).__name__}: {err}); truncated or corrupt?") from err

    def array(self, name: str, dtype, length: int | None = None) -> np.ndarray:
        """A 1-d array; ``length`` checks its size.

        A (1, N) array of old UVH5 files is flattened, a scalar becomes (1,).
        """
        value = self.raw(name)
        try:
            out = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as err:
            raise self.fail(name, f"not {np.dtype(dtype).name} values ({err})") from err
        if out.ndim != 1 and sum(d != 1 for d in out.shape) <= 1:  # a scalar, or (1, N)
            out = out.reshape(-1)
        if out.ndim != 1 or (length is not None and len(out) != length):
            raise self.fail(name, f"shape {np.shape(value)}, expected ({length if length is not None else 'N'},)")
        if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            raise self.fail(name, "holds non-finite values")
        return out

    def number(self, name: str, dtype=float):
        value = np.asarray(self.raw(name))
        if value.size != 1:
            raise self.fail(name, f"shape {value.shape}, expected a scalar")
        try:
            out = dtype(value.reshape(()))
        except (TypeError, ValueError) as err:
            raise self.fail(name, f"not a {dtype.__name__} ({err})") from err
        if isinstance(out, float) and not np.isfinite(out):
            raise self.fail(name, f"{out} is not finite")
        return out

    def text(self, name: str) -> str:
        value = self.raw(name)
        value = value.reshape(()).item() if isinstance(value, np.ndarray) and value.size == 1 else value
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_subband(path: Path) -> SubbandInput:
    """Read a subband file's header and probe its data (the last row, which a truncated copy lacks).

    Raises
    ------
    ConversionError
        If the file cannot be opened; a required header item is missing, unreadable or of the
        wrong shape; its frequencies do not describe the subband its name says; its baselines,
        times or polarizations do not add up; or its data arrays are truncated. The message
        names the file and the item (``.../x_sb03.hdf5: Header/freq_array: ...``).
    """
    path = Path(path)
    stamp, sb = parse_subband_name(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ConversionError(f"{path}: cannot open as HDF5 ({err}); truncated or corrupt?") from err
    with h5:
        f = _Fields(path, h5)
        return _read(f, path, stamp, sb)


def _read(f: _Fields, path: Path, stamp: datetime, sb: int) -> SubbandInput:
    nblts, n_times, n_bls = (f.number(f"Header/{k}", int) for k in ("Nblts", "Ntimes", "Nbls"))
    n_freqs, n_pols = f.number("Header/Nfreqs", int), f.number("Header/Npols", int)
    if nblts != n_times * n_bls:
        raise f.fail("Header/Nblts", f"{nblts} is not Ntimes x Nbls = {n_times} x {n_bls}")
    pols = f.array("Header/polarization_array", int, n_pols)
    if not np.array_equal(pols, POLARIZATION_ARRAY):
        raise f.fail("Header/polarization_array", f"{pols.tolist()}, expected {POLARIZATION_ARRAY.tolist()} (XX, YY)")
    freqs = f.array("Header/freq_array", float, n_freqs)
    widths = f.array("Header/channel_width", float)
    if len(widths) == 1:
        widths = np.full(n_freqs, widths[0])
    elif len(widths) != n_freqs:
        raise f.fail("Header/channel_width", f"{len(widths)} values for {n_freqs} channels (expected 1 or Nfreqs)")
    try:
        check_subband_labels(freqs, widths, sb)
    except BandError as err:
        raise f.fail(f"Header/{err.field}", str(err)) from err
    time_jd = f.array("Header/time_array", float, nblts)
    ant1, ant2 = f.array("Header/ant_1_array", int, nblts), f.array("Header/ant_2_array", int, nblts)
    integ = f.array("Header/integration_time", float)
    if len(integ) not in (1, nblts) or np.any(integ <= 0):
        raise f.fail("Header/integration_time", f"{len(integ)} values (expected Nblts={nblts}), all > 0")
    if len(np.unique(time_jd)) != n_times:
        raise f.fail("Header/time_array", f"{len(np.unique(time_jd))} distinct times, Ntimes says {n_times}")
    n_ant = f.number("Header/Nants_telescope", int)
    numbers = f.array("Header/antenna_numbers", int, n_ant)
    names = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in f.raw("Header/antenna_names")]
    if len(names) != n_ant:
        raise f.fail("Header/antenna_names", f"{len(names)} names for Nants_telescope={n_ant}")
    positions = np.asarray(f.raw("Header/antenna_positions"), dtype=float)
    if positions.shape != (n_ant, 3) or not np.all(np.isfinite(positions)):
        raise f.fail("Header/antenna_positions", f"shape {positions.shape}, expected ({n_ant}, 3), finite")
    unknown = np.setdiff1d(np.union1d(ant1, ant2), numbers)
    if unknown.size or np.any(numbers < 0):
        raise f.fail(
            "Header/ant_1_array",
            f"antennas {unknown[:5].tolist()} are not in Header/antenna_numbers"
            if unknown.size
            else "negative antenna numbers",
        )
    if f.has("Header/antenna_diameters"):
        diameters = f.array("Header/antenna_diameters", float, n_ant)
    else:  # optional in the standard; every DSA-110 dish is the same
        diameters = np.full(n_ant, DISH_DIAMETER_M)
    lat_deg, lon_deg = f.number("Header/latitude"), f.number("Header/longitude")
    alt_m = f.number("Header/altitude")
    pointing_dec_deg = _fringe_stop_dec_deg(f)
    _probe_data(f, nblts, n_freqs, n_pols)
    return SubbandInput(
        path=path,
        subband=sb,
        stamp=stamp,
        freqs_hz=freqs,
        channel_widths_hz=np.abs(widths),
        time_jd=time_jd,
        ant1=ant1,
        ant2=ant2,
        n_times=n_times,
        n_bls=n_bls,
        integration_s=float(np.median(integ)),
        pointing_dec_deg=pointing_dec_deg,
        antenna_numbers=numbers,
        antenna_names=names,
        antenna_positions_m=positions,
        antenna_diameters_m=diameters,
        telescope_name=f.text("Header/telescope_name"),
        telescope_lat_lon_alt=(np.radians(lat_deg), np.radians(lon_deg), alt_m),
        size_bytes=path.stat().st_size,
    )


def _fringe_stop_dec_deg(f: _Fields) -> float:
    """The declination the correlator fringe-stopped on (HA = 0), from ``extra_keywords``."""
    ek = "Header/extra_keywords"
    dec_rad = f.number(f"{ek}/phase_center_dec")
    if not -np.pi / 2 <= dec_rad <= np.pi / 2:
        raise f.fail(f"{ek}/phase_center_dec", f"{dec_rad} is not a declination in radians")
    if f.has(f"{ek}/ha_phase_center"):
        ha_rad = f.number(f"{ek}/ha_phase_center")
        if abs(ha_rad) > HA_PHASE_CENTER_TOL_RAD:
            raise f.fail(
                f"{ek}/ha_phase_center",
                f"{ha_rad} rad: the converter handles data fringe-stopped on the meridian (0) only",
            )
    if f.has(f"{ek}/phase_center_epoch"):
        epoch = f.text(f"{ek}/phase_center_epoch")
        if epoch.strip().upper() != "HADEC":
            raise f.fail(f"{ek}/phase_center_epoch", f"{epoch!r}, expected 'HADEC' (a fringe-stopped drift scan)")
    return float(np.degrees(dec_rad))


def _probe_data(f: _Fields, nblts: int, n_freqs: int, n_pols: int) -> None:
    """Check the data arrays' shapes and read their last row (which a truncated copy cannot give)."""
    for name in ("Data/visdata", "Data/flags", "Data/nsamples"):
        if name not in f.h5 or not isinstance(f.h5[name], h5py.Dataset):
            raise f.fail(name, "missing (required by the UVH5 standard)")
        dset = f.h5[name]
        shape = dset.shape
        # (Nblts, Nfreqs, Npols), or (Nblts, 1, Nfreqs, Npols) in old UVH5 files
        if (
            len(shape) not in (3, 4)
            or shape[0] != nblts
            or shape[-2:] != (n_freqs, n_pols)
            or (len(shape) == 4 and shape[1] != 1)
        ):
            raise f.fail(name, f"shape {shape} does not match Nblts={nblts}, Nfreqs={n_freqs}, Npols={n_pols}")
        try:
            dset[nblts - 1]
        except (OSError, ValueError) as err:
            raise f.fail(name, f"cannot be read ({type(err).__name__}: {err}); truncated or corrupt?") from err
