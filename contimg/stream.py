"""Run the real stream unattended over a folder of simulated chunks: the demo and the e2e test.

A ``dagster-daemon`` process (its own process group) runs the ingest sensor and the run queue on
the instance in ``Layout.dagster_home``; the correlator replay drops files into the ingest folder;
we wait (bounded) until every chunk has reached a final state in the catalogue, then build the
day's mosaic through Dagster and stop the daemon. Nothing here does science.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from contimg.replay import chunks_in, replay
from contimg.settings import Layout

__all__ = ["StreamOutcome", "dagster_env", "install_instance_config", "run_stream"]

REPO_ROOT = Path(__file__).resolve().parent.parent
FINAL_GROUP_STATES = ("imaged", "failed", "incomplete")


@dataclass
class StreamOutcome:
    chunks_delivered: int
    windows: dict = field(default_factory=dict)  # window -> group state
    images: list = field(default_factory=list)
    mosaic: str | None = None
    timed_out: bool = False
    daemon_log: str = ""


def dagster_env(layout: Layout, extra: dict | None = None) -> dict:
    """Environment for Dagster processes over ``layout`` (the same settings the resources read)."""
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(layout.dagster_home),
        CONTIMG_INGEST_DIR=str(layout.ingest),
        CONTIMG_PRODUCTS_DIR=str(layout.products),
        CONTIMG_SCRATCH_DIR=str(layout.scratch),
        CONTIMG_STATE_DIR=str(layout.state),
    )
    env.update(extra or {})
    return env


def install_instance_config(layout: Layout) -> Path:
    """Put the repository's ``dagster.yaml`` into the instance's DAGSTER_HOME (the dev/demo instance)."""
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    target = layout.dagster_home / "dagster.yaml"
    shutil.copyfile(REPO_ROOT / "dagster.yaml", target)
    return target


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _group_states(catalogue: Path) -> dict:
    if not catalogue.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{catalogue}?mode=ro", uri=True, timeout=10)
        try:
            return dict(con.execute("SELECT window_key, state FROM groups").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


def run_stream(sim_dir: Path, layout: Layout, *, interval_s: float = 10.0, timeout_s: float = 1800.0,
               expected_windows: int | None = None, mosaic_dates: list[str] | None = None,
               env_extra: dict | None = None, log=print) -> StreamOutcome:
    """Replay ``sim_dir`` into the ingest folder under a live daemon and wait for the stream to finish.

    ``expected_windows`` defaults to the number of chunks in ``sim_dir``; the wait ends when that
    many groups are in a final state or ``timeout_s`` passes.
    """
    layout.ensure()
    install_instance_config(layout)
    env = dagster_env(layout, env_extra)
    daemon_log = layout.logs / "dagster-daemon.log"
    n_chunks = len(chunks_in(sim_dir))
    expected = expected_windows if expected_windows is not None else n_chunks
    log(f"starting dagster-daemon (DAGSTER_HOME={layout.dagster_home}, log {daemon_log})")
    with open(daemon_log, "ab") as out:
        daemon = subprocess.Popen(
            [_bin("dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    outcome = StreamOutcome(chunks_delivered=0, daemon_log=str(daemon_log))
    try:
        feeder = threading.Thread(
            target=lambda: setattr(outcome, "chunks_delivered", replay(
                sim_dir, layout.ingest, interval_s=interval_s,
                on_chunk=lambda i, files: log(f"correlator: chunk {i} delivered ({len(files)} files)"))),
            daemon=True,
        )
        feeder.start()
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited with {daemon.returncode}; see {daemon_log}")
            states = _group_states(layout.catalogue)
            summary = {s: sum(1 for v in states.values() if v == s) for s in sorted(set(states.values()))}
            if summary != last:
                log(f"stream: {summary}")
                last = summary
            done = sum(1 for v in states.values() if v in FINAL_GROUP_STATES)
            if not feeder.is_alive() and done >= expected:
                break
            time.sleep(3)
        else:
            outcome.timed_out = True
            log(f"stream: timed out after {timeout_s:.0f} s")
        outcome.windows = _group_states(layout.catalogue)
        for date in mosaic_dates or []:
            log(f"building the nightly mosaic for {date} through Dagster")
            proc = subprocess.run(
                [_bin("dagster"), "asset", "materialize", "-m", "contimg_assets.definitions",
                 "--select", "nightly_mosaic", "--partition", date],
                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800,
            )
            (layout.logs / f"mosaic-{date}.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode == 0 and layout.mosaic_path(date).exists():
                outcome.mosaic = str(layout.mosaic_path(date))
            else:
                log(f"mosaic for {date} failed; see {layout.logs / f'mosaic-{date}.log'}")
    finally:
        _stop(daemon)
        _reap_instance_processes(layout.dagster_home)
    outcome.images = sorted(str(p) for p in (layout.products / "images").rglob("*.pbcor.fits"))
    return outcome


def _reap_instance_processes(dagster_home: Path, grace_s: float = 10.0) -> list[int]:
    """Stop every process still serving this instance (code server, run workers, CASA children).

    The daemon's code server and run workers leave its process group, so killing the daemon
    alone leaves them running (seen: run workers spinning for 30 min, holding a casa pool slot).
    They are found by the instance path in their command line or environment.
    """
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


def _stop(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
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
