"""Run the real stream unattended over a folder of simulated chunks: the demo, the e2e test, the drills.

A ``dagster-daemon`` process (its own process group) runs the ingest sensor and the run queue on
the instance in ``Layout.dagster_home``; the correlator replay drops files into the ingest folder;
we wait (bounded) until every chunk has reached a final state in the catalogue and no run is
queued, running or waiting for its retry, then build the day's mosaic through Dagster and stop the
daemon. Nothing here does science.

Fault drill: with ``kill_daemon=DaemonKillDrill(...)`` the daemon's whole process group (daemon,
code server, run workers, step processes) gets SIGKILL while a CASA job of the instance is running,
and a new daemon is started on the same instance, as a crash and a systemd restart would do. The
outcome records what was running, which CASA processes outlived the kill, and what the final stop
had to reap.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from contimg.catalogue.ingest import group_states
from contimg.childjobs.env import CHILD_JOB_MODULES
from contimg.core.settings import Layout
from contimg.sim.replay import chunks_in, replay
from contimg_assets.instance.processes import (
    REPO_ROOT,
    casa_processes,
    executable,
    instance_pids,
    process_group,
    reap_instance_processes,
    stop_group,
)

__all__ = ["StreamOutcome", "DaemonKillDrill", "dagster_env", "install_instance_config", "run_stream"]

FINAL_GROUP_STATES = ("imaged", "failed", "incomplete")
ORPHAN_WAIT_S = 30.0  # a CASA job must be gone this long after its run worker was killed


@dataclass
class DaemonKillDrill:
    """When to SIGKILL the daemon's process group, and when to start the new daemon.

    The kill comes ``delay_s`` after a CASA child job of the instance is seen running that matches
    ``job`` (``convert``, ``image``, ...; None: any) and ``window`` (partition key; None: any), once
    at least ``min_imaged`` windows are imaged. The new daemon starts ``restart_after_s`` later.
    """

    job: str | None = None
    window: str | None = None
    min_imaged: int = 0
    delay_s: float = 1.0
    restart_after_s: float = 5.0


@dataclass
class StreamOutcome:
    chunks_delivered: int
    windows: dict = field(default_factory=dict)  # window -> group state
    images: list = field(default_factory=list)
    mosaic: str | None = None
    timed_out: bool = False
    daemon_log: str = ""
    wall_s: float = 0.0
    runs: dict = field(default_factory=dict)  # Dagster run status -> count, at the end
    kills: list = field(default_factory=list)  # one dict per daemon kill (see DaemonKillDrill)
    leftovers: list = field(default_factory=list)  # "pid cmdline" of CASA processes the final stop had to reap
    reaped: int = 0  # processes of the instance the final stop had to kill (code server, run workers, ...)


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


def _matching_job(procs: dict[int, str], job: str | None, window: str | None) -> int | None:
    for pid, cmd in procs.items():
        if (
            not any(m in cmd for m in CHILD_JOB_MODULES.values())
            or "contimg.childjobs.guard" in cmd
            or "contimg.childjobs.drills" in cmd
        ):
            continue
        if job is not None and f"{CHILD_JOB_MODULES[job]} " not in cmd + " ":
            continue
        if window is not None and window.replace(":", "") not in cmd:
            continue
        return pid
    return None


def _start_daemon(env: dict, daemon_log: Path) -> subprocess.Popen:
    with open(daemon_log, "ab") as out:
        return subprocess.Popen(
            [executable("dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class _Runs:
    """Run states of the instance, read through Dagster's own API (opened lazily, after the daemon)."""

    def __init__(self, dagster_home: Path):
        self.home = dagster_home
        self.instance = None

    def _open(self):
        if self.instance is None:
            from dagster import DagsterInstance

            self.instance = DagsterInstance.from_config(str(self.home))
        return self.instance

    def busy(self) -> list[str]:
        """Run ids queued, starting, running, cancelling, or failed and waiting for their retry."""
        from dagster import DagsterRunStatus, RunsFilter

        active = [
            DagsterRunStatus.QUEUED,
            DagsterRunStatus.NOT_STARTED,
            DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED,
            DagsterRunStatus.CANCELING,
        ]
        inst = self._open()
        ids = list(inst.get_run_ids(filters=RunsFilter(statuses=active)))
        failed = inst.get_runs(
            filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"dagster/will_retry": "true"})
        )
        return ids + [r.run_id for r in failed if r.is_complete_and_waiting_to_retry]

    def in_progress(self) -> list[str]:
        from dagster import DagsterRunStatus, RunsFilter

        return list(
            self._open().get_run_ids(filters=RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]))
        )

    def summary(self) -> dict:
        counts: dict = {}
        for r in self._open().get_runs():
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
        return counts

    def close(self) -> None:
        if self.instance is not None:
            self.instance.dispose()
            self.instance = None


def run_stream(
    sim_dir: Path,
    layout: Layout,
    *,
    interval_s: float = 10.0,
    timeout_s: float = 1800.0,
    expected_windows: int | None = None,
    mosaic_dates: list[str] | None = None,
    env_extra: dict | None = None,
    kill_daemon: DaemonKillDrill | None = None,
    log=print,
) -> StreamOutcome:
    """Replay ``sim_dir`` into the ingest folder under a live daemon and wait for the stream to finish.

    ``expected_windows`` defaults to the number of chunks in ``sim_dir``; the wait ends when that
    many groups are in a final state and no run is queued, in progress or waiting for a retry, or
    when ``timeout_s`` passes. ``kill_daemon`` runs the daemon-kill drill (module docstring).
    """
    t_start = time.monotonic()
    layout.ensure()
    install_instance_config(layout)
    env = dagster_env(layout, env_extra)
    daemon_log = layout.logs / "dagster-daemon.log"
    n_chunks = len(chunks_in(sim_dir))
    expected = expected_windows if expected_windows is not None else n_chunks
    log(f"starting dagster-daemon (DAGSTER_HOME={layout.dagster_home}, log {daemon_log})")
    daemon = _start_daemon(env, daemon_log)
    outcome = StreamOutcome(chunks_delivered=0, daemon_log=str(daemon_log))
    runs = _Runs(layout.dagster_home)
    drill = kill_daemon
    seen_job_at = None  # when the drill's job was first seen running
    kill = None  # the current kill record, until its orphan check is done
    drill_restart_at = 0.0
    last_busy = None
    try:
        feeder = threading.Thread(
            target=lambda: setattr(
                outcome,
                "chunks_delivered",
                replay(
                    sim_dir,
                    layout.ingest,
                    interval_s=interval_s,
                    on_chunk=lambda i, files: log(f"correlator: chunk {i} delivered ({len(files)} files)"),
                ),
            ),
            daemon=True,
        )
        feeder.start()
        deadline = time.monotonic() + timeout_s
        last = None
        next_poll = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if drill is not None:  # watch closely for the moment to kill
                states = group_states(layout.catalogue)
                imaged = sum(1 for v in states.values() if v == "imaged")
                pid = _matching_job(casa_processes(layout.dagster_home), drill.job, drill.window)
                if pid is not None and imaged >= drill.min_imaged:
                    seen_job_at = seen_job_at or now
                    if now - seen_job_at >= drill.delay_s:
                        kill = _kill_daemon(daemon, layout, runs, log)
                        outcome.kills.append(kill)
                        daemon = None
                        drill_restart_at = now + drill.restart_after_s
                        drill = None
            if daemon is None and kill is not None and now >= drill_restart_at:
                log("drill: starting a new dagster-daemon on the same instance")
                daemon = _start_daemon(env, daemon_log)
                kill["restarted_after_s"] = round(time.monotonic() - kill["t"], 1)
            if kill is not None and "orphans" not in kill:
                alive = {p: c for p, c in casa_processes(layout.dagster_home).items() if p in kill["casa"]}
                if not alive:
                    kill["orphans"] = []
                    kill["casa_gone_after_s"] = round(time.monotonic() - kill["t"], 1)
                    log(f"drill: every CASA process of the killed runs is gone ({kill['casa_gone_after_s']} s)")
                elif time.monotonic() - kill["t"] > ORPHAN_WAIT_S:
                    kill["orphans"] = [f"{p} {c}" for p, c in alive.items()]
                    log(f"drill: CASA processes outlived their run workers by {ORPHAN_WAIT_S:.0f} s: {kill['orphans']}")
            if daemon is not None and daemon.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited with {daemon.returncode}; see {daemon_log}")
            if now >= next_poll:
                next_poll = now + 3.0
                states = group_states(layout.catalogue)
                summary = {s: sum(1 for v in states.values() if v == s) for s in sorted(set(states.values()))}
                if summary != last:
                    log(f"stream: {summary}")
                    last = summary
                done = sum(1 for v in states.values() if v in FINAL_GROUP_STATES)
                settled = daemon is not None and (kill is None or "orphans" in kill)
                if not feeder.is_alive() and done >= expected and settled:
                    busy = runs.busy()
                    if not busy:
                        break
                    if len(busy) != last_busy:
                        log(f"stream: every chunk final; waiting for {len(busy)} run(s) in flight or to be retried")
                        last_busy = len(busy)
            time.sleep(1.0 if (drill is not None or (kill is not None and "orphans" not in kill)) else 0.5)
        else:
            outcome.timed_out = True
            log(f"stream: timed out after {timeout_s:.0f} s")
        outcome.windows = group_states(layout.catalogue)
        for date in mosaic_dates or []:
            log(f"building the nightly mosaic for {date} through Dagster")
            proc = subprocess.run(
                [
                    executable("dagster"),
                    "asset",
                    "materialize",
                    "-m",
                    "contimg_assets.definitions",
                    "--select",
                    "nightly_mosaic",
                    "--partition",
                    date,
                ],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            (layout.logs / f"mosaic-{date}.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode == 0 and layout.mosaic_path(date).exists():
                outcome.mosaic = str(layout.mosaic_path(date))
            else:
                log(f"mosaic for {date} failed; see {layout.logs / f'mosaic-{date}.log'}")
        try:
            outcome.runs = runs.summary()
        except Exception as err:  # the summary is a report, never a reason to fail the stop
            log(f"stream: could not summarise runs: {err}")
    finally:
        runs.close()
        if daemon is not None:
            stop_group(daemon)
        outcome.leftovers = [f"{p} {c}" for p, c in casa_processes(layout.dagster_home).items()]
        outcome.reaped = len(reap_instance_processes(layout.dagster_home))
    outcome.images = sorted(str(p) for p in (layout.products / "images").rglob("*.pbcor.fits"))
    outcome.wall_s = round(time.monotonic() - t_start, 1)
    return outcome


def _kill_daemon(daemon: subprocess.Popen, layout: Layout, runs: _Runs, log) -> dict:
    """SIGKILL the daemon's process group (daemon, code server, run workers, steps); say what was running."""
    casa = casa_processes(layout.dagster_home)
    try:
        in_progress = runs.in_progress()
    except Exception:  # noqa: BLE001 -- a report only
        in_progress = []
    group = [p for p in instance_pids(layout.dagster_home) if process_group(p) == daemon.pid]
    log(
        f"drill: SIGKILL to the daemon's process group {daemon.pid} ({len(group)} processes; runs in progress "
        f"{in_progress}; CASA processes {sorted(casa)})"
    )
    try:
        os.killpg(daemon.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    daemon.wait()
    return {
        "t": time.monotonic(),
        "group_size": len(group),
        "runs_in_progress": in_progress,
        "casa": sorted(casa),
        "casa_cmdlines": list(casa.values()),
    }
