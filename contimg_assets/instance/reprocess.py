"""contimg reprocess WINDOW | START..END: re-run chunks through Dagster (a partition backfill of chunk_job).

The runs are submitted to the Dagster instance in ``DAGSTER_HOME`` (default: ``<state>/dagster``) as one
backfill, exactly as the UI's partition backfill does; the daemon's run queue launches them under the
instance's concurrency limits. Each run replaces the window's products atomically and the catalogue keeps
the earlier rows as ``superseded``.

Submission goes through Dagster's public CLI (``dagster job backfill``) and the runs are read back with
public ``DagsterInstance`` methods. Dagster is imported inside the functions only, so ``contimg --help``
and the read-only commands start without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from contimg.catalogue import queries as q
from contimg.core.config import read
from contimg.core.settings import Layout
from contimg.ops.tables import render_table, to_json

JOB_NAME = "chunk_job"
CALIBRATOR_JOB_NAME = "calibrator_chunk_job"  # also re-solves the calibration tables of a calibrator chunk
SUBMISSION_TAG = "contimg/submission"  # unique per submit_backfill call: finds its runs among all others
BACKFILL_TAG, PARTITION_TAG = "dagster/backfill", "dagster/partition"  # set by Dagster on every backfill run
# the CLI loads the code location (a code server process) before it submits: seconds, a minute on a busy host
BACKFILL_CLI_TIMEOUT_S = 300.0


def add_arguments(parser) -> None:
    parser.add_argument(
        "windows",
        metavar="WINDOW|START..END",
        help="a 5-minute window key (2026-01-25T00:05) or an inclusive range START..END",
    )
    parser.add_argument(
        "--force", action="store_true", help="submit windows even when the catalogue has no chunk recorded for them"
    )
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
            raise ValueError(
                f"unknown window {key!r}: not a 5-minute partition key (YYYY-MM-DDTHH:MM on the 5-minute "
                f"grid, from the partition start to the last closed window)"
            )
    if len(keys) == 1:
        return keys
    if keys[0] > keys[1]:
        raise ValueError(f"bad window range {spec!r}: start is after end")
    return list(partitions_def.get_partition_keys_in_range(PartitionKeyRange(keys[0], keys[1])))


def _code_location_args() -> list[str]:
    """``dagster`` CLI arguments naming the code location: ``CONTIMG_WORKSPACE``, the repository's
    ``workspace.yaml``, or else the definitions module (an installed package without the file)."""
    workspace = read("CONTIMG_WORKSPACE")
    if workspace is None:
        import contimg_assets

        candidate = Path(contimg_assets.__file__).resolve().parents[1] / "workspace.yaml"
        workspace = str(candidate) if candidate.exists() else None
    if workspace:
        return ["-w", str(workspace)]
    return ["-m", "contimg_assets.definitions", "-a", "defs"]


def submit_backfill(windows: list[str], *, job_name: str = JOB_NAME, tags: dict | None = None) -> dict:
    """Submit one backfill of ``job_name`` for ``windows`` on the instance in ``DAGSTER_HOME``.

    Dagster's own CLI (``dagster job backfill``) submits it, as the UI does; the runs are found through a
    tag unique to this submission (``contimg/submission``), so a backfill submitted at the same time by
    someone else is never taken for this one.

    Returns
    -------
    dict
        ``job``, ``backfill_id``, ``windows``, the submitted ``run_ids`` and each window's ``run_status``.

    Raises
    ------
    RuntimeError
        If the CLI fails (its exit status and the end of its output are in the message) or submits no run.
    """
    from dagster import DagsterInstance, RunsFilter

    token = uuid.uuid4().hex
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "job",
        "backfill",
        *_code_location_args(),
        "-j",
        job_name,
        "--partitions",
        ",".join(windows),
        "--tags",
        json.dumps({**(tags or {}), SUBMISSION_TAG: token}),
        "--noprompt",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BACKFILL_CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(
            f"dagster job backfill of {job_name} did not finish in {BACKFILL_CLI_TIMEOUT_S:.0f} s"
        ) from err
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise RuntimeError(
            f"dagster job backfill of {job_name} for {len(windows)} window(s) failed (exit {proc.returncode}): {tail}"
        )
    with DagsterInstance.get() as instance:
        runs = [r.dagster_run for r in instance.get_run_records(filters=RunsFilter(tags={SUBMISSION_TAG: token}))]
    backfill_ids = {r.tags.get(BACKFILL_TAG) for r in runs}
    if not runs or len(backfill_ids) != 1 or None in backfill_ids:
        raise RuntimeError(
            f"Dagster submitted no backfill of {job_name} (runs {[r.run_id for r in runs]}; "
            f"CLI output: {proc.stdout.strip()[-2000:]})"
        )
    runs.sort(key=lambda r: r.tags.get(PARTITION_TAG, ""))
    return {
        "job": job_name,
        "backfill_id": backfill_ids.pop(),
        "windows": list(windows),
        "run_ids": [r.run_id for r in runs],
        "run_status": {r.tags.get(PARTITION_TAG): r.status.value for r in runs},
    }


def run(args) -> int:
    from contimg_assets.partitions import FIVE_MIN

    layout = Layout.from_env()
    windows = expand_windows(args.windows, FIVE_MIN)
    skipped, cal = [], set()
    if not args.force or layout.catalogue.exists():
        con = q.open_catalogue(layout.catalogue)
        try:
            lo, hi = windows[0], windows[-1]
            known = q.group_windows_between(con, lo, hi)
            cal = q.calibrator_windows_between(con, lo, hi)
        finally:
            con.close()
        if not args.force:
            skipped = [w for w in windows if w not in known]
            windows = [w for w in windows if w in known]
            if not windows:
                raise ValueError(
                    f"unknown window {args.windows!r}: no chunk recorded in the catalogue (--force submits anyway)"
                )
    # calibrator chunks re-solve their tables: their runs go first (higher queue priority)
    batches = [
        (CALIBRATOR_JOB_NAME, [w for w in windows if w in cal], {"dagster/priority": "1"}),
        (JOB_NAME, [w for w in windows if w not in cal], {}),
    ]
    out = {"windows": windows, "calibrator_windows": sorted(cal & set(windows)), "skipped_no_chunk": skipped}
    if not args.dry_run:
        os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home))
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        out["backfills"] = [
            submit_backfill(ws, job_name=job, tags={"contimg/reprocess": "cli", **extra})
            for job, ws, extra in batches
            if ws
        ]
        out["run_ids"] = [r for b in out["backfills"] for r in b["run_ids"]]
        out["dagster_home"] = os.environ["DAGSTER_HOME"]
    if args.json:
        print(to_json(out))
        return 0
    status = {w: s for b in out.get("backfills", []) for w, s in b["run_status"].items()}
    print(
        render_table(
            [
                {
                    "window": w,
                    "job": CALIBRATOR_JOB_NAME if w in cal else JOB_NAME,
                    "run_status": status.get(w, "dry run"),
                }
                for w in windows
            ],
            ["window", "job", "run_status"],
        )
    )
    if skipped:
        print(f"skipped {len(skipped)} window(s) without a chunk in the catalogue")
    for b in out.get("backfills", []):
        print(
            f"backfill {b['backfill_id']} ({b['job']}): {len(b['run_ids'])} run(s) submitted to "
            f"{out['dagster_home']}; the daemon launches them"
        )
    return 0
