"""contimg reprocess WINDOW | START..END: re-run chunks through Dagster (a partition backfill of chunk_job).

The runs are submitted to the Dagster instance in ``DAGSTER_HOME`` (default: ``<state>/dagster``) as one
backfill, exactly as the UI's partition backfill does; the daemon's run queue launches them under the
instance's concurrency limits. Each run replaces the window's products atomically and the catalogue keeps
the earlier rows as ``superseded``.

Dagster is imported inside the functions only: the rest of ``contimg`` never imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

from contimg.ops import queries as q
from contimg.ops.tables import render_table, to_json
from contimg.core.config import read
from contimg.core.settings import Layout

JOB_NAME = "chunk_job"
CALIBRATOR_JOB_NAME = "calibrator_chunk_job"   # also re-solves the calibration tables of a calibrator chunk


def add_arguments(parser) -> None:
    parser.add_argument("windows", metavar="WINDOW|START..END",
                        help="a 5-minute window key (2026-01-25T00:05) or an inclusive range START..END")
    parser.add_argument("--force", action="store_true",
                        help="submit windows even when the catalogue has no chunk recorded for them")
    parser.add_argument("--dry-run", action="store_true", help="list the windows, submit nothing")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def expand_windows(spec: str, partitions_def) -> list[str]:
    """Window keys named by ``spec`` (one key or an inclusive ``START..END``), checked against the partitions.

    Raises
    ------
    ValueError
        If a key is not a 5-minute partition of ``partitions_def`` or the range is reversed.
    """
    from dagster import PartitionKeyRange

    parts = spec.split("..")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise ValueError(f"bad window range {spec!r}: expected WINDOW or START..END")
    keys = [p.strip() for p in parts]
    for key in keys:
        if not partitions_def.has_partition_key(key):
            raise ValueError(f"unknown window {key!r}: not a 5-minute partition key (YYYY-MM-DDTHH:MM on the 5-minute "
                             f"grid, from the partition start to the last closed window)")
    if len(keys) == 1:
        return keys
    if keys[0] > keys[1]:
        raise ValueError(f"bad window range {spec!r}: start is after end")
    return list(partitions_def.get_partition_keys_in_range(PartitionKeyRange(keys[0], keys[1])))


def _workspace_opts():
    from dagster_shared.cli import WorkspaceOpts

    workspace = read("CONTIMG_WORKSPACE")
    if workspace is None:
        import contimg_assets

        candidate = Path(contimg_assets.__file__).resolve().parents[1] / "workspace.yaml"
        workspace = str(candidate) if candidate.exists() else None
    if workspace:
        return WorkspaceOpts(workspace=[str(workspace)])
    return WorkspaceOpts(module_name=["contimg_assets.definitions"], attribute="defs")


def submit_backfill(windows: list[str], *, job_name: str = JOB_NAME, tags: dict | None = None) -> dict:
    """Submit one backfill of ``job_name`` for ``windows`` on the instance in ``DAGSTER_HOME``.

    Returns
    -------
    dict
        ``backfill_id`` and the submitted ``run_ids``.
    """
    import json

    from dagster import DagsterInstance, RunsFilter
    from dagster._cli.job import execute_backfill_command

    with DagsterInstance.get() as instance:
        before = {b.backfill_id for b in instance.get_backfills(limit=20)}
        execute_backfill_command(workspace_opts=_workspace_opts(), partitions=",".join(windows), noprompt=True,
                                 job_name=job_name, tags=json.dumps(tags or {}), print_fn=lambda *_: None,
                                 instance=instance)
        new = [b for b in instance.get_backfills(limit=20) if b.backfill_id not in before]
        if not new:
            raise RuntimeError("Dagster accepted no backfill (see the instance's logs)")
        backfill_id = new[0].backfill_id
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
        return {"job": job_name, "backfill_id": backfill_id, "windows": list(windows), "run_ids": [r.run_id for r in runs],
                "run_status": {r.tags.get("dagster/partition"): r.status.value for r in runs}}


def calibrator_windows(con, lo: str, hi: str) -> set:
    """Windows in ``[lo, hi]`` holding a calibrator transit (marked on the group or found by calibration)."""
    out = {r[0] for r in con.execute("SELECT window_key FROM cat.groups WHERE window_key >= ? AND window_key <= ? "
                                     "AND coalesce(calibrator, '') != ''", [lo, hi]).fetchall()}
    for table in ("calibrator_transits", "caltable_sets"):
        if q.table_exists(con, table):
            out |= {r[0] for r in con.execute(f"SELECT window_key FROM cat.{table} WHERE window_key >= ? "
                                              "AND window_key <= ?", [lo, hi]).fetchall()}
    return out


def run(args) -> int:
    from contimg_assets.partitions import FIVE_MIN

    layout = Layout.from_env()
    windows = expand_windows(args.windows, FIVE_MIN)
    skipped, cal = [], set()
    if not args.force or layout.catalogue.exists():
        con = q.open_catalogue(layout.catalogue)
        try:
            lo, hi = windows[0], windows[-1]
            known = {r[0] for r in con.execute("SELECT window_key FROM cat.groups WHERE window_key >= ? AND "
                                               "window_key <= ?", [lo, hi]).fetchall()}
            cal = calibrator_windows(con, lo, hi)
        finally:
            con.close()
        if not args.force:
            skipped = [w for w in windows if w not in known]
            windows = [w for w in windows if w in known]
            if not windows:
                raise ValueError(f"unknown window {args.windows!r}: no chunk recorded in the catalogue "
                                 f"(--force submits anyway)")
    # calibrator chunks re-solve their tables: their runs go first (higher queue priority)
    batches = [(CALIBRATOR_JOB_NAME, [w for w in windows if w in cal], {"dagster/priority": "1"}),
               (JOB_NAME, [w for w in windows if w not in cal], {})]
    out = {"windows": windows, "calibrator_windows": sorted(cal & set(windows)), "skipped_no_chunk": skipped}
    if not args.dry_run:
        os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home))
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        out["backfills"] = [submit_backfill(ws, job_name=job, tags={"contimg/reprocess": "cli", **extra})
                            for job, ws, extra in batches if ws]
        out["run_ids"] = [r for b in out["backfills"] for r in b["run_ids"]]
        out["dagster_home"] = os.environ["DAGSTER_HOME"]
    if args.json:
        print(to_json(out))
        return 0
    status = {w: s for b in out.get("backfills", []) for w, s in b["run_status"].items()}
    print(render_table([{"window": w, "job": CALIBRATOR_JOB_NAME if w in cal else JOB_NAME,
                         "run_status": status.get(w, "dry run")} for w in windows], ["window", "job", "run_status"]))
    if skipped:
        print(f"skipped {len(skipped)} window(s) without a chunk in the catalogue")
    for b in out.get("backfills", []):
        print(f"backfill {b['backfill_id']} ({b['job']}): {len(b['run_ids'])} run(s) submitted to "
              f"{out['dagster_home']}; the daemon launches them")
    return 0
