"""Server processes for the service benchmarks: start, wait until healthy, stop.

Benchmarked servers always run as their own processes, never in the driver's event loop, so the
client's CPU time is not charged to the server (and vice versa) and every peer is measured the
same way. Each process's output goes to a log file, named in the error when it fails to start.

Errors: `ServerError` (a `ValueError`) when a process exits early or never becomes healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(ValueError):
    """A benchmarked server did not start, or died."""


@dataclass(frozen=True)
class RunningServer:
    name: str
    url: str
    pid: int
    log_path: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process (all its threads) has used so far.

        Read from /proc, so Linux only (NaN elsewhere). On a shared machine this is steadier
        than wall-clock throughput: time the server spends waiting for a core is not counted.
        """
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return math.nan
        # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.asynccontextmanager
async def server_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    url: str,
    health_path: str,
    log_path: Path,
    cwd: Path | None = None,
) -> AsyncIterator[RunningServer]:
    """Run `argv` (serving at `url`) until the block ends; yields once `health_path` answers 200."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the driver's terminal is ours to forward
        )
        try:
            await _wait_healthy(name, process, url + health_path, log_path)
            yield RunningServer(name=name, url=url, pid=process.pid, log_path=log_path)
        except Exception:
            # The data directory (and the log in it) is usually temporary: show the server's
            # side of whatever went wrong before it is gone.
            print(f"--- last lines of the {name} log:\n{log_tail(log_path)}", file=sys.stderr)
            raise
        finally:
            await _stop(process)


async def _wait_healthy(
    name: str, process: asyncio.subprocess.Process, url: str, log_path: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise ServerError(
                    f"{name} exited with status {process.returncode} while starting; "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(_POLL_INTERVAL_S)
    raise ServerError(
        f"{name} was not healthy at {url} within {START_TIMEOUT_S:.0f} s; "
        f"log {log_path}:\n{log_tail(log_path)}"
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (both servers shut down cleanly on it), then SIGKILL if it hangs."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
