"""Child job: one chunk's subband files -> one Measurement Set (python-casacore; never casatools).

    python -m contimg.casa_jobs.convert FILE.hdf5 [FILE ...] --out CHUNK.ms [--report R.json] [--scratch DIR]

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
from contimg.calavg import sigma_from_weight
from contimg.convert import ChunkPlan, ConversionError, SubbandInput, plan_chunk
from contimg.instrument import N_SUBBANDS, TELESCOPE_NAME, load_stations
from contimg.jobreport import report

ANT_POS_TOL_M = 0.05  # antenna positions must match the station table to 5 cm
PHASE_CENTRE_TOL_ARCSEC = 1.0
UVW_LENGTH_TOL_M = 1e-3  # |uvw| is a rotation of the baseline vector: lengths agree to float64 rounding


def _geometry(sub: SubbandInput, ra_rad: float, dec_rad: float, times_jd: np.ndarray):
    """uvw for the fixed field (UVW column), and the old and new w, per blt, in metres.

    The phase rotation uses w = b . s with baselines rotated into the GCRS by erfa's full
    terrestrial-to-celestial matrix (precession-nutation, UT1, polar motion from astropy's IERS
    tables) and the apparent (aberrated) directions of the old centre (HA=0, pointing dec) and
    of the field, as the sky imprinted the data. The UVW column is computed by casacore's own
    measures (``to_uvw``, the code CASA uses, on casadata's tables) so that CASA agrees with it.
    """
    import erfa
    from astropy import units as u
    from astropy.coordinates import GCRS, EarthLocation, HADec, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    lat, lon, alt = sub.telescope_lat_lon_alt
    loc = EarthLocation.from_geodetic(lon * u.rad, lat * u.rad, alt * u.m)
    t_unique, tidx = np.unique(times_jd, return_inverse=True)
    t = Time(t_unique, format="jd", scale="utc", location=loc)
    xp, yp = iers.earth_orientation_table.get().pm_xy(t.jd1, t.jd2)
    tt, ut1 = t.tt, t.ut1
    rc2t = erfa.c2t06a(tt.jd1, tt.jd2, ut1.jd1, ut1.jd2, xp.to_value(u.rad), yp.to_value(u.rad))  # (T, 3, 3)
    # rc2t maps GCRS -> ITRS; its transpose takes the (relative) antenna positions into GCRS axes
    pos_gcrs = np.einsum("tji,aj->tai", rc2t, sub.antenna_positions_m)  # (T, A, 3)
    index = {n: i for i, n in enumerate(sub.antenna_numbers)}
    i1 = np.array([index[a] for a in sub.ant1])
    i2 = np.array([index[a] for a in sub.ant2])
    b = pos_gcrs[tidx, i2] - pos_gcrs[tidx, i1]  # (Nblts, 3), x_ant2 - x_ant1 (pyuvdata's sense)
    gcrs = GCRS(obstime=t)
    s_new = SkyCoord(ra=ra_rad * u.rad, dec=dec_rad * u.rad, frame="icrs").transform_to(gcrs).cartesian.xyz.value.T
    s_old = SkyCoord(ha=np.zeros(len(t)) * u.rad, dec=np.full(len(t), np.radians(sub.pointing_dec_deg)) * u.rad,
                     frame=HADec(obstime=t, location=loc, pressure=0 * u.hPa)).transform_to(gcrs).cartesian.xyz.value.T
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


def _read_block(sub: SubbandInput):
    import h5py

    with h5py.File(sub.path, "r") as h5:
        vis = h5["Data/visdata"][()][:, 0]  # (Nblts, F, 2) complex64
        flags = h5["Data/flags"][()][:, 0]
        nsamples = h5["Data/nsamples"][()][:, 0].astype(np.float32)
    return vis, flags, nsamples


TILE_BYTES = 1 << 20  # ~1 MB tiles: large contiguous writes, and CASA's per-row readers still cache well


def _main_table_desc(n_chan: int):
    """MAIN table description: the standard MS columns plus WEIGHT_SPECTRUM, each big column in
    its own tiled data manager (a shared hypercube makes every block write a read-modify-write of
    the shared tiles).

    MODEL_DATA and CORRECTED_DATA are not written (2.7 GB of copies of DATA at full size): the
    calibration and imaging jobs work on their own averaged copies, and CASA's ``applycal`` (the
    imaging fallback) adds CORRECTED_DATA itself (docs/conventions.md)."""
    from casacore import tables

    desc = tables.required_ms_desc("MAIN")
    desc["UVW"].update(dataManagerType="TiledColumnStMan", dataManagerGroup="TiledUVW")
    for key, group in (("FLAG", "TiledFlag"), ("FLAG_CATEGORY", "TiledFlagCategory"), ("WEIGHT", "TiledWgt"),
                       ("SIGMA", "TiledSigma")):
        desc[key].update(dataManagerType="TiledShapeStMan", dataManagerGroup=group)
    desc["FLAG_CATEGORY"].update(keywords={"CATEGORY": np.array("baddata")})
    for key in ("ARRAY_ID", "EXPOSURE", "FEED1", "FEED2", "FIELD_ID", "INTERVAL", "OBSERVATION_ID", "PROCESSOR_ID",
                "SCAN_NUMBER", "STATE_ID", "TIME", "TIME_CENTROID"):
        desc[key].update(dataManagerType="IncrementalStMan", dataManagerGroup=key)
    spec = {}
    for name, value, vtype, bytes_per in (("DATA", 0j, "complex", 8), ("WEIGHT_SPECTRUM", 0.0, "float", 4)):
        group = f"Tiled_{name}"
        cd = tables.makearrcoldesc(name, value, valuetype=vtype, ndim=2, datamanagertype="TiledShapeStMan",
                                   datamanagergroup=group)
        del cd["desc"]["shape"]
        desc.update(tables.maketabdesc(cd))
        rows = max(1, TILE_BYTES // (2 * n_chan * bytes_per))
        spec[group] = {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows])}  # casacore axis order: pol, chan, row
    rows = max(1, TILE_BYTES // (2 * n_chan))
    spec["TiledFlag"] = {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows * 8])}  # bools are stored as bits
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


def prepare_spw(plan: ChunkPlan, k: int, ra0: float, dec0: float) -> dict:
    """Everything SPW ``k`` (subband ``15 - k``) writes, computed from its file alone.

    Runs in a worker process: read once, rotate with the subband's own times from the moving
    fringe-stop centre to the fixed field, flag NaN/Inf, zeros and autos, MS sign convention,
    channels ascending.
    """
    from contimg.calavg import rotation
    from contimg.instrument import subband_freqs_hz

    t0 = time.perf_counter()
    sb = N_SUBBANDS - 1 - k
    n_chan = plan.n_chan
    nblts = len(plan.template.time_jd)
    sub = plan.subbands.get(sb)
    f_asc = subband_freqs_hz(sb, n_chan)[::-1]
    src = sub if sub is not None else plan.subbands[min(plan.subbands, key=lambda s: abs(s - sb))]
    if sub is not None:
        vis, flags, nsamples = _read_block(sub)
    else:  # a missing subband keeps its SPW, every row flagged
        vis = np.zeros((nblts, n_chan, 2), np.complex64)
        flags = np.ones((nblts, n_chan, 2), bool)
        nsamples = np.zeros((nblts, n_chan, 2), np.float32)
    t_read = time.perf_counter() - t0
    uvw_new, w_old, w_new = _geometry(src, ra0, dec0, src.time_jd)
    bad = ~np.isfinite(vis)
    n_nan = int(np.count_nonzero(bad.any(axis=-1))) if sub is not None else 0
    vis[bad] = 0
    flags = flags | bad | (vis == 0)  # exact zeros are correlator dropouts, never data
    flags[src.ant1 == src.ant2] = True  # autos kept but flagged for calibration and imaging
    f_file = src.freqs_hz if sub is not None else f_asc[::-1]
    # MS convention conj(vis * rot) = conj(vis) * conj(rot), channels ascending; in place and into
    # one new buffer (~85 MB per subband at full size)
    conj_rot = rotation(w_old - w_new, f_file)  # exp(-2 pi i (w_old - w_new) f / c) = conj(rot)
    np.conjugate(vis, out=vis)
    data = np.empty_like(vis)
    np.multiply(vis[:, ::-1, :], conj_rot[:, ::-1, None], out=data)
    del vis, conj_rot
    flags = np.ascontiguousarray(flags[:, ::-1, :])
    wspec = np.where(flags, np.float32(0), nsamples[:, ::-1, :]).astype(np.float32)
    weight = wspec.mean(axis=1)
    mjd_s = (src.time_jd - 2400000.5) * 86400.0
    return {"k": k, "data": data, "flags": flags, "wspec": wspec, "weight": weight, "uvw": -uvw_new,
            "time": mjd_s, "interval": src.integration_s, "ant1": src.ant1, "ant2": src.ant2, "freqs": f_asc,
            "width": np.full(n_chan, plan.template.channel_width_hz), "n_nan": n_nan,
            "n_flagged": int(np.count_nonzero(flags)), "n_vis": flags.size,
            "seconds": {"read": t_read, "phase": time.perf_counter() - t0 - t_read},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _write_spw(ms, spw: dict, nblts: int) -> None:
    k = spw["k"]
    row0 = k * nblts
    put = lambda col, value: ms.putcol(col, value, startrow=row0, nrow=nblts)  # noqa: E731
    put("DATA", spw["data"])
    put("FLAG", spw["flags"])
    put("FLAG_ROW", spw["flags"].all(axis=(1, 2)))
    put("WEIGHT_SPECTRUM", spw["wspec"])
    put("WEIGHT", spw["weight"])
    put("SIGMA", sigma_from_weight(spw["weight"]))
    put("UVW", spw["uvw"])  # MS convention (pyuvdata flip_conj)
    put("TIME", spw["time"])
    put("TIME_CENTROID", spw["time"])
    put("INTERVAL", np.full(nblts, spw["interval"]))
    put("EXPOSURE", np.full(nblts, spw["interval"]))
    put("ANTENNA1", spw["ant1"])
    put("ANTENNA2", spw["ant2"])
    put("DATA_DESC_ID", np.full(nblts, k))
    put("SCAN_NUMBER", np.ones(nblts, int))
    put("STATE_ID", np.full(nblts, -1))


def _prepared_in_order(plan: ChunkPlan, ra0: float, dec0: float, workers: int):
    """Yield ``prepare_spw`` results for SPW 0..15 in order, ``workers`` processes computing ahead.

    At most ``workers + 1`` prepared SPWs exist at once, so memory stays bounded while the
    writer (this process) and the workers (the other cores) overlap.
    """
    if workers <= 1:
        for k in range(N_SUBBANDS):
            yield prepare_spw(plan, k, ra0, dec0)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {}
        for k in range(N_SUBBANDS):
            while len(pending) < workers + 1 and (k + len(pending)) < N_SUBBANDS:
                nxt = k + len(pending)
                pending[nxt] = pool.submit(prepare_spw, plan, nxt, ra0, dec0)
            yield pending.pop(k).result()


def convert_chunk(files, out: Path, scratch: Path | None = None, workers: int | None = None) -> dict:
    """Convert ``files`` to ``out`` atomically; returns the metrics reported by the job.

    ``workers`` processes read and rotate subbands while this one writes (default: the CPUs, at
    most 2; 1 = all in this process).
    """
    t0 = time.perf_counter()
    timings = {"read": 0.0, "phase": 0.0, "write": 0.0}
    out = Path(out).absolute()
    plan = plan_chunk(files)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    tmp_parent = Path(scratch) if scratch else out.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    t = plan.template
    nblts = len(t.time_jd)
    ra0, dec0 = np.radians(plan.phase_center_ra_deg), np.radians(plan.phase_center_dec_deg)
    freqs_asc, widths, spw_of_chan = [], [], []
    n_flagged = n_vis = n_nan = 0
    worker_rss = 0.0
    try:
        ms, tables = _init_ms(tmp, N_SUBBANDS * nblts, plan.n_chan)
        try:
            for spw in _prepared_in_order(plan, ra0, dec0, workers):
                ts = time.perf_counter()
                _write_spw(ms, spw, nblts)
                timings["write"] += time.perf_counter() - ts
                for key in ("read", "phase"):
                    timings[key] += spw["seconds"][key]
                freqs_asc.append(spw["freqs"])
                widths.append(spw["width"])
                spw_of_chan.append(np.full(len(spw["freqs"]), spw["k"]))
                n_flagged += spw["n_flagged"]
                n_vis += spw["n_vis"]
                n_nan += spw["n_nan"]
                worker_rss = max(worker_rss, spw["peak_rss_mb"])
                del spw
            ms.putkeyword("CONTIMG_POINTING_DEC_DEG", float(plan.pointing_dec_deg))  # read by the imaging job
        finally:
            ms.close()
        ts = time.perf_counter()
        freqs_asc, widths, spw_of_chan = map(np.concatenate, (freqs_asc, widths, spw_of_chan))
        _write_subtables(tmp, plan, freqs_asc, widths, spw_of_chan)
        timings["write"] += time.perf_counter() - ts
        ts = time.perf_counter()
        checks = run_checks(tmp, plan)
        timings["checks"] = time.perf_counter() - ts
        failed = [name for name, c in checks.items() if not c["passed"]]
        if failed:
            raise ConversionError(f"post-conversion checks failed: {', '.join(failed)}: "
                                  + "; ".join(f"{n}={checks[n]['value']} (limit {checks[n]['limit']})" for n in failed))
        _put_in_place(tmp, out)
    except BaseException:
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
        "flagged_fraction": n_flagged / max(n_vis, 1),
        "nan_flagged": n_nan,
        "checks": checks,
        "timings_s": timings,
        "bytes_in": plan.bytes_in,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "workers": workers,
        "worker_peak_rss_mb": worker_rss if workers > 1 else None,
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
    parser = argparse.ArgumentParser(prog="python -m contimg.casa_jobs.convert", description=__doc__.splitlines()[0])
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
