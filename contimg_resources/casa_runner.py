"""CasaRunner: run a CASA child job safely from an asset.

Dagster's PipesSubprocessClient waits forever and, on cancel, signals only the direct child;
CASA leaves helper grandchildren. Here the child gets its own process group and a timeout; on
timeout or cancellation the whole group gets SIGINT (Python jobs clean their temporaries), then
SIGTERM, then SIGKILL. The job runs under ``contimg.childjobs.guard``, which stops the group the same
way if the step process dies first (run worker killed), so no job outlives its run. The full log
stays in a file (linked in metadata); failures carry its tail. Metrics come back through Dagster
Pipes (the child's ``contimg.jobreport.report``) or, failing that, the JSON report file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path

from dagster import (
    ConfigurableResource,
    Failure,
    MetadataValue,
    PipesEnvContextInjector,
    PipesTempFileMessageReader,
    open_pipes_session,
)

from contimg.childjobs.drills import DRILL_MARK, hang_command, hang_drill_for
from contimg.childjobs.env import casa_child_env, child_command
from contimg.childjobs.guard import guarded_command
from contimg.core.config import read
from contimg.core.settings import Layout

__all__ = ["CasaRunner", "JobResult", "tail", "job_timeout_s"]

TAIL_LINES = 40
DEFAULT_TIMEOUT_S = 1800.0


def job_timeout_s(job: str, environ=None, default: float = DEFAULT_TIMEOUT_S) -> float:
    """The timeout of ``job`` from ``CONTIMG_CASA_TIMEOUT_S``: ``N`` (every job) or ``job=N,...[,N]``.

    Raises
    ------
    SettingsError
        On a malformed setting, quoting it (parsed in ``contimg.core.config``).
    """
    return read("CONTIMG_CASA_TIMEOUT_S", environ).for_job(job, default)


def tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=n))
    except FileNotFoundError:
        return ""


def _kill_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGINT the child's process group, SIGTERM what is left after ``grace_s``, then SIGKILL.

    SIGINT first: a Python job raises KeyboardInterrupt and its ``finally`` blocks remove the
    temporaries of its atomic writes; a job stuck in C++ does not notice and gets SIGTERM.
    """
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; grandchildren may still hold the group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


class JobResult(dict):
    """The child's metrics plus ``log_path`` and ``seconds``."""


class CasaRunner(ConfigurableResource):
    """Runs ``python -m contimg.<stage>.job`` children for assets.

    ``timeout_s`` unset takes ``CONTIMG_CASA_TIMEOUT_S`` (seconds for every job, or per job as
    ``convert=900,image=600,1800``; default 1800 s). ``kill_grace_s`` is how long a job has to
    exit after SIGINT before SIGTERM.

    Fault-drill hook: ``CONTIMG_DRILL_HANG="JOB:WINDOW[@ATTEMPTS]"`` (see ``contimg.childjobs.drills``) runs
    a hanging stand-in instead of a matching job, on its first attempt(s) only, so the timeout ->
    group kill -> ``Failure`` -> retry path is exercised in the real stream. The job log says
    ``FAULT DRILL``. Never set it in production.
    """

    timeout_s: float | None = None
    kill_grace_s: float = 10.0

    def timeout_for(self, job: str) -> float:
        return float(self.timeout_s) if self.timeout_s is not None else job_timeout_s(job)

    def run(
        self,
        context,
        job: str,
        args: list,
        *,
        log_name: str,
        report_path: Path | None = None,
        layout: Layout | None = None,
        module: str | None = None,
    ) -> JobResult:
        """Run a child job and return its metrics; raise ``Failure`` (retryable) on error or timeout."""
        layout = layout or Layout.from_env().ensure()
        log_path = layout.logs / f"{log_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(a) for a in (child_command(job, *args) if module is None else [*_python(), "-m", module, *args])]
        if report_path is not None:
            Path(report_path).unlink(missing_ok=True)
            argv += ["--report", str(report_path)]
        timeout_s = self.timeout_for(job)
        attempt = int(getattr(context, "retry_number", 0) or 0)
        drill = hang_drill_for(job, log_name, attempt)
        if drill is not None:
            context.log.warning(
                f"{DRILL_MARK}: {job} attempt {attempt + 1} ({log_name}) will hang until its "
                f"{timeout_s:.0f} s timeout (CONTIMG_DRILL_HANG)"
            )
            argv = hang_command(argv)
        argv = guarded_command(argv)
        env = casa_child_env(layout.casa_state)
        t0 = time.perf_counter()
        with open_pipes_session(
            context=context, context_injector=PipesEnvContextInjector(), message_reader=PipesTempFileMessageReader()
        ) as session:
            env.update(session.get_bootstrap_env_vars())
            with open(log_path, "ab") as log:
                log.write(f"$ {' '.join(argv)}\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=layout.scratch
                )
            context.log.info(f"{job}: pid {proc.pid}, log {log_path}")
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired as err:
                _kill_group(proc, self.kill_grace_s)
                raise Failure(
                    description=f"{job} timed out after {timeout_s:.0f} s and was killed "
                    f"(process group {proc.pid}).\n--- log tail ---\n{tail(log_path)}",
                    metadata={"log": MetadataValue.path(str(log_path))},
                    allow_retries=True,
                ) from err
            except BaseException:  # run cancelled (DagsterExecutionInterruptedError) or interrupted
                _kill_group(proc, self.kill_grace_s)
                raise
            seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                raise Failure(
                    description=f"{job} failed with exit status {proc.returncode}.\n--- log tail ---\n{tail(log_path)}",
                    metadata={"log": MetadataValue.path(str(log_path)), "exit_status": proc.returncode},
                    allow_retries=True,
                )
        messages = session.get_custom_messages()
        metrics = dict(messages[-1]) if messages else {}
        if not metrics and report_path is not None and Path(report_path).exists():
            metrics = json.loads(Path(report_path).read_text())
        result = JobResult(metrics)
        result["log_path"] = str(log_path)
        result["seconds"] = seconds
        return result


def _python() -> list[str]:
    import sys

    return [sys.executable]
