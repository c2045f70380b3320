"""The cluster's processes: Redis and a throwaway PostgreSQL server on loopback, and the process-group
plumbing (spawn, liveness, stop a whole group) that :mod:`contimg_assets.instance.cluster` uses."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from contimg_assets.instance.processes import REPO_ROOT

CATALOGUE_DB = "contimg"  # the products catalogue's database on the cluster's PostgreSQL server
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str:
    for d in PG_BIN_CANDIDATES:
        if (Path(d) / name).exists():
            return str(Path(d) / name)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found (scripts/install-system-deps.sh installs it)")
    return found


def service_env() -> dict:
    """A bare environment for Redis and PostgreSQL: none of the cluster's settings (they are not its processes
    to reap, and need none of them)."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER")}


def as_pg_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and alive(int(entry.name)):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def stop_group(pgid: int, sig: int = signal.SIGTERM, grace_s: float = 20.0) -> bool:
    """Signal a process group, wait up to ``grace_s`` for it to empty, then SIGKILL it. True if it had to kill."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_members(pgid):
            reap_child(pgid)
            return False
        time.sleep(0.3)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    reap_child(pgid)
    return True


def reap_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(argv: list[str], env: dict, log: Path, cwd: Path = REPO_ROOT) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc.pid


def start_redis(root: Path) -> dict:
    data = root / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pid = spawn(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ],
        service_env(),
        root / "logs" / "redis.log",
        cwd=data,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return {"pid": pid, "port": port}
        except OSError:
            pass
        if not alive(pid):
            break
        time.sleep(0.2)
    raise RuntimeError(f"redis-server did not start; see {root / 'logs' / 'redis.log'}")


def start_postgres(root: Path) -> dict:
    base = Path(tempfile.mkdtemp(prefix="contimg-cluster-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for p in (base, sock):
            os.chown(p, pg.pw_uid, pg.pw_gid)
    port = free_port()

    def run(argv):
        return subprocess.run(
            as_pg_user(argv), check=True, capture_output=True, text=True, cwd=base, timeout=120, env=service_env()
        )

    run([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"])
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c full_page_writes=off -c max_connections=200"
    try:
        run([pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "server.log"), "-w", "-t", "60", "start"])
    except subprocess.CalledProcessError as err:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        raise RuntimeError(f"postgres did not start: {err.stderr}\n{log}") from err
    # two databases: Dagster's instance, and the products catalogue every worker writes (CONTIMG_CATALOGUE_URL)
    for db in ("dagster", CATALOGUE_DB):
        subprocess.run(
            [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    return {
        "dir": str(base),
        "data": str(data),
        "port": port,
        "url": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/dagster",
        "catalogue_url": f"postgresql://postgres@127.0.0.1:{port}/{CATALOGUE_DB}",
    }


def catalogue_url_beside(pg_url: str) -> str:
    """The catalogue database's libpq URL on the server of Dagster's ``pg_url`` (SQLAlchemy form), made if missing.

    Raises
    ------
    psycopg2.Error
        If the server cannot be reached, or the database is missing and cannot be created.
    """
    import psycopg2

    _scheme, _, rest = pg_url.partition("://")
    server, _, _db = rest.partition("/")
    dagster_url = f"postgresql://{rest}"  # libpq's form of the same database (no +psycopg2)
    raw = psycopg2.connect(dagster_url, connect_timeout=30)
    raw.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with raw.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (CATALOGUE_DB,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {CATALOGUE_DB}")
    finally:
        raw.close()
    return f"postgresql://{server}/{CATALOGUE_DB}"


def stop_postgres(pg: dict) -> None:
    data = Path(pg["data"])
    if data.exists():
        subprocess.run(
            as_pg_user([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"]),
            check=False,
            capture_output=True,
            cwd=pg["dir"],
            timeout=60,
            env=service_env(),
        )
    shutil.rmtree(pg["dir"], ignore_errors=True)


def ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out
