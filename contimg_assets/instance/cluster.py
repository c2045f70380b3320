"""A cluster on one machine: Redis, PostgreSQL, one dagster-daemon and N Celery workers (cluster mode).

``scripts/cluster.sh start|stop|status|env`` (and ``make cluster``) drive this module; the cluster test and
``benchmarks/cluster.py`` use it directly. Everything binds to 127.0.0.1 on free ports; every process runs in
its own session (process group), is recorded in ``<root>/cluster.json`` and stopped by ``stop``:

- Redis (broker + result backend): ``redis-server``, no persistence, data folder under ``<root>/redis``;
- PostgreSQL (the Dagster instance): a throwaway ``initdb`` in a temp folder (as ``postgres`` when root), or
  ``--pg-url``;
- ``dagster-daemon run``: run queue, backfills, sensors, run monitoring; launches runs as Celery tasks;
- Celery workers ``w1..wN``: ``celery -A contimg_resources.celery_worker worker``, each with its own
  ``CONTIMG_SCRATCH_DIR``.

The instance file is ``deploy/dagster.cluster.yaml`` with ``max_concurrent_runs`` set to the worker processes.
Ingest, products and state are shared: on one machine they are local folders; across hosts they would be the
shared file system (deploy/README.md). The products catalogue is not a file there: it is the ``contimg``
database on the cluster's PostgreSQL (``CONTIMG_CATALOGUE_URL`` in every process), since SQLite's locking
does not hold across hosts.

Stopping: the daemon first (no new launches), then workers (warm shutdown: a run in flight may finish within
``grace_s``, else its process group is killed and the CASA job's guard stops the job), then Redis and
PostgreSQL; finally anything still carrying the cluster's root in its environment is reaped and reported.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from contimg.core.config import read
from contimg.core.settings import Layout
from contimg_assets.instance import cluster_processes as services
from contimg_assets.instance.cluster_processes import READY_TIMEOUT_S
from contimg_assets.instance.processes import REPO_ROOT, executable, instance_pids
from contimg_assets.instance.stream import dagster_env

__all__ = [
    "start",
    "stop",
    "status",
    "load_state",
    "cluster_env",
    "kill_worker",
    "start_worker",
    "wait_workers",
    "launch_partition_runs",
    "task_workers",
    "main",
]

CLUSTER_YAML = REPO_ROOT / "deploy" / "dagster.cluster.yaml"
STATE_FILE = "cluster.json"
LAUNCH_TIMEOUT_S = 300.0  # one `dagster job launch` (it loads the code location first)
CASA_POOL_DEFAULT = 1  # deploy/dagster.cluster.yaml's pools.default_limit


def state_path(root: Path) -> Path:
    return Path(root) / STATE_FILE


def load_state(root: Path) -> dict:
    p = state_path(root)
    return json.loads(p.read_text()) if p.exists() else {}


def _save_state(root: Path, state: dict) -> None:
    tmp = state_path(root).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_path(root))


def cluster_env(state: dict, extra: dict | None = None) -> dict:
    """Environment of the cluster's Dagster processes (daemon, CLI), without per-worker settings."""
    layout = Layout(**{k: Path(v) for k, v in state["layout"].items()})
    env = dagster_env(layout, {**state.get("env", {}), **(extra or {})})
    env.update(
        DAGSTER_HOME=state["dagster_home"],
        CONTIMG_PG_URL=state["pg_url"],
        CONTIMG_CELERY_BROKER=state["broker"],
        CONTIMG_CELERY_BACKEND=state["backend"],
        CONTIMG_CLUSTER_ROOT=state["root"],
    )
    if state.get("catalogue_url"):  # every run, on any worker, writes the one catalogue in Postgres
        env["CONTIMG_CATALOGUE_URL"] = state["catalogue_url"]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _render_instance_yaml(home: Path, max_concurrent_runs: int) -> Path:
    import yaml

    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.write_text(
        f"# rendered from {CLUSTER_YAML} by contimg_assets.instance.cluster\n" + yaml.safe_dump(config, sort_keys=False)
    )
    return target


def _worker_name(i: int) -> str:
    return f"w{i}"


def start_worker(state: dict, name: str, *, concurrency: int | None = None) -> dict:
    """Start (or restart) one Celery worker of the cluster; records it in the state (caller saves)."""
    root = Path(state["root"])
    scratch = root / "scratch" / name
    scratch.mkdir(parents=True, exist_ok=True)
    env = cluster_env(state, {"CONTIMG_SCRATCH_DIR": str(scratch), "CONTIMG_WORKER": name})
    conc = concurrency or state.get("concurrency", 1)
    pid = services.spawn(
        [
            executable("celery"),
            "-A",
            "contimg_resources.celery_worker",
            "worker",
            "-n",
            f"{name}@%h",
            "-Q",
            "dagster",
            "-c",
            str(conc),
            "-P",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        root / "logs" / f"worker-{name}.log",
    )
    w = {"name": name, "pid": pid, "scratch": str(scratch), "node": f"{name}@{socket.gethostname()}"}
    state["workers"] = [x for x in state.get("workers", []) if x["name"] != name] + [w]
    return w


def _celery_app(state: dict):
    from celery import Celery

    from contimg_resources.celery_launcher import celery_app_args

    args = celery_app_args(state["broker"], state["backend"])
    return Celery("contimg-cluster-control", broker=args["broker"], backend=args["backend"])


def wait_workers(state: dict, names: list[str] | None = None, timeout_s: float = READY_TIMEOUT_S) -> list[str]:
    """Wait until the named workers (default: all) answer a ping; return the nodes that answered."""
    wanted = {w["node"] for w in state["workers"] if names is None or w["name"] in names}
    app = _celery_app(state)
    seen: set = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for reply in app.control.ping(timeout=1.0) or []:
                seen |= set(reply)
            if wanted <= seen:
                return sorted(seen)
            dead = [w["name"] for w in state["workers"] if w["node"] in wanted and not services.alive(w["pid"])]
            if dead:
                raise RuntimeError(f"Celery worker(s) {dead} exited; see {Path(state['root']) / 'logs'}")
    finally:
        app.close()
    raise TimeoutError(f"workers {sorted(wanted - seen)} did not answer within {timeout_s:.0f} s")


def _wait_daemon(state: dict, timeout_s: float = READY_TIMEOUT_S) -> None:
    from dagster import DagsterInstance

    os.environ.update({k: v for k, v in cluster_env(state).items() if k.startswith(("CONTIMG_PG", "CONTIMG_CELERY"))})
    deadline = time.monotonic() + timeout_s
    with DagsterInstance.from_config(state["dagster_home"]) as instance:
        while time.monotonic() < deadline:
            beats = instance.get_daemon_heartbeats()
            if "QUEUED_RUN_COORDINATOR" in beats and "MONITORING" in beats:
                return
            if not services.alive(state["daemon"]["pid"]):
                break
            time.sleep(1.0)
    raise RuntimeError(f"dagster-daemon did not come up; see {Path(state['root']) / 'logs' / 'daemon.log'}")


def start(
    root: Path,
    *,
    workers: int = 2,
    concurrency: int = 1,
    layout: Layout | None = None,
    env: dict | None = None,
    pg_url: str | None = None,
    catalogue_url: str | None = None,
    stopped_sensors: tuple = (),
    casa_pool_limit: int | None = None,
    log=print,
) -> dict:
    """Start the cluster under ``root``; return its state (also in ``<root>/cluster.json``).

    ``layout`` (default: from the environment) gives the shared ingest/products/state folders; each worker's
    scratch is ``<root>/scratch/wN``. ``env`` adds settings for every process. The catalogue is the ``contimg``
    database on the cluster's PostgreSQL (``catalogue_url`` overrides it when ``pg_url`` is given).
    ``stopped_sensors`` are stopped in the instance before the daemon starts (e.g. ``ingest_sensor`` when runs
    come from backfills).
    """
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    if load_state(root).get("running"):
        raise RuntimeError(f"a cluster is already recorded in {state_path(root)}; stop it first")
    layout = (layout or Layout.from_env()).ensure()
    state: dict = {
        "root": str(root),
        "running": True,
        "started_at": time.time(),
        "concurrency": concurrency,
        "layout": {k: str(getattr(layout, k)) for k in ("ingest", "products", "scratch", "state")},
        "env": dict(env or {}),
        "dagster_home": str(root / "dagster"),
        "workers": [],
    }
    _save_state(root, state)
    try:
        redis = services.start_redis(root)
        state["redis"] = redis
        state["broker"] = f"redis://127.0.0.1:{redis['port']}/0"
        state["backend"] = f"redis://127.0.0.1:{redis['port']}/1"
        log(f"cluster: redis on 127.0.0.1:{redis['port']} (pid {redis['pid']})")
        if pg_url:
            state["pg_url"] = pg_url
            state["catalogue_url"] = catalogue_url or services.catalogue_url_beside(pg_url)
        else:
            state["postgres"] = services.start_postgres(root)
            state["pg_url"] = state["postgres"]["url"]
            state["catalogue_url"] = state["postgres"]["catalogue_url"]
            log(f"cluster: postgres on 127.0.0.1:{state['postgres']['port']} ({state['postgres']['data']})")
        _save_state(root, state)
        _render_instance_yaml(Path(state["dagster_home"]), workers * concurrency)
        env_all = cluster_env(state)
        # Always store the pool limit: a pool first claimed by two runs at once, both initialising it to the
        # default, makes one of them fail on Postgres (dagster 1.13.27: the INSERT's IntegrityError aborts the
        # transaction, the fallback UPDATE then raises InFailedSqlTransaction and the run fails).
        if casa_pool_limit is None:
            casa_pool_limit = CASA_POOL_DEFAULT
        if casa_pool_limit is not None:
            subprocess.run(
                [executable("dagster"), "instance", "concurrency", "set", "casa", str(casa_pool_limit)],
                env=env_all,
                cwd=REPO_ROOT,
                check=True,
                capture_output=True,
                timeout=120,
            )
        for sensor in stopped_sensors:
            proc = subprocess.run(
                [executable("dagster"), "sensor", "stop", sensor, "-w", str(REPO_ROOT / "workspace.yaml")],
                check=False,
                env=env_all,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=180,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"could not stop sensor {sensor}: {proc.stdout}{proc.stderr}")
        for i in range(1, workers + 1):
            w = start_worker(state, _worker_name(i))
            log(f"cluster: worker {w['node']} (pid {w['pid']}, scratch {w['scratch']})")
        _save_state(root, state)
        pid = services.spawn(
            [executable("dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            env_all,
            root / "logs" / "daemon.log",
        )
        state["daemon"] = {"pid": pid}
        _save_state(root, state)
        log(f"cluster: dagster-daemon (pid {pid}), DAGSTER_HOME={state['dagster_home']}")
        wait_workers(state)
        _wait_daemon(state)
        log(f"cluster: ready ({workers} workers x {concurrency})")
        return state
    except BaseException:
        stop(root, log=log)
        raise


def _leftovers(state: dict) -> list[int]:
    """Processes of the cluster (its root in their command line or environment) other than Redis and us."""
    skip = services.ancestors() | {state.get("redis", {}).get("pid")}
    return [p for p in instance_pids(Path(state["root"])) if p not in skip and services.alive(p)]


def launch_partition_runs(state: dict, keys: list[str], job_name: str = "chunk_job") -> list[str]:
    """Submit one queued run of ``job_name`` per window (as the ingest sensor does); return the run ids.

    Each run goes through Dagster's public CLI (``dagster job launch``, one process per run, all at once),
    with the run id chosen here; a backfill would not do, since Dagster's run retries skip the runs of a
    backfill that was complete on submission, and the kill drill needs the retry.

    Raises
    ------
    RuntimeError
        If a launch fails; the message has its exit status and the end of its output.
    """
    from contimg_assets.instance.reprocess import _code_location_args

    env = cluster_env(state)
    launches = []
    for key in keys:
        run_id = str(uuid.uuid4())
        argv = [sys.executable, "-m", "dagster", "job", "launch", *_code_location_args(), "-j", job_name]
        argv += ["--tags", json.dumps({"dagster/partition": key}), "--run-id", run_id]
        launches.append(
            (
                run_id,
                subprocess.Popen(
                    argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT
                ),
            )
        )
    for run_id, launch in launches:
        out, _ = launch.communicate(timeout=LAUNCH_TIMEOUT_S)
        if launch.returncode != 0:
            raise RuntimeError(f"dagster job launch of run {run_id} failed (exit {launch.returncode}): {out[-2000:]}")
    return [run_id for run_id, _ in launches]


def task_workers(state: dict, runs) -> dict:
    """run id -> the Celery worker node that executed it (from the result backend), None if unknown."""
    app = _celery_app(state)
    try:
        return {
            r.run_id: app.backend.get_task_meta(r.tags["dagster-celery/task_id"]).get("worker")
            if r.tags.get("dagster-celery/task_id")
            else None
            for r in runs
        }
    finally:
        app.close()


def kill_worker(state: dict, name: str, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to a worker's whole process group (worker, pool processes, run's step processes)."""
    w = next(x for x in state["workers"] if x["name"] == name)
    members = services.group_members(w["pid"])
    try:
        os.killpg(w["pid"], sig)
    except ProcessLookupError:
        pass
    services.reap_child(w["pid"])
    return members


def stop(root: Path, *, grace_s: float = 30.0, log=print) -> dict:
    """Stop everything recorded under ``root``; return what had to be killed or reaped."""
    root = Path(root).absolute()
    state = load_state(root)
    report = {"killed": [], "reaped": []}
    if not state:
        return report
    t0 = time.monotonic()
    if state.get("daemon"):
        if services.stop_group(state["daemon"]["pid"], signal.SIGTERM, 20.0):
            report["killed"].append("daemon")
    workers = [w for w in state.get("workers", []) if services.alive(w["pid"]) or services.group_members(w["pid"])]
    for w in workers:  # warm shutdown of every worker at once, then wait for each
        try:
            os.killpg(w["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for w in workers:
        if services.stop_group(w["pid"], 0, max(0.5, deadline - time.monotonic())):  # 0: already signalled
            report["killed"].append(w["name"])
    # CASA jobs run in their own process groups; their guard stops them once the step process is gone
    deadline = time.monotonic() + 15
    while _leftovers(state) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _leftovers(state):
        try:
            report["reaped"].append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if state.get("redis"):
        services.stop_group(state["redis"]["pid"], signal.SIGTERM, 10.0)
    if state.get("postgres"):
        services.stop_postgres(state["postgres"])
    state["running"] = False
    state["stopped_at"] = time.time()
    _save_state(root, state)
    how = "killed " + ", ".join(report["killed"]) if report["killed"] else "cleanly"
    reaped = f"; reaped {len(report['reaped'])}" if report["reaped"] else ""
    log(f"cluster: stopped in {time.monotonic() - t0:.1f} s ({how}{reaped})")
    for cmd in report["reaped"]:
        log(f"cluster: reaped {cmd}")
    return report


def status(root: Path) -> dict:
    state = load_state(root)
    if not state:
        return {"running": False}
    procs = {
        "redis": state.get("redis", {}).get("pid"),
        "daemon": state.get("daemon", {}).get("pid"),
        **{w["name"]: w["pid"] for w in state.get("workers", [])},
    }
    return {
        "running": state.get("running", False),
        "root": state["root"],
        "dagster_home": state.get("dagster_home"),
        "broker": state.get("broker"),
        "pg_url": state.get("pg_url"),
        "catalogue_url": state.get("catalogue_url"),
        "processes": {k: {"pid": p, "alive": bool(p and services.alive(p))} for k, p in procs.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument(
        "--root",
        default=str(read("CONTIMG_CLUSTER_ROOT") or Layout.from_env().state / "cluster"),
        help="cluster folder (state, logs, scratch)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="runs per worker at a time")
    parser.add_argument("--pg-url", default=None, help="use this PostgreSQL database instead of a throwaway server")
    parser.add_argument(
        "--catalogue-url",
        default=None,
        help="with --pg-url: the catalogue's database (default: `contimg` on the same server, made if missing)",
    )
    parser.add_argument(
        "--casa-pool",
        type=int,
        default=None,
        help=f"the casa pool limit stored in the instance (default {CASA_POOL_DEFAULT})",
    )
    parser.add_argument(
        "--stop-sensor",
        action="append",
        default=[],
        metavar="NAME",
        help="stop this sensor in the instance before the daemon starts (e.g. ingest_sensor when "
        "runs come from backfills only); repeatable",
    )
    args = parser.parse_args(argv)
    if args.command == "start":
        state = start(
            Path(args.root),
            workers=args.workers,
            concurrency=args.concurrency,
            pg_url=args.pg_url,
            catalogue_url=args.catalogue_url,
            casa_pool_limit=args.casa_pool,
            stopped_sensors=tuple(args.stop_sensor),
        )
        print(
            "cluster: `scripts/cluster.sh env` prints the settings for the dagster CLI "
            f"(DAGSTER_HOME={state['dagster_home']})"
        )
    elif args.command == "stop":
        stop(Path(args.root))
    elif args.command == "status":
        print(json.dumps(status(Path(args.root)), indent=1))
    else:
        state = load_state(Path(args.root))
        if not state.get("running"):
            print("# no cluster running", file=sys.stderr)
            return 1
        env = cluster_env(state)
        for k in (
            "DAGSTER_HOME",
            "CONTIMG_PG_URL",
            "CONTIMG_CATALOGUE_URL",
            "CONTIMG_CELERY_BROKER",
            "CONTIMG_CELERY_BACKEND",
            "CONTIMG_INGEST_DIR",
            "CONTIMG_PRODUCTS_DIR",
            "CONTIMG_STATE_DIR",
        ):
            if k in env:
                print(f"export {k}={env[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
