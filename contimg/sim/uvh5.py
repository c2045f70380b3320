"""Write one subband file in the layout of the DSA-110 correlator's UVH5 files.

Old-style UVH5 header (``phase_type = "drift"``, ``freq_array`` of shape (1, Nfreqs), scalar
``channel_width``), float32 ``uvw_array``, ``Data/visdata`` (Nblts, 1, Nfreqs, 2) complex64, and the
fringe-stopping keywords in ``extra_keywords``. The file is written under a temporary name and
renamed, like the correlator nodes do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from contimg.core.instrument import DISH_DIAMETER_M, POLARIZATION_ARRAY, SITE, TELESCOPE_NAME

__all__ = ["SubbandFile", "write_subband"]


@dataclass
class SubbandFile:
    """The contents of one subband file, in the correlator's layout."""

    time_jd: np.ndarray  # (Nblts,)
    ant1: np.ndarray  # (Nblts,) antenna numbers
    ant2: np.ndarray
    uvw_m: np.ndarray  # (Nblts, 3)
    freqs_hz: np.ndarray  # (Nfreqs,) descending
    channel_width_hz: float
    integration_s: float
    visdata: np.ndarray  # (Nblts, 1, Nfreqs, 2) complex64
    flags: np.ndarray  # same shape, bool
    nsamples: np.ndarray  # same shape, float32
    antenna_numbers: np.ndarray  # (117,)
    antenna_names: np.ndarray
    antenna_positions_m: np.ndarray  # (117, 3) ITRF relative to the telescope location
    pointing_dec_rad: float
    n_times: int
    n_bls: int
    history: str = ""


def write_subband(path: Path, f: SubbandFile) -> Path:
    """Write ``f`` to ``path`` atomically (``<name>_incomplete.hdf5`` first, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name[: -len(".hdf5")] + "_incomplete.hdf5")
    nblts = len(f.time_jd)
    with h5py.File(tmp, "w") as h5:
        h = h5.create_group("Header")
        h["latitude"] = SITE.lat.deg
        h["longitude"] = SITE.lon.deg
        h["altitude"] = SITE.height.to_value("m")
        h["telescope_name"] = np.bytes_(TELESCOPE_NAME)
        h["instrument"] = np.bytes_("DSA")
        h["object_name"] = np.bytes_("search")
        h["history"] = np.bytes_(f.history or "written by contimg.sim")
        h["version"] = np.bytes_("0.1")
        h["phase_type"] = np.bytes_("drift")
        h["vis_units"] = np.bytes_("uncalib")
        h["Nants_data"] = len(np.union1d(f.ant1, f.ant2))
        h["Nants_telescope"] = len(f.antenna_numbers)
        h["Nbls"] = f.n_bls
        h["Nblts"] = nblts
        h["Nfreqs"] = len(f.freqs_hz)
        h["Npols"] = len(POLARIZATION_ARRAY)
        h["Nspws"] = 1
        h["Ntimes"] = f.n_times
        h["antenna_names"] = np.array([np.bytes_(n) for n in f.antenna_names])
        h["antenna_numbers"] = f.antenna_numbers.astype(np.int64)
        h["antenna_positions"] = f.antenna_positions_m.astype(np.float64)
        h["antenna_diameters"] = np.full(len(f.antenna_numbers), DISH_DIAMETER_M)
        h["ant_1_array"] = f.ant1.astype(np.int64)
        h["ant_2_array"] = f.ant2.astype(np.int64)
        h["uvw_array"] = f.uvw_m.astype(np.float32)  # float32, as the correlator writes it
        h["time_array"] = f.time_jd.astype(np.float64)
        h["integration_time"] = np.full(nblts, f.integration_s)
        h["freq_array"] = f.freqs_hz.astype(np.float64)[None, :]
        h["channel_width"] = float(f.channel_width_hz)
        h["spw_array"] = np.array([0], dtype=np.int64)
        h["polarization_array"] = POLARIZATION_ARRAY.astype(np.int64)
        ek = h.create_group("extra_keywords")
        ek["phase_center_dec"] = float(f.pointing_dec_rad)
        ek["ha_phase_center"] = 0.0
        ek["phase_center_epoch"] = np.bytes_("HADEC")
        ek["fs_table"] = np.bytes_("fringestopping_table.npz")
        ek["applied_delays_ns"] = np.bytes_(" ".join(["0"] * (2 * len(f.antenna_numbers))))
        d = h5.create_group("Data")
        d.create_dataset("visdata", data=f.visdata)  # contiguous: no partial-chunk padding
        d.create_dataset("flags", data=f.flags)
        d.create_dataset("nsamples", data=f.nsamples)
    os.replace(tmp, path)
    return path
