"""A cluster on one machine: Redis, PostgreSQL, one dagster-daemon and N Celery workers (cluster mode).

``scripts/cluster.sh start|stop|status|env`` (and ``make cluster``) drive this module; the cluster test and
``benchmarks/cluster.py`` use it directly. Everything binds to 127.0.0.1 on free ports; every process runs in
its own session (process group), is recorded in ``<root>/cluster.json`` and stopped by ``stop``:

| process | how |
| --- | --- |
| Redis (broker + result backend) | ``redis-server``, no persistence, data folder under ``<root>/redis`` |
| PostgreSQL (the Dagster instance) | throwaway ``initdb`` in a temp folder (as ``postgres`` when root), or ``--pg-url`` |
| ``dagster-daemon run`` | run queue, backfills, sensors, run monitoring; launches runs as Celery tasks |
| Celery workers ``w1..wN`` | ``celery -A contimg_resources.celery_worker worker``; each its own ``CONTIMG_SCRATCH_DIR`` |

The instance file is ``deploy/dagster.cluster.yaml`` with ``max_concurrent_runs`` set to the worker processes.
Ingest, products and state (catalogue) are shared: on one machine they are local folders; across hosts they
would be the shared file system (deploy/README.md).

Stopping: the daemon first (no new launches), then workers (warm shutdown: a run in flight may finish within
``grace_s``, else its process group is killed and the CASA job's guard stops the job), then Redis and
PostgreSQL; finally anything still carrying the cluster's root in its environment is reaped and reported.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contimg.core.settings import Layout
from contimg_assets.instance.stream import REPO_ROOT, _bin, _instance_pids, dagster_env

__all__ = ["start", "stop", "status", "load_state", "cluster_env", "kill_worker", "start_worker", "wait_workers",
           "launch_partition_runs", "task_workers", "main"]

CLUSTER_YAML = REPO_ROOT / "deploy" / "dagster.cluster.yaml"
STATE_FILE = "cluster.json"
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
READY_TIMEOUT_S = 120.0
CASA_POOL_DEFAULT = 1  # deploy/dagster.cluster.yaml's pools.default_limit


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    for d in PG_BIN_CANDIDATES:
        if (Path(d) / name).exists():
            return str(Path(d) / name)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found (scripts/install-system-deps.sh installs it)")
    return found


def _service_env() -> dict:
    """A bare environment for Redis and PostgreSQL: none of the cluster's settings (they are not its processes
    to reap, and need none of them)."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER")}


def _as_pg_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and _alive(int(entry.name)):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _stop_group(pgid: int, sig: int = signal.SIGTERM, grace_s: float = 20.0) -> bool:
    """Signal a process group, wait up to ``grace_s`` for it to empty, then SIGKILL it. True if it had to kill."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_members(pgid):
            _reap_child(pgid)
            return False
        time.sleep(0.3)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _reap_child(pgid)
    return True


def _reap_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _spawn(argv: list[str], env: dict, log: Path, cwd: Path = REPO_ROOT) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc.pid


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
    env.update(DAGSTER_HOME=state["dagster_home"], CONTIMG_PG_URL=state["pg_url"],
               CONTIMG_CELERY_BROKER=state["broker"], CONTIMG_CELERY_BACKEND=state["backend"],
               CONTIMG_CLUSTER_ROOT=state["root"])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _start_redis(root: Path) -> dict:
    data = root / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    pid = _spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                  "--dir", str(data), "--protected-mode", "yes", "--daemonize", "no"], _service_env(),
                 root / "logs" / "redis.log", cwd=data)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return {"pid": pid, "port": port}
        except OSError:
            pass
        if not _alive(pid):
            break
        time.sleep(0.2)
    raise RuntimeError(f"redis-server did not start; see {root / 'logs' / 'redis.log'}")


def _start_postgres(root: Path) -> dict:
    base = Path(tempfile.mkdtemp(prefix="contimg-cluster-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for p in (base, sock):
            os.chown(p, pg.pw_uid, pg.pw_gid)
    port = _free_port()
    run = lambda argv: subprocess.run(_as_pg_user(argv), check=True, capture_output=True, text=True,
                                      cwd=base, timeout=120, env=_service_env())
    run([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"])
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c full_page_writes=off -c max_connections=200"
    try:
        run([_pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "server.log"), "-w", "-t", "60", "start"])
    except subprocess.CalledProcessError as err:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        raise RuntimeError(f"postgres did not start: {err.stderr}\n{log}") from err
    subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster"],
                   check=True, capture_output=True, text=True, timeout=60)
    return {"dir": str(base), "data": str(data), "port": port,
            "url": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/dagster"}


def _stop_postgres(pg: dict) -> None:
    data = Path(pg["data"])
    if data.exists():
        subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"]),
                       check=False, capture_output=True, cwd=pg["dir"], timeout=60, env=_service_env())
    shutil.rmtree(pg["dir"], ignore_errors=True)


def _render_instance_yaml(home: Path, max_concurrent_runs: int) -> Path:
    import yaml

    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.write_text(f"# rendered from {CLUSTER_YAML} by contimg_assets.instance.cluster\n"
                      + yaml.safe_dump(config, sort_keys=False))
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
    pid = _spawn([_bin("celery"), "-A", "contimg_resources.celery_worker", "worker", "-n", f"{name}@%h",
                  "-Q", "dagster", "-c", str(conc), "-P", "prefork", "--loglevel", "INFO",
                  "--without-gossip", "--without-mingle"], env, root / "logs" / f"worker-{name}.log")
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
            dead = [w["name"] for w in state["workers"] if w["node"] in wanted and not _alive(w["pid"])]
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
            if not _alive(state["daemon"]["pid"]):
                break
            time.sleep(1.0)
    raise RuntimeError(f"dagster-daemon did not come up; see {Path(state['root']) / 'logs' / 'daemon.log'}")


def start(root: Path, *, workers: int = 2, concurrency: int = 1, layout: Layout | None = None,
          env: dict | None = None, pg_url: str | None = None, stopped_sensors: tuple = (),
          casa_pool_limit: int | None = None, log=print) -> dict:
    """Start the cluster under ``root``; return its state (also in ``<root>/cluster.json``).

    ``layout`` (default: from the environment) gives the shared ingest/products/state folders; each worker's
    scratch is ``<root>/scratch/wN``. ``env`` adds settings for every process. ``stopped_sensors`` are
    stopped in the instance before the daemon starts (e.g. ``ingest_sensor`` when runs come from backfills).
    """
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    if load_state(root).get("running"):
        raise RuntimeError(f"a cluster is already recorded in {state_path(root)}; stop it first")
    layout = (layout or Layout.from_env()).ensure()
    state: dict = {"root": str(root), "running": True, "started_at": time.time(), "concurrency": concurrency,
                   "layout": {k: str(getattr(layout, k)) for k in ("ingest", "products", "scratch", "state")},
                   "env": dict(env or {}), "dagster_home": str(root / "dagster"), "workers": []}
    _save_state(root, state)
    try:
        redis = _start_redis(root)
        state["redis"] = redis
        state["broker"] = f"redis://127.0.0.1:{redis['port']}/0"
        state["backend"] = f"redis://127.0.0.1:{redis['port']}/1"
        log(f"cluster: redis on 127.0.0.1:{redis['port']} (pid {redis['pid']})")
        if pg_url:
            state["pg_url"] = pg_url
        else:
            state["postgres"] = _start_postgres(root)
            state["pg_url"] = state["postgres"]["url"]
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
            subprocess.run([_bin("dagster"), "instance", "concurrency", "set", "casa", str(casa_pool_limit)],
                           env=env_all, cwd=REPO_ROOT, check=True, capture_output=True, timeout=120)
        for sensor in stopped_sensors:
            proc = subprocess.run([_bin("dagster"), "sensor", "stop", sensor, "-w", str(REPO_ROOT / "workspace.yaml")],
                                  check=False, env=env_all, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
            if proc.returncode != 0:
                raise RuntimeError(f"could not stop sensor {sensor}: {proc.stdout}{proc.stderr}")
        for i in range(1, workers + 1):
            w = start_worker(state, _worker_name(i))
            log(f"cluster: worker {w['node']} (pid {w['pid']}, scratch {w['scratch']})")
        _save_state(root, state)
        pid = _spawn([_bin("dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")], env_all,
                     root / "logs" / "daemon.log")
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


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _leftovers(state: dict) -> list[int]:
    """Processes of the cluster (its root in their command line or environment) other than Redis and us."""
    skip = _ancestors() | {state.get("redis", {}).get("pid")}
    return [p for p in _instance_pids(Path(state["root"])) if p not in skip and _alive(p)]


def launch_partition_runs(state: dict, keys: list[str], job_name: str = "chunk_job") -> list[str]:
    """Submit one queued run of ``job_name`` per window (as the ingest sensor does); return the run ids.

    The same steps as ``dagster job launch`` (dagster._cli.job.execute_launch_command), with one code server
    for all the runs instead of one per run.
    """
    from dagster import DagsterInstance
    from dagster import __version__ as dagster_version
    from dagster._cli.job import (
        _create_run,
        get_code_location_from_workspace,
        get_remote_job_from_remote_repo,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )

    from contimg_assets.instance.reprocess import _workspace_opts

    os.environ.update({k: v for k, v in cluster_env(state).items() if k.startswith(("CONTIMG_PG", "CONTIMG_CELERY"))})
    with DagsterInstance.from_config(state["dagster_home"]) as instance, \
            get_workspace_from_cli_opts(instance, version=dagster_version, workspace_opts=_workspace_opts()) as ws:
        location = get_code_location_from_workspace(ws, None)
        repo = get_remote_repository_from_code_location(location, None)
        job = get_remote_job_from_remote_repo(repo, job_name)
        ids = []
        for k in keys:
            run = _create_run(instance=instance, code_location=location, remote_repo=repo, remote_job=job,
                              run_config={}, tags={"dagster/partition": k}, op_selection=None, run_id=None)
            ids.append(instance.submit_run(run.run_id, ws).run_id)
        return ids


def task_workers(state: dict, runs) -> dict:
    """run id -> the Celery worker node that executed it (from the result backend), None if unknown."""
    app = _celery_app(state)
    try:
        return {r.run_id: app.backend.get_task_meta(r.tags["dagster-celery/task_id"]).get("worker")
                if r.tags.get("dagster-celery/task_id") else None for r in runs}
    finally:
        app.close()


def kill_worker(state: dict, name: str, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to a worker's whole process group (worker, pool processes, run's step processes)."""
    w = next(x for x in state["workers"] if x["name"] == name)
    members = _group_members(w["pid"])
    try:
        os.killpg(w["pid"], sig)
    except ProcessLookupError:
        pass
    _reap_child(w["pid"])
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
        if _stop_group(state["daemon"]["pid"], signal.SIGTERM, 20.0):
            report["killed"].append("daemon")
    workers = [w for w in state.get("workers", []) if _alive(w["pid"]) or _group_members(w["pid"])]
    for w in workers:  # warm shutdown of every worker at once, then wait for each
        try:
            os.killpg(w["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for w in workers:
        if _stop_group(w["pid"], 0, max(0.5, deadline - time.monotonic())):  # 0: already signalled
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
        _stop_group(state["redis"]["pid"], signal.SIGTERM, 10.0)
    if state.get("postgres"):
        _stop_postgres(state["postgres"])
    state["running"] = False
    state["stopped_at"] = time.time()
    _save_state(root, state)
    log(f"cluster: stopped in {time.monotonic() - t0:.1f} s ({'killed ' + ', '.join(report['killed']) if report['killed'] else 'cleanly'}"
        f"{'; reaped ' + str(len(report['reaped'])) if report['reaped'] else ''})")
    for cmd in report["reaped"]:
        log(f"cluster: reaped {cmd}")
    return report


def status(root: Path) -> dict:
    state = load_state(root)
    if not state:
        return {"running": False}
    procs = {"redis": state.get("redis", {}).get("pid"), "daemon": state.get("daemon", {}).get("pid"),
             **{w["name"]: w["pid"] for w in state.get("workers", [])}}
    return {"running": state.get("running", False), "root": state["root"], "dagster_home": state.get("dagster_home"),
            "broker": state.get("broker"), "pg_url": state.get("pg_url"),
            "processes": {k: {"pid": p, "alive": bool(p and _alive(p))} for k, p in procs.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--root", default=os.environ.get("CONTIMG_CLUSTER_ROOT")
                        or str(Layout.from_env().state / "cluster"), help="cluster folder (state, logs, scratch)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="runs per worker at a time")
    parser.add_argument("--pg-url", default=None, help="use this PostgreSQL database instead of a throwaway server")
    parser.add_argument("--casa-pool", type=int, default=None,
                        help=f"the casa pool limit stored in the instance (default {CASA_POOL_DEFAULT})")
    parser.add_argument("--stop-sensor", action="append", default=[], metavar="NAME",
                        help="stop this sensor in the instance before the daemon starts (e.g. ingest_sensor when "
                             "runs come from backfills only); repeatable")
    args = parser.parse_args(argv)
    if args.command == "start":
        state = start(Path(args.root), workers=args.workers, concurrency=args.concurrency, pg_url=args.pg_url,
                      casa_pool_limit=args.casa_pool, stopped_sensors=tuple(args.stop_sensor))
        print(f"cluster: `scripts/cluster.sh env` prints the settings for the dagster CLI (DAGSTER_HOME={state['dagster_home']})")
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
        for k in ("DAGSTER_HOME", "CONTIMG_PG_URL", "CONTIMG_CELERY_BROKER", "CONTIMG_CELERY_BACKEND",
                  "CONTIMG_INGEST_DIR", "CONTIMG_PRODUCTS_DIR", "CONTIMG_STATE_DIR"):
            print(f"export {k}={env[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
