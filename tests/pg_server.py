"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, loopback port, socket in the folder.

Runs the server as the ``postgres`` system user when the tests run as root (PostgreSQL refuses to
run as root), otherwise as the current user. Trust authentication on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin",)
START_TIMEOUT_S = 60


def pg_bin(name: str) -> str:
    for d in PG_BIN_CANDIDATES:
        p = Path(d) / name
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"PostgreSQL's {name} not found in {PG_BIN_CANDIDATES} or on PATH")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    dbname: str
    data_dir: Path

    @property
    def url(self) -> str:
        # psycopg2 named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 (not installed)
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.dbname}"


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextmanager
def postgres_server(dbname: str = "dagster_test") -> Iterator[PgServer]:
    """Start a PostgreSQL server for the duration of the ``with`` block, then stop it and delete its files."""
    root = Path(tempfile.mkdtemp(prefix="contimg-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, pg.pw_uid, pg.pw_gid)
    port = free_port()

    def run(argv):
        return subprocess.run(_as_server_user(argv), check=True, capture_output=True, text=True, cwd=root)

    started = False
    try:
        run([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"])
        # fsync off: a test database need not survive a power cut, and it saves seconds
        opts = f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c full_page_writes=off"
        try:
            run(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    opts,
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                ]
            )
        except subprocess.CalledProcessError as err:
            raise RuntimeError(
                f"postgres did not start: {err.stderr}\n{log.read_text() if log.exists() else ''}"
            ) from err
        started = True
        subprocess.run(
            [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", dbname],
            check=True,
            capture_output=True,
            text=True,
        )
        yield PgServer("127.0.0.1", port, "postgres", dbname, data)
    finally:
        if started:
            subprocess.run(
                _as_server_user([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                cwd=root,
            )
        shutil.rmtree(root, ignore_errors=True)
