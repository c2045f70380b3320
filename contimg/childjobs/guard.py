"""Child guard: a CASA job never outlives the Dagster step process that started it.

``CasaRunner`` starts every child job as ``python -m contimg.childjobs.guard PARENT_PID -- ARGV...`` in a
new process group. The guard runs ARGV as its own child in that group and waits for it. When the
parent (the step process) disappears without stopping the job -- the run worker was killed, e.g. the
daemon's whole process group got SIGKILL, or the OOM killer took the step -- the guard stops the
whole group the way ``CasaRunner`` does on a timeout: SIGINT first (Python jobs raise
KeyboardInterrupt and their ``finally`` blocks remove their temporaries), then SIGTERM, then SIGKILL.
Without it the job, and WSClean under it, would keep writing the window's products while a retried
run converts or images the same window.

The guard exits with the job's exit status (``128 + N`` when the job died of signal N). It survives
SIGINT (the job decides what an interrupt means) and dies of SIGTERM/SIGKILL with the rest of the
group. No shell is involved; arguments are passed through untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

__all__ = ["guarded_command", "main"]

POLL_S = 0.5
INTERRUPT_GRACE_S = 10.0
TERM_GRACE_S = 5.0


def guarded_command(argv: list[str], parent_pid: int | None = None) -> list[str]:
    """``argv`` wrapped in the guard, watching ``parent_pid`` (default: this process)."""
    return [sys.executable, "-m", "contimg.childjobs.guard", str(parent_pid or os.getpid()), "--", *map(str, argv)]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_group(child: subprocess.Popen, reason: str) -> int:
    """Interrupt, terminate, then kill this process group (the guard included, last)."""
    pgid = os.getpgid(0)
    print(f"childguard: {reason}; stopping process group {pgid}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stay alive to escalate; SIGKILL still ends us
    for sig, grace in ((signal.SIGINT, INTERRUPT_GRACE_S), (signal.SIGTERM, TERM_GRACE_S)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # the job is gone; wait briefly for its own children, then finish them off
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _others_in_group(pgid):
            time.sleep(0.1)
        break
    if _others_in_group(pgid):
        os.killpg(pgid, signal.SIGKILL)  # ends the guard too
    code = child.poll()
    return 128 + signal.SIGKILL if code is None else _status(code)


def _status(code: int) -> int:
    return code if code >= 0 else 128 - code


def _others_in_group(pgid: int) -> bool:
    """True if a live process other than the guard is in the group."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Run ``COMMAND`` and stop its process group once ``PARENT_PID`` is no longer this process's parent.

    Parameters
    ----------
    argv : list of str, optional
        ``PARENT_PID -- COMMAND [ARG...]``; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The command's exit status (128 + N if signal N ended it), 2 on a usage error, or, when the
        parent is gone, the status left after stopping the group.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m contimg.childjobs.guard PARENT_PID -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    parent = int(argv[0])
    command = argv[2:]
    # A group interrupt is for the job: the guard catches it and carries on (a caught signal, unlike an
    # ignored one, is back to its default in the job after exec, so Python there still raises
    # KeyboardInterrupt).
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    child = subprocess.Popen(command)
    while True:
        try:
            return _status(child.wait(timeout=POLL_S))
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            return _stop_group(child, f"parent process {parent} is gone")


if __name__ == "__main__":
    sys.exit(main())
