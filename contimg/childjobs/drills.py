"""Fault drills for the live stream: make a CASA child job hang until its timeout.

The simulator's faults (``contimg.sim.faults``) break the *input*; this breaks the *processing*.
With ``CONTIMG_DRILL_HANG`` set in the environment of the Dagster processes, ``CasaRunner`` runs
a matching job as :func:`hang` instead of the real job, through the same guard, process group,
log file and timeout. The hang behaves like CASA stuck in C++: it ignores SIGINT, holds a
grandchild in its process group, prints to the job's log and never finishes, so only the runner's
timeout (``CONTIMG_CASA_TIMEOUT_S``) -> whole-group kill -> ``Failure`` -> retry policy path ends it.

``CONTIMG_DRILL_HANG`` is a comma-separated list of ``JOB:MATCH[@ATTEMPTS]``:

- ``JOB``: the child job (``convert``, ``calibrate``, ``image``);
- ``MATCH``: a window key (``2026-01-25T00:20``, or its slug ``2026-01-25T0020``) or any text
  contained in the job's log name (``image-2026-01-25T0020``);
- ``ATTEMPTS``: how many attempts of the step hang, counted by Dagster's retry number (default 1:
  only the first attempt, as real CASA hangs are transient and the retry succeeds; ``all``: every
  attempt, so the step fails for good once its retries are spent).

Unset (production), nothing changes. Example: ``CONTIMG_DRILL_HANG="image:2026-01-25T00:20"``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from contimg.core.config import SETTINGS, SettingsError, read

__all__ = ["HangDrill", "parse_hang_drills", "hang_drill_for", "hang_command", "DRILL_MARK"]

DRILL_MARK = "FAULT DRILL"


@dataclass(frozen=True)
class HangDrill:
    """One item of ``CONTIMG_DRILL_HANG``: make a child job hang instead of running.

    Attributes
    ----------
    job : str
        The child job's name (e.g. ``image``).
    match : str
        A text that the job's log name must contain (with or without its colons).
    attempts : int or None
        The number of first attempts that hang (attempts counted from 0); None: every attempt.
    """

    job: str
    match: str
    attempts: int | None  # None: every attempt

    def matches(self, job: str, log_name: str, attempt: int) -> bool:
        """Whether this drill applies to attempt ``attempt`` (from 0) of ``job`` logging to ``log_name``."""
        if job != self.job:
            return False
        if self.attempts is not None and attempt >= self.attempts:
            return False
        return self.match in log_name or self.match.replace(":", "") in log_name


def parse_hang_drills(spec: str | None) -> list[HangDrill]:
    """Parse ``JOB:MATCH[@ATTEMPTS],...``.

    Raises
    ------
    SettingsError
        On a malformed item, quoting it (a ValueError naming ``CONTIMG_DRILL_HANG``).
    """
    allowed = SETTINGS["CONTIMG_DRILL_HANG"].allowed
    drills = []
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        job, sep, rest = item.partition(":")
        match, _, attempts = rest.partition("@")
        if not sep or not job.isidentifier() or not match:
            raise SettingsError("CONTIMG_DRILL_HANG", spec, allowed, f"item {item!r} is not JOB:MATCH[@ATTEMPTS]")
        if attempts in ("", "all"):
            n = None if attempts == "all" else 1
        elif attempts.isdigit() and int(attempts) > 0:
            n = int(attempts)
        else:
            raise SettingsError(
                "CONTIMG_DRILL_HANG", spec, allowed, f"item {item!r}: ATTEMPTS must be a whole number >= 1 or 'all'"
            )
        drills.append(HangDrill(job, match, n))
    return drills


def hang_drill_for(job: str, log_name: str, attempt: int, environ=None) -> HangDrill | None:
    """The drill of ``CONTIMG_DRILL_HANG`` that applies to this job attempt, or None."""
    for drill in read("CONTIMG_DRILL_HANG", environ):
        if drill.matches(job, log_name, attempt):
            return drill
    return None


def hang_command(argv: list[str]) -> list[str]:
    """The command that hangs in place of ``argv`` (kept in its arguments, so ``ps`` shows the job)."""
    return [sys.executable, "-m", "contimg.childjobs.drills", "hang", "--", *map(str, argv)]


def hang(job_argv: list[str]) -> None:
    """Hang like a stuck CASA job: deaf to SIGINT, a grandchild in the group, never returning."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "3600"])
    print(f"{DRILL_MARK}: CONTIMG_DRILL_HANG matched; hanging in place of: {' '.join(job_argv)}", flush=True)
    print(f"{DRILL_MARK}: pid {os.getpid()}, grandchild {grandchild.pid}; waiting for the runner's timeout", flush=True)
    while True:
        time.sleep(60)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "hang" or argv[1] != "--":
        print("usage: python -m contimg.childjobs.drills hang -- JOB_ARGV...", file=sys.stderr)
        return 2
    hang(argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
