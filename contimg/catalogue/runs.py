"""Failed Dagster runs in the catalogue: every chunk whose run fails ends with a recorded reason.

Assets record their own failures (bad files, conversion, imaging) as they happen. A run can also
fail where no asset code runs: its worker was killed with the daemon, it never started, a step
raised something unexpected. :func:`record_run_failure` (called by the ``record_failed_runs``
sensor) covers those: a group still in flight gets the run's failure as its reason.
"""

from __future__ import annotations

from contimg.catalogue.db import Connection
from contimg.catalogue.ingest import get_group, upsert_group

__all__ = ["FINAL_STATES", "record_run_failure"]

FINAL_STATES = ("imaged", "failed", "incomplete")
MAX_REASON_CHARS = 400


def record_run_failure(conn: Connection, window: str, run_id: str, message: str, *, will_retry: bool) -> str | None:
    """Record a failed run of ``window``; returns the reason written, or None if the group was final.

    A group already in a final state keeps its own reason. Otherwise, when Dagster will re-run the
    run (``run_retries``), the group stays in flight with the failure noted in ``error``; when not,
    the group becomes ``failed`` with the reason.
    """
    group = get_group(conn, window)
    if group is not None and group["state"] in FINAL_STATES:
        return None
    first = next((line.strip() for line in (message or "").splitlines() if line.strip()), "no message")
    reason = f"run {run_id[:8]} failed: {first[:MAX_REASON_CHARS]}"
    if will_retry:
        reason += "; Dagster re-runs it (run_retries)"
        upsert_group(conn, window, error=reason)
    else:
        upsert_group(conn, window, state="failed", error=reason)
    return reason
