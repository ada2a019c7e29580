"""`python -m feedgen` as operators run it: several workers on one port, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.feedgen.support import open_index

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "feedgen exited while starting"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("feedgen never became healthy")


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see worker processes")
async def test_two_workers_serve_one_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    index = await open_index(tmp_path)
    await index.close()
    port = free_port()
    env = {
        **os.environ,
        "FEEDGEN_PORT": str(port),
        "FEEDGEN_WORKERS": "2",
        "DATABASE_URL": index.url,
        "FEEDGEN_PUBLISHER_DID": "did:plc:publisherpublisherpublis",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "feedgen"], cwd=ROOT, env=env)  # noqa: ASYNC220
    try:
        wait_healthy(f"http://127.0.0.1:{port}/xrpc/_health", process)
        workers = children_of(process.pid)
        assert len(workers) >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)  # noqa: ASYNC240
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
