"""Helpers for the benchmark scripts: run a command as a child and measure its wall time and peak RSS."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from contimg.childjobs.env import casa_child_env


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """Run ``argv``; return (wall seconds, peak RSS in MB of that child, exit status)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(proc.stderr.read().decode()[-3000:])
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def casa_env(scratch: Path) -> dict:
    return casa_child_env(scratch / "casa-state")


def bench_dir() -> Path:
    d = Path(os.environ.get("CONTIMG_BENCH_DIR", Path(__file__).resolve().parent / "out"))
    d.mkdir(parents=True, exist_ok=True)
    return d
