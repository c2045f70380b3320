"""The Measurement Set's layout: the MAIN table description (data managers, tiles) and the subtables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contimg import __version__
from contimg.convert.plan import ChunkPlan
from contimg.core.instrument import N_SUBBANDS, POLARIZATION_ARRAY, TELESCOPE_NAME

__all__ = ["TILE_BYTES", "add_weight_spectrum", "init_ms", "main_table_desc", "write_subtables"]

TILE_BYTES = 1 << 20  # ~1 MB tiles: large contiguous writes, and CASA's per-row readers still cache well


def main_table_desc(n_chan: int):
    """MAIN table description: the standard MS columns plus DATA.

    Each big column has its own tiled data manager (a shared hypercube makes every block write a
    read-modify-write of the shared tiles). WEIGHT_SPECTRUM is added only when some row's nsamples
    vary across its channels (``add_weight_spectrum``); otherwise WEIGHT carries the weights
    (docs/conventions.md).

    MODEL_DATA and CORRECTED_DATA are not written (2.7 GB of copies of DATA at full size): the
    calibration and imaging jobs work on their own averaged copies, and CASA's ``applycal`` (the
    imaging fallback) adds CORRECTED_DATA itself (docs/conventions.md).
    """
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
    for key in (
        "ARRAY_ID",
        "EXPOSURE",
        "FEED1",
        "FEED2",
        "FIELD_ID",
        "INTERVAL",
        "OBSERVATION_ID",
        "PROCESSOR_ID",
        "SCAN_NUMBER",
        "STATE_ID",
        "TIME",
        "TIME_CENTROID",
    ):
        desc[key].update(dataManagerType="IncrementalStMan", dataManagerGroup=key)
    spec = {}
    for name, value, vtype, bytes_per in (("DATA", 0j, "complex", 8),):
        group = f"Tiled_{name}"
        cd = tables.makearrcoldesc(
            name, value, valuetype=vtype, ndim=2, datamanagertype="TiledShapeStMan", datamanagergroup=group
        )
        del cd["desc"]["shape"]
        desc.update(tables.maketabdesc(cd))
        rows = max(1, TILE_BYTES // (2 * n_chan * bytes_per))
        spec[group] = {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows])}  # casacore axis order: pol, chan, row
    rows = max(1, TILE_BYTES // (2 * n_chan))
    spec["TiledFlag"] = {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows * 8])}  # bools are stored as bits
    spec["RowScalars"] = {"BUCKETSIZE": 1 << 16}
    return desc, tables.makedminfo(desc, spec)


def init_ms(path: Path, nrows: int, n_chan: int):
    """Create the MS with ``nrows`` empty MAIN rows; returns (the open table, ``casacore.tables``)."""
    from casacore import tables

    desc, dminfo = main_table_desc(n_chan)
    ms = tables.default_ms(str(path), desc, dminfo)
    ms.addrows(nrows)
    return ms, tables


def write_subtables(path: Path, plan: ChunkPlan, freqs_asc: np.ndarray, widths: np.ndarray, spw_of_chan: np.ndarray):
    """Write every subtable (pyuvdata's MS writers, then DSA-110's OBSERVATION, PROCESSOR, SPW names).

    ``freqs_asc``, ``widths`` and ``spw_of_chan`` are ``ChunkPlan.spectral_layout()``: the files' own
    labels, ascending. Runs in a worker while the main process writes MAIN's first SPW.
    """
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
    ms_utils.write_ms_antenna(
        p,
        antenna_numbers=t.antenna_numbers,
        antenna_names=t.antenna_names,
        antenna_positions=t.antenna_positions_m,
        antenna_diameters=t.antenna_diameters_m,
        antenna_mount=["ALT-AZ"] * len(t.antenna_numbers),
        telescope_location=tel_xyz,
        telescope_frame="itrs",
    )
    ms_utils.write_ms_data_description(p, nspws=N_SUBBANDS)
    ms_utils.write_ms_feed(
        p,
        nfeeds=2,
        nspws=N_SUBBANDS,
        feed_array=np.tile(["x", "y"], (len(t.antenna_numbers), 1)),
        feed_angle=np.zeros((len(t.antenna_numbers), 2)),
        antenna_numbers=t.antenna_numbers,
        time_val=mid_s,
    )
    field_name = f"meridian_{plan.pointing_dec_deg:+.2f}"
    catalog = {
        0: {
            "cat_name": field_name,
            "cat_type": "sidereal",
            "cat_lon": np.radians(plan.phase_center_ra_deg),
            "cat_lat": np.radians(plan.phase_center_dec_deg),
            "cat_frame": "icrs",
            "cat_epoch": 2000.0,
            "cat_times": None,
            "cat_pm_ra": None,
            "cat_pm_dec": None,
            "cat_vrad": None,
            "cat_dist": None,
            "info_source": "contimg",
        }
    }
    ms_utils.write_ms_field(p, phase_center_catalog=catalog, time_val=mid_s)
    ms_utils.write_ms_source(p, phase_center_catalog=catalog, time_default=mid_s)
    ms_utils.write_ms_observation(p, telescope_name=TELESCOPE_NAME, telescope_location=tel_xyz, observer="DSA-110")
    ms_utils.write_ms_spectral_window(
        p, freq_array=freqs_asc, channel_width=widths, spw_array=np.arange(N_SUBBANDS), id_array=spw_of_chan
    )
    ms_utils.write_ms_polarization(p, polarization_array=POLARIZATION_ARRAY)
    ms_utils.write_ms_history(
        p, history=f"contimg {__version__}: converted from " + ", ".join(s.path.name for s in plan.subbands.values())
    )
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


def add_weight_spectrum(ms, n_chan: int, spws_written, nblts: int) -> None:
    """Add WEIGHT_SPECTRUM once an SPW's nsamples vary across channels.

    The column is filled for the SPWs already written (uniform ones: their WEIGHT in every
    unflagged channel).
    """
    from casacore import tables

    group = "Tiled_WEIGHT_SPECTRUM"
    cd = tables.makearrcoldesc(
        "WEIGHT_SPECTRUM", 0.0, valuetype="float", ndim=2, datamanagertype="TiledShapeStMan", datamanagergroup=group
    )
    del cd["desc"]["shape"]
    td = tables.maketabdesc(cd)
    rows = max(1, TILE_BYTES // (2 * n_chan * 4))
    ms.addcols(td, tables.makedminfo(td, {group: {"DEFAULTTILESHAPE": np.int32([2, n_chan, rows])}}))
    for k in spws_written:
        flags = ms.getcol("FLAG", startrow=k * nblts, nrow=nblts)
        weight = ms.getcol("WEIGHT", startrow=k * nblts, nrow=nblts)
        ms.putcol(
            "WEIGHT_SPECTRUM",
            np.where(flags, np.float32(0), weight[:, None, :].astype(np.float32)),
            startrow=k * nblts,
            nrow=nblts,
        )
