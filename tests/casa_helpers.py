"""Run CASA-side checks in a child process.

casatools and python-casacore each carry their own casacore and CASA can abort at interpreter
exit, so the pytest process imports neither: a check is a snippet run by a child Python with the
project's offline CASA environment, printing one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from contimg.childjobs.env import casa_child_env


def run_in_child(code: str, casa_state_dir: Path, timeout_s: float = 600) -> dict:
    """Run ``code`` in a fresh interpreter with the CASA environment; return its last-line JSON."""
    Path(casa_state_dir).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=casa_child_env(Path(casa_state_dir)),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=casa_state_dir,  # CASA leaves scratch tables in its working directory
    )
    if proc.returncode != 0:
        raise AssertionError(f"child check failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


def run_job(job: str, *args, state: Path, timeout_s: float = 1200) -> subprocess.CompletedProcess:
    """Run a contimg child job (``convert``, ``image``, ...) as the stream runs it: its own interpreter, the
    offline CASA environment with ``state`` as its state folder; output captured for the test's assertion."""
    from contimg.childjobs.env import child_command

    return subprocess.run(
        child_command(job, *args), env=casa_child_env(state), capture_output=True, text=True, timeout=timeout_s
    )
