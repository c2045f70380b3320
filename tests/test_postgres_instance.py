"""A Dagster instance on a real PostgreSQL server (dagster-postgres): materialize, then read the events back."""

import shutil
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    MaterializeResult,
    StaticPartitionsDefinition,
    asset,
    instance_for_test,
    materialize,
)

from tests.pg_server import postgres_server

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

PRODUCTION_YAML = Path(__file__).parents[1] / "deploy" / "dagster.production.yaml"
PARTS = StaticPartitionsDefinition(["2026-01-25T00:00", "2026-01-25T00:05"])


@asset(partitions_def=PARTS)
def chunk_size(context) -> MaterializeResult:
    # a figure that depends on the partition, so each event can be told apart
    return MaterializeResult(metadata={"minute": int(context.partition_key[-2:]), "window": context.partition_key})


@asset(deps=[chunk_size])
def summary() -> MaterializeResult:
    return MaterializeResult(metadata={"n": 2})


def test_materializations_round_trip_through_postgres(tmp_path, monkeypatch):
    with postgres_server() as pg:
        overrides = {"storage": {"postgres": {"postgres_url": pg.url}}, "telemetry": {"enabled": False}}
        with instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
            # the instance really is on Postgres
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            for key in PARTS.get_partition_keys():
                assert materialize([chunk_size], partition_key=key, instance=instance).success
            assert materialize([chunk_size, summary], selection=[summary], instance=instance).success

            latest = instance.get_latest_materialization_event(AssetKey("chunk_size"))
            assert latest.asset_materialization.partition == "2026-01-25T00:05"
            assert latest.asset_materialization.metadata["minute"].value == 5
            records = instance.fetch_materializations(AssetKey("chunk_size"), limit=10).records
            assert sorted(r.partition_key for r in records) == ["2026-01-25T00:00", "2026-01-25T00:05"]
            assert instance.get_materialized_partitions(AssetKey("chunk_size")) == set(PARTS.get_partition_keys())
            assert len(instance.get_runs()) == 3

        # the production instance file (deploy/) on the same database sees the same history: this is
        # what lets the webserver and the daemon run as separate services
        home = tmp_path / "home2"
        home.mkdir()
        shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
        monkeypatch.setenv("CONTIMG_PG_URL", pg.url)
        with DagsterInstance.from_config(str(home)) as other:
            assert type(other.run_storage).__name__ == "PostgresRunStorage"
            assert len(other.get_runs()) == 3
            assert other.get_concurrency_config().pool_config.default_pool_limit == 4
            assert other.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
            ev = other.get_latest_materialization_event(AssetKey("summary"))
            assert ev.asset_materialization.metadata["n"].value == 2
