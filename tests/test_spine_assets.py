"""Materialize subband_group and measurement_set for a partition: the real converter, real catalogue rows."""

import shutil
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from contimg.catalogue.duck import open_duckdb
from contimg.sim import simulate

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

WINDOW = "2026-01-25T00:00"


def test_materialize_chunk_assets_writes_products_and_catalogue(layout, tmp_path):
    from contimg_assets.definitions import defs
    from contimg_assets.measurement_set import measurement_set
    from contimg_assets.subband_group import subband_group

    simulate(
        tmp_path / "sim",
        "2026-01-25T00:00:00",
        n_antennas=8,
        n_chan_per_subband=4,
        n_integrations=3,
        seed=6,
        faults="truncate@0:5",
    )
    for f in (tmp_path / "sim").glob("*.hdf5"):
        shutil.copyfile(f, layout.ingest / f.name)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [subband_group, measurement_set], partition_key=WINDOW, instance=instance, resources=defs.resources
    )
    assert result.success
    ms_path = layout.ms_path(WINDOW)
    assert ms_path.is_dir() and (ms_path / "table.dat").exists()

    con = open_duckdb(layout.catalogue)
    group = con.sql(
        "SELECT state, n_subbands, missing_subbands FROM cat.groups WHERE window_key = ?", params=[WINDOW]
    ).fetchone()
    assert group == ("converted", 15, "[5]")
    ms = con.sql("SELECT path, status, n_rows, checks FROM cat.measurement_sets").fetchall()
    assert len(ms) == 1 and ms[0][0] == str(ms_path) and ms[0][1] == "current" and ms[0][2] == 16 * 36 * 3
    assert '"passed": false' not in ms[0][3]
    corrupt = con.sql("SELECT name, reason FROM cat.subband_files WHERE status = 'corrupt'").fetchall()
    assert len(corrupt) == 1 and corrupt[0][0].endswith("_sb05.hdf5") and "truncated or corrupt" in corrupt[0][1]
    stages = {r[0] for r in con.sql("SELECT stage FROM cat.stage_timings").fetchall()}
    assert stages == {"subband_group", "measurement_set"}

    event = instance.get_latest_materialization_event(AssetKey("measurement_set"))
    meta = event.asset_materialization.metadata
    assert meta["path"].value == str(ms_path) and meta["checks_passed"].value is True
    assert meta["missing_subbands"].value == [5] and Path(meta["log"].value).exists()

    # reprocessing the window replaces the MS atomically and keeps the history
    again = materialize([measurement_set], partition_key=WINDOW, instance=instance, resources=defs.resources)
    assert again.success
    statuses = [
        r[0]
        for r in open_duckdb(layout.catalogue).sql("SELECT status FROM cat.measurement_sets ORDER BY id").fetchall()
    ]
    assert statuses == ["superseded", "current"]


def test_a_window_without_files_fails_clearly(layout):
    from contimg_assets.definitions import defs
    from contimg_assets.subband_group import subband_group

    result = materialize(
        [subband_group],
        partition_key="2026-01-25T03:00",
        instance=DagsterInstance.ephemeral(),
        resources=defs.resources,
        raise_on_error=False,
    )
    assert not result.success
    errors = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    assert any("no subband files for window 2026-01-25T03:00" in e for e in errors)
