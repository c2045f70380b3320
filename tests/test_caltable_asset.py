"""Materialize caltable_set on a simulated calibrator transit: the real converter and solve, real registry rows."""

import json
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from contimg.core.settings import window_slug
from contimg.ingest.grouping import window_key
from contimg.sim import simulate

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

TRANSIT_TOL_S = 1.0  # the plan's transit against the simulator's (test_calibrate holds the job to the same)
METADATA_KEYS = {
    "set_name",
    "calibrator",
    "transit_mjd",
    "model_flux_jy",
    "refant",
    "validity_h",
    "tables",
    "bandpass_plot",
    "bandpass_qa",
    "timings_s",
    "summary",
    "log",
    "code_version",
}


def test_caltable_set_solves_registers_and_describes_the_set(layout, tmp_path):
    from contimg_assets.caltable_set import caltable_set
    from contimg_assets.definitions import defs
    from contimg_assets.measurement_set import measurement_set
    from contimg_assets.subband_group import subband_group

    truth = simulate(
        tmp_path / "sim",
        "2026-01-25T00:00:00",
        n_antennas=16,
        n_chan_per_subband=4,
        n_integrations=24,
        calibrator="0834+555",
        sky=[],
        seed=21,
    )
    for f in (tmp_path / "sim").glob("*.hdf5"):
        shutil.copyfile(f, layout.ingest / f.name)
    window = window_key(datetime.fromisoformat(truth["chunks"][0]["start"]))
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [subband_group, measurement_set, caltable_set],
        partition_key=window,
        instance=instance,
        resources=defs.resources,
    )
    assert result.success

    # what the job wrote beside the tables, read independently of the asset
    out = layout.caltable_dir(window)
    info = json.loads((out / "caltables.json").read_text())
    tables = [str(out / t["name"]) for t in sorted(info["tables"], key=lambda t: t["order"])]
    assert [t["type"] for t in sorted(info["tables"], key=lambda t: t["order"])] == ["K", "B", "G"]
    assert info["quality_ok"] and info["set_name"] == window_slug(window)
    assert all(Path(t).is_dir() for t in tables)

    meta = instance.get_latest_materialization_event(AssetKey("caltable_set")).asset_materialization.metadata
    assert {k for k in meta if not k.startswith("dagster/")} == METADATA_KEYS
    assert meta["set_name"].value == window_slug(window) and meta["calibrator"].value == "0834+555"
    assert abs(meta["transit_mjd"].value - truth["calibrator"]["transit_mjd"]) * 86400 < TRANSIT_TOL_S
    assert meta["refant"].value == info["refant"] and meta["tables"].value == tables
    assert meta["model_flux_jy"].value == info["model"]["flux_jy"] and meta["validity_h"].value == 6.0
    assert Path(meta["bandpass_plot"].value) == out / f"{window_slug(window)}.bandpass.png"
    assert Path(meta["bandpass_plot"].value).exists() and Path(meta["log"].value).exists()
    bp = meta["bandpass_qa"].value  # the verdict that gated the set, beside its plot
    assert bp["ok"] and bp["problems"] == [] and bp["flagged_fraction"] < 0.5
    assert set(meta["timings_s"].value) == {
        "flag_shift_average",
        "model",
        "reduce",
        "delay",
        "pre_bandpass_phase",
        "bandpass",
        "gaincal",
        "quality_plot",
    }
    assert "| B | 10 |" in meta["summary"].value and "| G | 20 |" in meta["summary"].value

    con = sqlite3.connect(layout.catalogue)
    try:
        row = con.execute(
            "SELECT window_key, calibrator, source_ms, status, refant, transit_mjd, valid_start_mjd, "
            "valid_end_mjd FROM caltable_sets WHERE set_name = ?",
            (window_slug(window),),
        ).fetchone()
        paths = [
            r[0]
            for r in con.execute(
                "SELECT path FROM caltables WHERE set_name = ? ORDER BY apply_order", (window_slug(window),)
            )
        ]
        group_cal = con.execute("SELECT calibrator FROM groups WHERE window_key = ?", (window,)).fetchone()[0]
        stages = {r[0] for r in con.execute("SELECT stage FROM stage_timings WHERE window_key = ?", (window,))}
    finally:
        con.close()
    assert row[:5] == (window, "0834+555", str(layout.ms_path(window)), "active", str(info["refant"]))
    assert row[5] == meta["transit_mjd"].value and row[6] < row[5] < row[7]
    assert paths == tables and group_cal == "0834+555" and "caltable_set" in stages
