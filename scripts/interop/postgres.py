"""A throw-away PostgreSQL 15 cluster on 127.0.0.1 for the AppView.

The binaries come from the Debian `postgresql-15` package (/usr/lib/postgresql/15/bin; PG_BIN
overrides). PostgreSQL refuses to run as root, so as root `initdb` and `pg_ctl` run as the
`postgres` user through `runuser -u postgres --`. Trust authentication on loopback only, fsync
off: the cluster lives in a temporary directory and is deleted afterwards.

Errors: `InteropUnavailable` when the binaries or the user are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from scripts.interop import InteropUnavailable
from scripts.stack.process import free_ports

PG_BIN: Final = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
USER: Final = "postgres"


def _as_postgres(*args: str | Path) -> list[str]:
    command = [str(arg) for arg in args]
    return ["runuser", "-u", USER, "--", *command] if os.geteuid() == 0 else command


def _run(*args: str | Path) -> None:
    subprocess.run(_as_postgres(*args), check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a cluster; yield its URL (`postgresql://postgres@127.0.0.1:<port>/postgres`)."""
    if not (PG_BIN / "initdb").exists():
        raise InteropUnavailable(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="skyspot-appview-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, USER)
        shutil.chown(sockets, USER)
    (port,) = free_ports(1)
    try:
        _run(PG_BIN / "initdb", "-D", data, "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100"
        )
        _run(PG_BIN / "pg_ctl", "-D", data, "-l", root / "server.log", "-o", options, "-w", "start")
        try:
            yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                _run(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
