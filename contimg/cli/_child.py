"""Running a CASA child job from the command line: its failure comes back as its last error line.

The job's stdout goes to the terminal as it runs; its stderr is kept in a file under the state's
``logs/`` folder. On success that text is passed on and the file removed; on failure the file is kept
and :class:`ChildJobError` carries the job's last error line (the last line of a traceback is the
exception and its message) and where the rest is, so ``contimg`` prints one line, not the traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from contimg.childjobs.env import casa_child_env, child_command
from contimg.core.settings import Layout

__all__ = ["ChildJobError", "run_child_job", "last_error_line"]


class ChildJobError(RuntimeError):
    """A child job exited with a non-zero status; the message is its last error line."""


def last_error_line(stderr_text: str, job: str) -> str:
    """The last non-empty line of a job's stderr, without the job's own ``JOB: error:`` prefix."""
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip()]
    if not lines:
        return "it wrote no error message"
    return lines[-1].removeprefix(f"{job}: error: ")


def run_child_job(job: str, args: list, layout: Layout) -> int:
    """Run ``python -m contimg.<job>.job ARGS`` in the CASA child environment; 0 on success.

    Raises
    ------
    ChildJobError
        If the job exits with a non-zero status or dies of a signal; the message gives the status, its
        last error line and the file holding its whole stderr.
    """
    log = layout.logs / f"cli-{job}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.stderr.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w+", errors="replace") as err:
        rc = subprocess.call(child_command(job, *args), env=casa_child_env(layout.casa_state), stderr=err)
        err.seek(0)
        text = err.read()
    if rc == 0:
        sys.stderr.write(text)  # warnings of a job that worked are still the user's to see
        log.unlink(missing_ok=True)
        return 0
    status = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
    raise ChildJobError(f"the {job} job failed ({status}): {last_error_line(text, job)} (its stderr: {log})")
