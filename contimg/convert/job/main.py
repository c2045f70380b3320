"""Child job: one chunk's subband files -> one Measurement Set (python-casacore; never casatools).

    python -m contimg.convert.job FILE.hdf5 [FILE ...] --out CHUNK.ms [--report R.json] [--scratch DIR]

Each subband is read once, rotated from its fringe-stop centre (HA=0, pointing dec, moving with
time) to the chunk's fixed ICRS meridian field using its own time stamps, and written as one
spectral window in a single block per column. Layout and signs: ``docs/conventions.md``.
The MS is built under a temporary name and renamed into place only after the post-conversion
checks pass; on any failure nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.convert.plan import ChunkPlan, ConversionError, SubbandInput, plan_chunk
from contimg.core.instrument import N_SUBBANDS, TELESCOPE_NAME, load_stations, subband_freqs_hz
from contimg.childjobs.report import report

ANT_POS_TOL_M = 0.05  # antenna positions must match the station table to 5 cm
PHASE_CENTRE_TOL_ARCSEC = 1.0
UVW_LENGTH_TOL_M = 1e-3  # |uvw| is a rotation of the baseline vector: lengths agree to float64 rounding


def sky_frames(subs: list[SubbandInput], ra_rad: float, dec_rad: float) -> list[tuple]:
    """Per subband, the time-dependent part of its geometry, all subbands in one vectorised pass:
    (unique times JD, GCRS->ITRS matrices (T, 3, 3), old centre (T, 3), field (T, 3)).

    Erfa's full terrestrial-to-celestial matrix (precession-nutation, UT1, polar motion from
    astropy's IERS tables) and the apparent (aberrated) directions, in the GCRS, of the old centre
    (HA=0, pointing dec) and of the field, as the sky imprinted the data. Computed in the main
    process, which loads the IERS tables anyway for the plan, so that the workers never do.
    """
    import erfa
    from astropy import units as u
    from astropy.coordinates import GCRS, EarthLocation, HADec, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    lat, lon, alt = subs[0].telescope_lat_lon_alt
    loc = EarthLocation.from_geodetic(lon * u.rad, lat * u.rad, alt * u.m)
    uniq = [np.unique(s.time_jd) for s in subs]
    t = Time(np.concatenate(uniq), format="jd", scale="utc", location=loc)
    xp, yp = iers.earth_orientation_table.get().pm_xy(t.jd1, t.jd2)
    tt, ut1 = t.tt, t.ut1
    rc2t = erfa.c2t06a(tt.jd1, tt.jd2, ut1.jd1, ut1.jd2, xp.to_value(u.rad), yp.to_value(u.rad))  # (T, 3, 3)
    gcrs = GCRS(obstime=t)
    s_new = SkyCoord(ra=ra_rad * u.rad, dec=dec_rad * u.rad, frame="icrs").transform_to(gcrs).cartesian.xyz.value.T
    dec_old = np.concatenate([np.full(len(q), np.radians(s.pointing_dec_deg)) for q, s in zip(uniq, subs)])
    s_old = SkyCoord(ha=np.zeros(len(t)) * u.rad, dec=dec_old * u.rad,
                     frame=HADec(obstime=t, location=loc, pressure=0 * u.hPa)).transform_to(gcrs).cartesian.xyz.value.T
    out, i = [], 0
    for q in uniq:
        out.append((q, rc2t[i:i + len(q)], s_old[i:i + len(q)], s_new[i:i + len(q)]))
        i += len(q)
    return out


def _geometry(sub: SubbandInput, frames: tuple, ra_rad: float, dec_rad: float):
    """uvw for the fixed field (UVW column), and the old and new w, per blt, in metres.

    The phase rotation uses w = b . s with baselines rotated into the GCRS by the matrices of
    ``frames`` (``sky_frames``) and the directions there. The UVW column is computed by
    casacore's own measures (``to_uvw``, the code CASA uses, on casadata's tables) so that CASA
    agrees with it.
    """
    t_unique, rc2t, s_old, s_new = frames
    tidx = np.searchsorted(t_unique, sub.time_jd)
    # rc2t maps GCRS -> ITRS; its transpose takes the (relative) antenna positions into GCRS axes
    pos_gcrs = np.einsum("tji,aj->tai", rc2t, sub.antenna_positions_m)  # (T, A, 3)
    lookup = np.full(int(np.max(sub.antenna_numbers)) + 1, -1)
    lookup[sub.antenna_numbers] = np.arange(len(sub.antenna_numbers))
    i1, i2 = lookup[sub.ant1], lookup[sub.ant2]
    b = pos_gcrs[tidx, i2] - pos_gcrs[tidx, i1]  # (Nblts, 3), x_ant2 - x_ant1 (pyuvdata's sense)
    ant_uvw = _casacore_uvw(sub.antenna_positions_m, t_unique, ra_rad, dec_rad)  # (T, A, 3)
    uvw = ant_uvw[tidx, i2] - ant_uvw[tidx, i1]
    w_new = np.einsum("ij,ij->i", b, s_new[tidx])
    w_old = np.einsum("ij,ij->i", b, s_old[tidx])
    return uvw, w_old, w_new


def _casacore_uvw(ant_pos_rel_m: np.ndarray, times_jd: np.ndarray, ra_rad: float, dec_rad: float) -> np.ndarray:
    """Per-antenna J2000 uvw (T, A, 3) of positions relative to the array centre, by casacore measures."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    dm = measures()
    dm.do_frame(dm.observatory(TELESCOPE_NAME))
    dm.do_frame(dm.direction("J2000", quantity(ra_rad, "rad"), quantity(dec_rad, "rad")))
    xyz = [quantity(ant_pos_rel_m[:, k], "m") for k in range(3)]
    out = np.empty((len(times_jd), len(ant_pos_rel_m), 3))
    for i, jd in enumerate(times_jd):
        dm.do_frame(dm.epoch("utc", quantity((jd - 2400000.5) * 86400.0, "s")))
        uvw = dm.to_uvw(dm.baseline("itrf", *xyz))["xyz"]
        out[i] = np.asarray(uvw.get_value() if hasattr(uvw, "get_value") else uvw).reshape(-1, 3)
    return out


def _read_chunk_ordered(dset) -> np.ndarray:
    """A UVH5 data array (Nblts, [1,] Nfreqs, Npols) as a view (Nblts, G, cc, Q, cp) of channel
    ``g * cc + i`` and pol ``q * cp + j``, read chunk column by chunk column.

    The correlator's files are chunked a few channels and one pol wide; reading them whole
    scatters every chunk element by element into (blt, chan, pol) order (3-15x slower than the
    bytes warrant). Read instead in slabs one chunk wide in channel and pol, each of which lands
    as one contiguous run per chunk, and let the first numpy pass over the data (which reads it
    anyway) do the reordering through this view. Unchunked or oddly chunked data: one slab.
    """
    shape = dset.shape
    n, n_f, n_p = shape[0], shape[-2], shape[-1]
    cc, cp = (dset.chunks[-2], dset.chunks[-1]) if dset.chunks else (n_f, n_p)
    if n_f % cc or n_p % cp:
        cc, cp = n_f, n_p
    g, q = n_f // cc, n_p // cp
    buf = np.empty((g, q, n) + (1,) * (len(shape) - 3) + (cc, cp), dset.dtype)
    lead = (slice(None),) * (len(shape) - 2)
    for i in range(g):
        for j in range(q):
            if g == 1 and q == 1:
                dset.read_direct(buf[0, 0])
            else:
                dset.read_direct(buf[i, j], lead + (slice(i * cc, (i + 1) * cc), slice(j * cp, (j + 1) * cp)))
    return buf.reshape(g, q, n, cc, cp).transpose(2, 0, 3, 1, 4)


def _as_groups(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``a`` (N, F, P), C-contiguous, viewed with the (N, G, cc, Q, cp) grouping of ``like``."""
    n, g, cc, q, cp = like.shape
    return a.reshape(n, g, cc, q, cp)


def _reversed_channels(v: np.ndarray) -> np.ndarray:
    """A (N, G, cc, Q, cp) view with the channel order reversed (files hold channels descending)."""
    return v[:, ::-1, ::-1]


TILE_BYTES = 1 << 20  # ~1 MB tiles: large contiguous writes, and CASA's per-row readers still cache well


def _main_table_desc(n_chan: int):
    """MAIN table description: the standard MS columns plus DATA, each big column in its own tiled
    data manager (a shared hypercube makes every block write a read-modify-write of the shared
    tiles). WEIGHT_SPECTRUM is added only when some row's nsamples vary across its channels
    (``_add_weight_spectrum``); otherwise WEIGHT carries the weights (docs/conventions.md).

    MODEL_DATA and CORRECTED_DATA are not written (2.7 GB of copies of DATA at full size): the
    calibration and imaging jobs work on their own averaged copies, and CASA's ``applycal`` (the
    imaging fallback) adds CORRECTED_DATA itself (docs/conventions.md)."""
    from casacore import tables

    desc = tables.required_ms_desc("MAIN")
    desc["UVW"].update(dataManagerType="TiledColumnStMan", dataManagerGroup="TiledUVW")
    for key, group in (("FLAG", "TiledFlag"), ("FLAG_CATEGORY", "TiledFlagCategory")):
        desc[key].update(dataManagerType="TiledShapeStMan", dataManagerGroup=group)
    # WEIGHT and SIGMA have one value per pol (always XX, YY): fixed-shape columns in a tiled
    # column manager cost 2 ms per SPW to write, against ~28 ms each as variable-shape cells
    for key, group in (("WEIGHT", "TiledWgt"), ("SIGMA", "TiledSigma")):
        desc[key].update(dataManagerType="TiledColumnStMan", dataManagerGroup=group, shape=np.int32([2]), option=5)
    # the per-row scalars that change from row to row: casacore's default bucket (~400 bytes)
    # makes a block write cost ~100 ns per value; 64 kB buckets cost a quarter of that
    for key in ("ANTENNA1", "ANTENNA2", "DATA_DESC_ID", "FLAG_ROW"):
        desc[key].update(dataManagerType="StandardStMan", dataManagerGroup="RowScalars")
    desc["FLAG_CATEGORY"].update(keywords={"CATEGORY": np.array("baddata")})
    for key in ("ARRAY_ID", "EXPOSURE", "FEED1", "FEED2", "FIELD_ID", "INTERVAL", "OBSERVATION_ID", "PROCESSOR_ID",
                "SCAN_NUMBER", "STATE_ID", "TIME", "TIME_CENTROID"):
        desc[key].update(dataManagerType="IncrementalStMan", dataManagerGroup=key)
    spec = {}
    for name, value, vtype, bytes_per in (("DATA", 0j, "complex", 8),):
        group = f"Tiled_{name}"
        cd = tables.makearrcoldesc(name, value, valuetype=vtype, ndim=2, datamanagertype="TiledShapeStMan",
                                   datamanagergroup=group)
        del cd["desc"]["shape"]
        desc.update(tables.maketabdesc(cd))
        rows = max(1, TILE_BYTES // (2 * n_chan * bytes_per))
        spec[group] = {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows])}  # casacore axis order: pol, chan, row
    rows = max(1, TILE_BYTES // (2 * n_chan))
    spec["TiledFlag"] = {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows * 8])}  # bools are stored as bits
    spec["RowScalars"] = {"BUCKETSIZE": 1 << 16}
    return desc, tables.makedminfo(desc, spec)


def _init_ms(path: Path, nrows: int, n_chan: int):
    from casacore import tables

    desc, dminfo = _main_table_desc(n_chan)
    ms = tables.default_ms(str(path), desc, dminfo)
    ms.addrows(nrows)
    return ms, tables


def _write_subtables(path: Path, plan: ChunkPlan, freqs_asc: np.ndarray, widths: np.ndarray, spw_of_chan: np.ndarray):
    from astropy import units as u
    from astropy.coordinates import EarthLocation
    from casacore import tables
    from pyuvdata.utils.io import ms as ms_utils

    t = plan.template
    lat, lon, alt = t.telescope_lat_lon_alt
    loc = EarthLocation.from_geodetic(lon * u.rad, lat * u.rad, alt * u.m)
    tel_xyz = np.array([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)])
    mid_s = (plan.mid_jd - 2400000.5) * 86400.0
    p = str(path)
    ms_utils.write_ms_antenna(p, antenna_numbers=t.antenna_numbers, antenna_names=t.antenna_names,
                              antenna_positions=t.antenna_positions_m, antenna_diameters=t.antenna_diameters_m,
                              antenna_mount=["ALT-AZ"] * len(t.antenna_numbers), telescope_location=tel_xyz,
                              telescope_frame="itrs")
    ms_utils.write_ms_data_description(p, nspws=N_SUBBANDS)
    ms_utils.write_ms_feed(p, nfeeds=2, nspws=N_SUBBANDS, feed_array=np.tile(["x", "y"], (len(t.antenna_numbers), 1)),
                           feed_angle=np.zeros((len(t.antenna_numbers), 2)), antenna_numbers=t.antenna_numbers,
                           time_val=mid_s)
    field_name = f"meridian_{plan.pointing_dec_deg:+.2f}"
    catalog = {0: {"cat_name": field_name, "cat_type": "sidereal", "cat_lon": np.radians(plan.phase_center_ra_deg),
                   "cat_lat": np.radians(plan.phase_center_dec_deg), "cat_frame": "icrs", "cat_epoch": 2000.0,
                   "cat_times": None, "cat_pm_ra": None, "cat_pm_dec": None, "cat_vrad": None, "cat_dist": None,
                   "info_source": "contimg"}}
    ms_utils.write_ms_field(p, phase_center_catalog=catalog, time_val=mid_s)
    ms_utils.write_ms_source(p, phase_center_catalog=catalog, time_default=mid_s)
    ms_utils.write_ms_observation(p, telescope_name=TELESCOPE_NAME, telescope_location=tel_xyz, observer="DSA-110")
    ms_utils.write_ms_spectral_window(p, freq_array=freqs_asc, channel_width=widths, spw_array=np.arange(N_SUBBANDS),
                                      id_array=spw_of_chan)
    ms_utils.write_ms_polarization(p, polarization_array=np.array([-5, -6]))
    ms_utils.write_ms_history(p, history=f"contimg {__version__}: converted from "
                                         + ", ".join(s.path.name for s in plan.subbands.values()))
    start_s = (plan.start_jd - 2400000.5) * 86400.0
    end_s = (plan.end_jd - 2400000.5) * 86400.0
    with tables.table(p + "::OBSERVATION", readonly=False, ack=False) as obs:
        obs.putcell("TIME_RANGE", 0, np.array([start_s, end_s]))
        obs.putcell("PROJECT", 0, "DSA-110 continuum")
        obs.putcell("RELEASE_DATE", 0, end_s)
    with tables.table(p + "::PROCESSOR", readonly=False, ack=False) as proc:
        proc.addrows(1)
        proc.putcell("TYPE", 0, "CORRELATOR")
        proc.putcell("SUB_TYPE", 0, "DSA-110")
        proc.putcell("TYPE_ID", 0, 0)
        proc.putcell("MODE_ID", 0, 0)
    with tables.table(p + "::SPECTRAL_WINDOW", readonly=False, ack=False) as spw:
        for k in range(N_SUBBANDS):
            spw.putcell("NAME", k, f"sb{N_SUBBANDS - 1 - k:02d}")
            spw.putcell("REF_FREQUENCY", k, float(freqs_asc[spw_of_chan == k][0]))


def _warm_up() -> None:
    """Run once in each worker while the main process plans: pay the imports and casacore's
    measures tables before the first subband arrives."""
    import h5py  # noqa: F401
    import pyuvdata.utils.io.ms  # noqa: F401  (for the subtables, ~1 s of imports off the writer's path)
    from casacore.measures import measures

    from contimg.calibrate.calavg import rotation  # noqa: F401

    measures().observatory(TELESCOPE_NAME)


class _Slot:
    """One shared-memory block holding a prepared SPW's DATA and FLAG, so that the ~100 MB per SPW
    pass from worker to writer without pickling. The main process creates and unlinks the slots;
    workers only attach to them."""

    def __init__(self, nblts: int, n_chan: int, name: str | None = None):
        from multiprocessing import shared_memory

        self.shape = (nblts, n_chan, 2)
        n = nblts * n_chan * 2
        self.shm = shared_memory.SharedMemory(name=name, create=name is None, size=n * 9 if name is None else 0)
        self.data = np.ndarray(self.shape, np.complex64, buffer=self.shm.buf)
        self.flags = np.ndarray(self.shape, np.bool_, buffer=self.shm.buf, offset=n * 8)

    @property
    def name(self) -> str:
        return self.shm.name

    def close(self) -> None:
        del self.data, self.flags
        try:
            self.shm.close()
        except BufferError:  # an array on it still referenced (a traceback); freed with the process
            pass


def prepare_spw(src: SubbandInput, present: bool, k: int, n_chan: int, frames: tuple, ra0: float, dec0: float,
                slot_name: str | None = None) -> dict:
    """Everything SPW ``k`` (subband ``15 - k``) writes, computed from its file alone.

    ``src`` is the subband's file, or (``present`` false: the subband is missing) its nearest
    neighbour, whose times and baselines the all-flagged rows take; ``frames`` its
    ``sky_frames`` entry. Runs in a worker process: read once, rotate with the subband's own
    times from the moving fringe-stop centre to the fixed field, flag NaN/Inf, zeros and autos,
    MS sign convention, channels ascending. DATA and FLAG go into the shared-memory slot
    ``slot_name`` (or new arrays in the result when None).

    Weights: when every row's nsamples are the same in all its channels (DSA-110's files), the
    result holds only WEIGHT (per row and pol: that value, 0 where all channels are flagged) and
    ``wspec`` is None; otherwise also WEIGHT_SPECTRUM (nsamples, 0 where flagged), and WEIGHT is
    the mean over the unflagged channels.
    """
    nblts = len(src.time_jd)
    args = (src, present, k, n_chan, frames, ra0, dec0)
    if slot_name is None:
        data, flags = np.empty((nblts, n_chan, 2), np.complex64), np.empty((nblts, n_chan, 2), bool)
        return {**_prepare_into(*args, data, flags), "data": data, "flags": flags}
    slot = _Slot(nblts, n_chan, slot_name)
    try:
        return _prepare_into(*args, slot.data, slot.flags)
    finally:
        slot.close()


def _prepare_into(src: SubbandInput, present: bool, k: int, n_chan: int, frames: tuple, ra0: float, dec0: float,
                  data: np.ndarray, flags: np.ndarray) -> dict:
    import h5py

    from contimg.calibrate.calavg import rotation, sigma_from_weight

    t0 = time.perf_counter()
    nblts = len(src.time_jd)
    n_nan = 0
    if present:
        with h5py.File(src.path, "r") as h5:
            vis = _read_chunk_ordered(h5["Data/visdata"])  # complex64, (N, G, cc, Q, cp) views, file order
            flags_in = _read_chunk_ordered(h5["Data/flags"])
            nsamples = _read_chunk_ordered(h5["Data/nsamples"])
        t_read = time.perf_counter() - t0
        uvw_new, w_old, w_new = _geometry(src, frames, ra0, dec0)
        # MS convention: conj(vis * rot) = conj(vis) * conj(rot), channels ascending, written
        # straight into the output (this pass also puts the chunk-ordered read in row order)
        np.conjugate(_reversed_channels(vis), out=_as_groups(data, vis))
        del vis
        np.multiply(data, rotation(w_old - w_new, src.freqs_hz[::-1])[:, :, None], out=data)
        finite = np.isfinite(data)  # a non-finite visibility stays non-finite under a unit rotation
        if not finite.all():
            bad = np.logical_not(finite, out=finite)
            n_nan = int(np.count_nonzero(bad.view(np.uint16)))  # (blt, channel) pairs with a bad pol
            data[bad] = 0
        del finite
        # exact zeros are correlator dropouts, never data (and the NaN/Inf just zeroed)
        np.equal(data, 0, out=flags)
        f5 = _as_groups(flags, flags_in)
        np.logical_or(f5, _reversed_channels(flags_in), out=f5)
        del flags_in, f5
        flags[src.ant1 == src.ant2] = True  # autos kept but flagged for calibration and imaging
        first = nsamples[:, :1, :1]  # channel 0 of each row and pol
        uniform = bool((nsamples == first).all())
        first = first.reshape(nblts, 2)
        if not uniform:
            nsamples = np.ascontiguousarray(_reversed_channels(nsamples)).reshape(nblts, n_chan, 2)
    else:  # a missing subband keeps its SPW, every row flagged
        t_read = 0.0
        uvw_new = _geometry(src, frames, ra0, dec0)[0]
        data[...] = 0
        flags[...] = True
        uniform, first = True, np.zeros((nblts, 2), np.float32)
    # per (row, pol): are all channels flagged? (both pols' bools side by side in one uint16)
    all_flagged = np.bitwise_and.reduce(flags.view(np.uint16).reshape(nblts, n_chan), axis=1)
    all_flagged = all_flagged.view(np.uint8).reshape(nblts, 2).astype(bool)
    if uniform:
        wspec = None
        weight = np.where(all_flagged, np.float32(0), first).astype(np.float32)
    else:
        wspec = np.where(flags, np.float32(0), nsamples).astype(np.float32)
        n_good = n_chan - np.count_nonzero(flags, axis=1)
        weight = (wspec.sum(axis=1, dtype=np.float64) / np.maximum(n_good, 1)).astype(np.float32)
    return {"k": k, "wspec": wspec, "weight": weight, "sigma": sigma_from_weight(weight),
            "flag_row": all_flagged.all(axis=1), "uvw": -uvw_new, "n_nan": n_nan,
            "n_flagged": int(np.count_nonzero(flags)), "n_vis": flags.size,
            "seconds": {"read": t_read, "phase": time.perf_counter() - t0 - t_read},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _write_spw(ms, spw: dict, src: SubbandInput, nblts: int) -> None:
    k = spw["k"]
    row0 = k * nblts
    put = lambda col, value: ms.putcol(col, value, startrow=row0, nrow=nblts)  # noqa: E731
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


def _add_weight_spectrum(ms, n_chan: int, spws_written, nblts: int) -> None:
    """Add WEIGHT_SPECTRUM once an SPW's nsamples vary across channels, and fill it for the SPWs
    already written (uniform ones: their WEIGHT in every unflagged channel)."""
    from casacore import tables

    group = "Tiled_WEIGHT_SPECTRUM"
    cd = tables.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, valuetype="float", ndim=2, datamanagertype="TiledShapeStMan",
                               datamanagergroup=group)
    del cd["desc"]["shape"]
    td = tables.maketabdesc(cd)
    rows = max(1, TILE_BYTES // (2 * n_chan * 4))
    ms.addcols(td, tables.makedminfo(td, {group: {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows])}}))
    for k in spws_written:
        flags = ms.getcol("FLAG", startrow=k * nblts, nrow=nblts)
        weight = ms.getcol("WEIGHT", startrow=k * nblts, nrow=nblts)
        ms.putcol("WEIGHT_SPECTRUM", np.where(flags, np.float32(0), weight[:, None, :].astype(np.float32)),
                  startrow=k * nblts, nrow=nblts)


def _without_rows(plan: ChunkPlan) -> ChunkPlan:
    """The plan without its per-row arrays (43 MB at full size): what the subtables need, cheap to pickle."""
    import dataclasses

    none = np.zeros(0, int)
    slim = {k: dataclasses.replace(s, time_jd=none.astype(float), ant1=none, ant2=none) for k, s in plan.subbands.items()}
    return dataclasses.replace(plan, subbands=slim)


def _spw_inputs(plan: ChunkPlan, k: int) -> tuple[SubbandInput, bool]:
    """SPW ``k``'s file, or for a missing subband the nearest present one (times and baselines)."""
    sb = N_SUBBANDS - 1 - k
    sub = plan.subbands.get(sb)
    if sub is not None:
        return sub, True
    return plan.subbands[min(plan.subbands, key=lambda s: abs(s - sb))], False


class _Preparer:
    """``prepare_spw`` for SPW 0..15 in order, ``workers`` processes computing ahead.

    The pool is started before the chunk is planned so that the workers' imports overlap the
    planning. At most ``workers + 1`` prepared SPWs wait besides the one being written, each in
    its own shared-memory slot, so memory stays bounded while the writer (the main process) and
    the workers overlap.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            self._warm = [self.pool.submit(_warm_up) for _ in range(workers)]
        self.slots: list[_Slot] = []

    def run(self, plan: ChunkPlan, frames: list, ra0: float, dec0: float, before_first=None):
        """Yield the prepared SPWs in order; ``before_first()`` runs here while the workers start on them."""
        n_chan = plan.n_chan
        if self.pool is None:
            if before_first:
                before_first()
            for k in range(N_SUBBANDS):
                yield prepare_spw(*_spw_inputs(plan, k), k, n_chan, frames[k], ra0, dec0)
            return
        nblts = len(plan.template.time_jd)
        self.slots = [_Slot(nblts, n_chan) for _ in range(self.workers + 2)]
        free = list(range(len(self.slots)))
        pending = {}  # k -> (future, slot index)

        def submit_ahead(k, limit=self.workers + 1):
            while free and len(pending) < limit and k + len(pending) < N_SUBBANDS:
                nxt = k + len(pending)
                i = free.pop(0)
                pending[nxt] = (self.pool.submit(prepare_spw, *_spw_inputs(plan, nxt), nxt, n_chan, frames[nxt], ra0,
                                                 dec0, self.slots[i].name), i)

        submit_ahead(0, limit=1)  # one worker starts on SPW 0, the other is free for before_first's task
        if before_first:
            before_first()
        for k in range(N_SUBBANDS):
            submit_ahead(k)
            future, i = pending.pop(k)
            spw = future.result()
            spw.update(data=self.slots[i].data, flags=self.slots[i].flags)
            yield spw
            del spw
            free.append(i)

    def call(self, fn, *args):
        """``fn(*args)`` in a worker (a future), or here when there is no pool (its result, as a done future)."""
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        from concurrent.futures import Future

        done = Future()
        done.set_result(fn(*args))
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        for slot in self.slots:
            slot.close()
            slot.shm.unlink()
        self.slots = []


def convert_chunk(files, out: Path, scratch: Path | None = None, workers: int | None = None) -> dict:
    """Convert ``files`` to ``out`` atomically; returns the metrics reported by the job.

    ``workers`` processes read and rotate subbands while this one writes (default: the CPUs, at
    most 2; 1 = all in this process).
    """
    t0 = time.perf_counter()
    timings = {"read": 0.0, "phase": 0.0, "write": 0.0}
    out = Path(out).absolute()
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    preparer = _Preparer(workers)
    try:
        return _convert(files, out, scratch, preparer, timings, t0)
    finally:
        preparer.close()


def _convert(files, out: Path, scratch, preparer: _Preparer, timings: dict, t0: float) -> dict:
    plan = plan_chunk(files)
    tmp_parent = Path(scratch) if scratch else out.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    t = plan.template
    nblts = len(t.time_jd)
    ra0, dec0 = np.radians(plan.phase_center_ra_deg), np.radians(plan.phase_center_dec_deg)
    frames = sky_frames([_spw_inputs(plan, k)[0] for k in range(N_SUBBANDS)], ra0, dec0)
    timings["plan"] = time.perf_counter() - t0
    spw_sb = [N_SUBBANDS - 1 - k for k in range(N_SUBBANDS)]
    freqs_asc = np.concatenate([subband_freqs_hz(sb, plan.n_chan)[::-1] for sb in spw_sb])
    widths = np.full(len(freqs_asc), t.channel_width_hz)
    spw_of_chan = np.repeat(np.arange(N_SUBBANDS), plan.n_chan)
    n_flagged = n_vis = n_nan = 0
    worker_rss = 0.0
    written = []
    subtables = []
    try:
        def create():  # while a worker prepares SPW 0
            ts = time.perf_counter()
            ms, _ = _init_ms(tmp, N_SUBBANDS * nblts, plan.n_chan)
            ms.putkeyword("CONTIMG_POINTING_DEC_DEG", float(plan.pointing_dec_deg))  # read by the imaging job
            ms.close()
            # the subtables by the other worker (pyuvdata already imported there); the main table is
            # reopened only once they are written
            subtables.append(preparer.call(_write_subtables, tmp, _without_rows(plan), freqs_asc, widths, spw_of_chan))
            timings["create"] = time.perf_counter() - ts

        ms = None
        try:
            for spw in preparer.run(plan, frames, ra0, dec0, before_first=create):
                ts = time.perf_counter()
                if ms is None:
                    from casacore import tables

                    subtables[0].result()
                    ms = tables.table(str(tmp), readonly=False, ack=False)
                if spw["wspec"] is not None and "WEIGHT_SPECTRUM" not in ms.colnames():
                    _add_weight_spectrum(ms, plan.n_chan, written, nblts)
                _write_spw(ms, spw, _spw_inputs(plan, spw["k"])[0], nblts)
                written.append(spw["k"])
                timings["write"] += time.perf_counter() - ts
                for key in ("read", "phase"):
                    timings[key] += spw["seconds"][key]
                n_flagged += spw["n_flagged"]
                n_vis += spw["n_vis"]
                n_nan += spw["n_nan"]
                worker_rss = max(worker_rss, spw["peak_rss_mb"])
                del spw
            has_wspec = "WEIGHT_SPECTRUM" in ms.colnames()
        finally:
            if ms is not None:
                ms.close()
        ts = time.perf_counter()
        checks = run_checks(tmp, plan)
        timings["checks"] = time.perf_counter() - ts
        failed = [name for name, c in checks.items() if not c["passed"]]
        if failed:
            raise ConversionError(f"post-conversion checks failed: {', '.join(failed)}: "
                                  + "; ".join(f"{n}={checks[n]['value']} (limit {checks[n]['limit']})" for n in failed))
        _put_in_place(tmp, out)
    except BaseException:
        for future in subtables:  # never delete the folder under a worker still writing into it
            future.cancel() or future.exception()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total"] = time.perf_counter() - t0
    return {
        "ms_path": str(out),
        "files": [str(s.path) for s in plan.subbands.values()],
        "n_subbands_present": len(plan.subbands),
        "missing_subbands": plan.missing,
        "n_rows": N_SUBBANDS * nblts,
        "n_antennas": int(len(np.union1d(t.ant1, t.ant2))),
        "n_channels": int(N_SUBBANDS * plan.n_chan),
        "n_times": int(t.n_times),
        "start_mjd": plan.start_jd - 2400000.5,
        "end_mjd": plan.end_jd - 2400000.5,
        "mid_mjd": plan.mid_jd - 2400000.5,
        "phase_center_ra_deg": plan.phase_center_ra_deg,
        "phase_center_dec_deg": plan.phase_center_dec_deg,
        "pointing_dec_deg": plan.pointing_dec_deg,
        "weight_spectrum": has_wspec,
        "flagged_fraction": n_flagged / max(n_vis, 1),
        "nan_flagged": n_nan,
        "checks": checks,
        "timings_s": timings,
        "bytes_in": plan.bytes_in,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "workers": preparer.workers,
        "worker_peak_rss_mb": worker_rss if preparer.workers > 1 else None,
        "code_version": __version__,
    }


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished MS into place; an earlier version is replaced only once the new one is complete."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def run_checks(ms_path: Path, plan: ChunkPlan) -> dict:
    """Post-conversion checks on the written MS (read back with casacore)."""
    from casacore import tables

    p = str(ms_path)
    checks = {}
    with tables.table(p + "::SPECTRAL_WINDOW", ack=False) as spw:
        freqs = np.concatenate([spw.getcell("CHAN_FREQ", k) for k in range(spw.nrows())])
    checks["frequencies_ascending"] = {"passed": bool(np.all(np.diff(freqs) > 0)),
                                       "value": float(np.min(np.diff(freqs))), "limit": "> 0 Hz"}
    with tables.table(p + "::FIELD", ack=False) as field:
        ra, dec = field.getcell("PHASE_DIR", 0)[0]
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    sep = SkyCoord(ra * u.rad, dec * u.rad).separation(
        SkyCoord(plan.phase_center_ra_deg * u.deg, plan.phase_center_dec_deg * u.deg)).arcsec
    checks["phase_centre_offset_arcsec"] = {"passed": bool(sep < PHASE_CENTRE_TOL_ARCSEC), "value": float(sep),
                                            "limit": PHASE_CENTRE_TOL_ARCSEC}
    with tables.table(p + "::ANTENNA", ack=False) as ant:
        pos = ant.getcol("POSITION")
        mounts = np.asarray(ant.getcol("MOUNT"))
        diam = ant.getcol("DISH_DIAMETER")
    stations = load_stations()
    present = np.union1d(plan.template.ant1, plan.template.ant2)
    ref = stations.itrf_m[stations.index_of(present + 1)]
    dpos = float(np.max(np.linalg.norm(pos[present] - ref, axis=1)))
    checks["antenna_position_offset_m"] = {"passed": bool(dpos < ANT_POS_TOL_M), "value": dpos, "limit": ANT_POS_TOL_M}
    checks["antenna_mount_and_diameter"] = {
        "passed": bool(all(m == "ALT-AZ" for m in mounts[present]) and np.allclose(diam[present], 4.65)),
        "value": f"{sorted(set(mounts[present]))} {sorted(set(np.round(diam[present], 3)))}", "limit": "ALT-AZ, 4.65 m"}
    with tables.table(p, ack=False) as ms:
        uvw = ms.getcol("UVW")
        a1, a2 = ms.getcol("ANTENNA1"), ms.getcol("ANTENNA2")
    cross = a1 != a2
    length = np.linalg.norm(uvw[cross], axis=1)
    b_len = np.linalg.norm(pos[a2[cross]] - pos[a1[cross]], axis=1)
    max_dev = float(np.max(np.abs(length - b_len))) if length.size else 0.0
    checks["uvw_length_matches_baseline_m"] = {"passed": bool(max_dev < UVW_LENGTH_TOL_M), "value": max_dev,
                                               "limit": UVW_LENGTH_TOL_M}
    checks["uvw_range_m"] = {"passed": bool(length.size and length.min() > 1.0 and length.max() < 3300.0),
                             "value": [float(length.min()), float(length.max())] if length.size else None,
                             "limit": [1.0, 3300.0]}
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contimg.convert.job", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        metrics = convert_chunk(args.files, args.out, args.scratch)
    except ConversionError as err:
        print(f"convert: error: {err}", file=sys.stderr)
        return 1
    for name, c in metrics["checks"].items():
        print(f"check {name}: {'ok' if c['passed'] else 'FAILED'} ({c['value']})")
    print(f"wrote {metrics['ms_path']} ({metrics['n_rows']} rows, missing subbands {metrics['missing_subbands']}) "
          f"in {metrics['timings_s']['total']:.1f} s")
    report(metrics, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
