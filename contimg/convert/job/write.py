"""Writing a prepared SPW into its block of MAIN rows, and putting the finished MS in place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from contimg.convert.header import SubbandInput

__all__ = ["put_in_place", "write_spw"]


def write_spw(ms, spw: dict, src: SubbandInput, nblts: int) -> None:
    """Write SPW ``spw["k"]`` (a ``prepare_spw`` result) into MAIN rows k * nblts .. (k + 1) * nblts - 1."""
    k = spw["k"]
    row0 = k * nblts

    def put(col, value):
        ms.putcol(col, value, startrow=row0, nrow=nblts)

    put("DATA", spw["data"])
    put("FLAG", spw["flags"])
    put("FLAG_ROW", spw["flag_row"])
    if "WEIGHT_SPECTRUM" in ms.colnames():
        wspec = spw["wspec"]
        if wspec is None:  # uniform in this SPW, but another SPW needed the column
            wspec = np.where(spw["flags"], np.float32(0), spw["weight"][:, None, :])
        put("WEIGHT_SPECTRUM", wspec)
    put("WEIGHT", spw["weight"])
    put("SIGMA", spw["sigma"])
    put("UVW", spw["uvw"])  # MS convention (pyuvdata flip_conj)
    mjd_s = (src.time_jd - 2400000.5) * 86400.0
    put("TIME", mjd_s)
    put("TIME_CENTROID", mjd_s)
    put("INTERVAL", np.full(nblts, src.integration_s))
    put("EXPOSURE", np.full(nblts, src.integration_s))
    put("ANTENNA1", src.ant1)
    put("ANTENNA2", src.ant2)
    put("DATA_DESC_ID", np.full(nblts, k, np.int32))
    put("SCAN_NUMBER", np.ones(nblts, np.int32))
    put("STATE_ID", np.full(nblts, -1, np.int32))


def put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished MS into place; an earlier version is replaced only once the new one is complete."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
