"""A throw-away PostgreSQL 15 cluster for tests, on 127.0.0.1 at a random port.

The binaries come from the `postgresql-15` Debian package (/usr/lib/postgresql/15/bin; PG_BIN
overrides). Tests run as root and PostgreSQL refuses to, so `initdb` and `pg_ctl` run as the
`postgres` user through `runuser -u postgres --`. The data directory lives in a temporary
directory owned by that user and is deleted at the end. Trust authentication, locale C, fsync off
(a killed *server* still recovers from its WAL; only an OS crash could lose data, and tests do not
survive that anyway).

`PgCluster.stop(mode="immediate")` + `start()` simulate a database crash and restart mid-test.

Fixtures: `pg_cluster` (one per test session that asks for it, skipped with the reason when the
binaries are absent) and `pg_url` (a fresh database per test, as an asyncpg SQLAlchemy URL).
Import them into a test module (`from tests.pg import pg_cluster, pg_url`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_PACKAGE = "postgresql-15"
_USER = "postgres"
_START_TIMEOUT = 60


def pg_available() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 binaries not found in {PG_BIN} (apt-get install {PG_PACKAGE})"
    if shutil.which("runuser") is None:
        return "runuser is missing (util-linux)"
    try:
        subprocess.run(["id", _USER], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        return f"no '{_USER}' system user (installed with {PG_PACKAGE})"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*args: str | Path) -> list[str]:
    command = [str(a) for a in args]
    return command if os.geteuid() != 0 else ["runuser", "-u", _USER, "--", *command]


class PgCluster:
    """initdb + pg_ctl around one data directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="skyspot-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, _USER)
            shutil.chown(self.socket_dir, _USER)
        self._run(
            PG_BIN / "initdb", "-D", self.data, "-U", _USER, "--auth=trust",
            "--locale=C", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip

    def _run(self, *args: str | Path) -> None:
        subprocess.run(_as_postgres(*args), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options,
            "-w", "-t", str(_START_TIMEOUT), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`mode="immediate"` is a crash: no checkpoint, recovery from WAL at the next start."""
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        command = _as_postgres(
            PG_BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", _USER,
            "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql,
        )  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
        return done.stdout

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"t_{secrets.token_hex(6)}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until_accepting(cluster: PgCluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.psql("SELECT 1")
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    reason = pg_available()
    if reason is not None:
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.url(pg_cluster.create_database())
