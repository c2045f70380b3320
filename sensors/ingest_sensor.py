"""ingest_sensor: notices complete, stable chunks in the ingest folder and requests one run each.

The work is in ``contimg.ingest.scan_tick`` (a bounded scan: files already in the catalogue are
not even stat'ed); this only turns its result into run requests, a cursor and a skip reason.
"""

import json
from datetime import UTC, datetime, timedelta

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from contimg.core.config import read
from contimg.ingest.grouping import utcnow
from contimg.ingest.scan import IngestSettings, calibrator_transit, requested_before, scan_tick
from contimg.ops.diskguard import guard

RUN_KEY_TAG = "dagster/run_key"
MAX_RE_REQUESTS_PER_TICK = 20


def stranded(context: SensorEvaluationContext, conn, interval_s: float) -> list:
    """Chunks marked requested long ago (3 ticks, at least a minute) for which Dagster has no run.

    That happens when the daemon dies after a tick's evaluation but before it created the runs.
    """
    cutoff = datetime.now(UTC) - timedelta(seconds=max(60.0, 3 * interval_s))
    out = []
    for r in requested_before(conn, cutoff)[:MAX_RE_REQUESTS_PER_TICK]:
        if not context.instance.get_run_ids(filters=RunsFilter(tags={RUN_KEY_TAG: r.run_key}), limit=1):
            context.log.warning(
                f"{r.window}: requested but no Dagster run found (daemon stopped mid-tick?); "
                f"requesting it again with run key {r.run_key}"
            )
            out.append(r)
    return out


def build_ingest_sensor(job, calibrator_job, *, minimum_interval_seconds: int | None = None):
    """Chunks with a calibrator transit go to ``calibrator_job`` (which also solves caltables), others to ``job``."""
    interval = minimum_interval_seconds or read("CONTIMG_SENSOR_INTERVAL_S")

    @sensor(
        jobs=[job, calibrator_job],
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        required_resource_keys={"storage", "catalogue"},
        description="Requests one run per complete and stable chunk of subband files in the ingest folder.",
    )
    def ingest_sensor(context: SensorEvaluationContext):
        layout = context.resources.storage.layout()
        settings = IngestSettings.from_env()
        cursor = json.loads(context.cursor) if context.cursor else {}
        conn = context.resources.catalogue.connect()
        try:
            decision = guard(layout, conn)  # low disk: hold new runs, with the reason recorded and shown
            if decision.hold:
                return SkipReason(decision.reason)
            tick = scan_tick(layout.ingest, conn, cursor, utcnow(), settings)
            requests = []
            for r in tick.requests + stranded(context, conn, interval):
                transit = calibrator_transit(r.files, conn, r.window)
                tags = {"contimg/window": r.window, "contimg/n_files": str(len(r.files))}
                if transit is not None:
                    tags["contimg/calibrator"] = transit.calibrator.name
                requests.append(
                    RunRequest(
                        run_key=r.run_key,
                        partition_key=r.window,
                        tags=tags,
                        job_name=(calibrator_job if transit is not None else job).name,
                    )
                )
        finally:
            conn.close()
        if not requests:
            waiting = "; ".join(f"{k}: {v}" for k, v in list(tick.waiting.items())[:3])
            return SensorResult(
                skip_reason=SkipReason(
                    f"scanned {tick.scanned} entries; nothing ready" + (f" ({waiting})" if waiting else "")
                ),
                cursor=json.dumps(tick.cursor),
            )
        return SensorResult(run_requests=requests, cursor=json.dumps(tick.cursor))

    return ingest_sensor
