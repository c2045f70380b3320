"""How a child job hands its figures back to whoever started it.

Every child job (``python -m contimg.<stage>.job ... --report PATH``) ends by calling
:func:`report` with a JSON-able dict of metrics. It is written atomically to ``PATH`` (the CLI and
tests read it) and, when the job runs under Dagster Pipes (``CasaRunner``), also sent as a Pipes
custom message so the asset receives it without touching the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["report", "read_report"]


def report(metrics: dict, report_path: str | os.PathLike | None = None) -> None:
    """Publish a child job's metrics (atomic JSON file and/or a Dagster Pipes message)."""
    payload = json.loads(json.dumps(metrics, default=str))  # fail here, not in the parent
    if report_path:
        path = Path(report_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.replace(tmp, path)
    if os.environ.get("DAGSTER_PIPES_CONTEXT"):
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            pipes.report_custom_message(payload)


def read_report(report_path: str | os.PathLike) -> dict:
    """Load a report written by :func:`report`."""
    return json.loads(Path(report_path).read_text())
