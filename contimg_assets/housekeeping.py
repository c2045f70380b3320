"""housekeeping_job: the retention rules of ``contimg.ops.housekeeping`` plus Dagster run retention.

Thin on purpose: the rules live in the engine (tested without Dagster); these ops only supply what
only Dagster knows (which windows have an active run, which runs are old) and report.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    Config,
    DagsterRunStatus,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    RunsFilter,
    job,
    op,
)

from contimg.ops.housekeeping import Action, HousekeepingSettings, apply_plan, make_plan, record_action
from contimg_resources import Catalogue, StorageLayout

ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FINISHED_STATUSES = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
MAX_RUNS_DELETED_PER_PASS = 5000  # bounds one pass (~288 chunk runs a day, a backlog clears over a few days)


class HousekeepingConfig(Config):
    dry_run: bool = False


def active_windows(instance) -> set:
    """Partition keys of queued or running runs (their groups are not stale)."""
    runs = instance.get_runs(filters=RunsFilter(statuses=ACTIVE_STATUSES))
    return {r.tags["dagster/partition"] for r in runs if "dagster/partition" in r.tags}


@op(out=Out(Nothing), description="Scratch, temporaries, measurement sets past retention, stale groups.")
def clean_products(
    context: OpExecutionContext, config: HousekeepingConfig, storage: StorageLayout, catalogue: Catalogue
) -> None:
    conn = catalogue.connect()
    try:
        plan = make_plan(
            storage.layout(), conn, HousekeepingSettings.from_env(), active_windows=active_windows(context.instance)
        )
        done, errors = ([], []) if config.dry_run else apply_plan(plan, conn, run_id=context.run.run_id)
    finally:
        conn.close()
    summary = plan.to_dict()
    context.add_output_metadata(
        {
            "n_actions": len(summary["actions"]),
            "bytes_freed": 0 if config.dry_run else summary["bytes_to_free"],
            "dry_run": config.dry_run,
            "actions": MetadataValue.json(summary["actions"][:200]),
            "errors": MetadataValue.json([m for _, m in errors]),
        }
    )
    if errors:
        raise Failure(
            description=f"{len(errors)} housekeeping action(s) failed: " + "; ".join(m for _, m in errors[:5])
        )


@op(ins={"after": In(Nothing)}, description="Delete finished Dagster runs (and their event logs) past retention.")
def delete_old_runs(context: OpExecutionContext, config: HousekeepingConfig, catalogue: Catalogue) -> None:
    days = HousekeepingSettings.from_env().run_retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    records = context.instance.get_run_records(
        filters=RunsFilter(statuses=FINISHED_STATUSES, created_before=cutoff), limit=MAX_RUNS_DELETED_PER_PASS
    )
    run_ids = [r.dagster_run.run_id for r in records if r.dagster_run.run_id != context.run.run_id]
    if not config.dry_run:
        for run_id in run_ids:
            context.instance.delete_run(run_id)
        if run_ids:
            conn = catalogue.connect()
            try:
                record_action(
                    conn,
                    Action(
                        "delete_runs",
                        f"{len(run_ids)} finished Dagster run(s) older than {days:g} "
                        f"days (CONTIMG_RUN_RETENTION_DAYS), with their event logs",
                    ),
                    run_id=context.run.run_id,
                )
            finally:
                conn.close()
    context.log.info(
        f"{'would delete' if config.dry_run else 'deleted'} {len(run_ids)} run(s) "
        f"created before {cutoff:%Y-%m-%d %H:%M}"
    )


@job(
    description="Daily housekeeping: retention of products, scratch and Dagster runs; every deletion is "
    "recorded in the catalogue's housekeeping_log.",
    tags={"contimg/stage": "housekeeping"},
)
def housekeeping_job():
    delete_old_runs(after=clean_products())
