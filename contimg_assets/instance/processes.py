"""The processes of a Dagster instance on this machine: find them, tell CASA's apart, stop them.

Shared by the stream runner (demo, e2e test, drills) and the local cluster: a process belongs to an
instance when the instance's path is in its command line or environment (the daemon, its code
server, run workers and their CASA children all inherit ``DAGSTER_HOME``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from contimg.childjobs.env import CHILD_JOB_MODULES

__all__ = [
    "REPO_ROOT",
    "CASA_MARKERS",
    "executable",
    "cmdline",
    "instance_pids",
    "casa_processes",
    "process_group",
    "reap_instance_processes",
    "stop_group",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
# command-line markers of CASA-side processes: child jobs, their guard, drill stand-ins, WSClean
CASA_MARKERS = (
    *(m.encode() for m in CHILD_JOB_MODULES.values()),
    b"contimg.childjobs.guard",
    b"contimg.childjobs.drills",
    b"wsclean",
)


def executable(name: str) -> str:
    """The venv's ``name`` (dagster-daemon, celery...) beside this Python, else ``name`` on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def cmdline(pid: int) -> bytes:
    """The NUL-separated command line of ``pid``; empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def instance_pids(dagster_home: Path) -> list[int]:
    """Processes (other than this one) with the instance path in their command line or environment."""
    me = os.getpid()
    needle = str(dagster_home).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def casa_processes(dagster_home: Path) -> dict[int, str]:
    """CASA-side processes (jobs, guards, drill stand-ins, WSClean) working for this instance: pid -> cmdline."""
    out = {}
    for pid in instance_pids(dagster_home):
        cmd = cmdline(pid)
        if any(m in cmd for m in CASA_MARKERS):
            out[pid] = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


def process_group(pid: int) -> int | None:
    """The process group of ``pid``; None when it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def reap_instance_processes(dagster_home: Path, grace_s: float = 10.0) -> list[int]:
    """Stop every process still serving this instance (code server, run workers, CASA children).

    Normally the daemon's SIGTERM takes its process group down with it, code server and run workers
    included; whatever still runs afterwards is found by the instance path in its command line or
    environment.
    """
    found = instance_pids(dagster_home)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in found):
            time.sleep(0.5)
    return found


def stop_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Stop a process group: SIGTERM, then SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
