"""`./scripts/run` as a subprocess, exactly as a user starts it, on ephemeral ports.

Used by the end-to-end tests (tests/e2e) and the load test (scripts/loadtest).
`RunScript.start(directory, *args)` picks free loopback ports, points DATA_DIR at `directory`,
clears every variable the stack reads from the caller's own environment (so nothing leaks in), and
waits for the banner, which is parsed for the service DID and the feed URI. `descendants()` lists
every process the script started (from /proc), so a caller can check that a signal stops all of
them; the script runs in its own session, so `kill()` can always end the whole group.

Failures to start raise `StackError` (from `scripts.stack.http`) with the script's output.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from scripts.stack.http import StackError

ROOT: Final = Path(__file__).resolve().parents[2]
RUN: Final = ROOT / "scripts" / "run"
READY_LINE: Final = "Press Ctrl-C to stop."
START_TIMEOUT_S: Final = 600.0  # the first start may (re)install the project into .venv
STOP_TIMEOUT_S: Final = 60.0
_STACK_PREFIXES: Final = ("PDS_", "PLC_", "FEEDGEN_", "CONSUMER_", "FIREHOSE_", "SKYSPOT_", "DEMO_")
_STACK_NAMES: Final = frozenset({"DATABASE_URL", "DID_PLC_URL", "DATA_DIR", "LOG_DIR"})


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (held open together so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# Execs scripts/run (same pid) with SIGINT and SIGTERM acting by default, as in a user's terminal:
# a caller started in the background by a non-interactive shell has SIGINT ignored, an ignored
# signal stays ignored across exec, and bash cannot trap a signal ignored when it started, so
# scripts/run would otherwise never see Ctrl-C's SIGINT.
_WITH_DEFAULT_SIGNALS: Final = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def stop_on_sigterm() -> None:
    """For drivers: SIGTERM unwinds like an exception, so `finally` blocks stop the stack (it
    runs in its own session, so a signal to the driver alone would not reach it)."""

    def raise_exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, raise_exit)


def clean_environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_STACK_PREFIXES) and key not in _STACK_NAMES
    }


@dataclass
class RunScript:
    process: subprocess.Popen[bytes]
    output_path: Path
    data_dir: Path
    plc_port: int
    pds_port: int
    consumer_port: int
    feedgen_port: int

    @classmethod
    def start(
        cls,
        tmp: Path,
        *args: str,
        extra_env: dict[str, str] | None = None,
        same_ports_as: RunScript | None = None,
    ) -> RunScript:
        """Start on free ports; `same_ports_as` keeps another run's PLC, PDS and consumer ports
        (a restart on the same data: accounts' DID documents name the PDS's URL)."""
        plc, pds, consumer, feedgen = free_ports(4)
        if same_ports_as is not None:
            plc, pds = same_ports_as.plc_port, same_ports_as.pds_port
            consumer = same_ports_as.consumer_port
        data_dir = tmp / "data"
        env = {
            **clean_environment(),
            "DATA_DIR": str(data_dir),
            "PLC_PORT": str(plc),
            "PDS_PORT": str(pds),
            "CONSUMER_METRICS_PORT": str(consumer),
            "FEEDGEN_PORT": str(feedgen),
            **(extra_env or {}),
        }
        tmp.mkdir(parents=True, exist_ok=True)
        output_path = tmp / "run.out"
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-c", _WITH_DEFAULT_SIGNALS, str(RUN), *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        script = cls(process, output_path, data_dir, plc, pds, consumer, feedgen)
        try:
            script.wait_until_ready()
        except BaseException:
            script.kill()
            raise
        return script

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    @property
    def pds_url(self) -> str:
        return f"http://localhost:{self.pds_port}"

    @property
    def plc_url(self) -> str:
        return f"http://localhost:{self.plc_port}"

    @property
    def feedgen_url(self) -> str:
        return f"http://localhost:{self.feedgen_port}"

    @property
    def feed_uri(self) -> str:
        found = re.search(r"^\s+feed\s+(at://\S+)$", self.output, re.MULTILINE)
        if found is None:
            raise StackError(f"no feed URI in the output:\n{self.output}")
        return found.group(1)

    @property
    def service_did(self) -> str:
        found = re.search(r"service DID (did:\S+?)\)", self.output)
        if found is None:
            raise StackError(f"no service DID in the output:\n{self.output}")
        return found.group(1)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while READY_LINE not in self.output:
            if self.process.poll() is not None:
                raise StackError(f"scripts/run exited early:\n{self.output}")
            if time.monotonic() > deadline:
                raise StackError(f"scripts/run was not ready in time:\n{self.output}")
            time.sleep(0.2)

    def descendants(self) -> dict[int, str]:
        """pid -> command line of every live process below the script."""
        children: dict[int, list[int]] = {}
        commands: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # the process ended while we looked
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
            commands[int(entry.name)] = command.strip()
        found: dict[int, str] = {}
        pending = list(children.get(self.process.pid, []))
        while pending:
            pid = pending.pop()
            found[pid] = commands[pid]
            pending.extend(children.get(pid, []))
        return found

    def stop(self, signum: signal.Signals) -> int:
        """Send `signum` to the script alone (not its group), wait, return its exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_TIMEOUT_S)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Cleanup after a failure: end the whole process group, whatever state it is in."""
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
