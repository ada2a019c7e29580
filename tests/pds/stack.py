"""A live local stack for PDS tests: our PLC directory and our PDS on 127.0.0.1.

Both servers run in one background thread with its own event loop, on ephemeral ports picked by
binding the sockets first (so the PDS's public URL and did:web name the real port), with data in
a temporary directory and `PDS_DEV_MODE=true`. Because the servers live in another thread, tests
can drive them with blocking clients (the `atproto` SDK) as well as from async tests.

`start_stack(path, **env)` is a context manager for a stack (env overrides PDS settings, e.g.
rate limits on); `create_account(stack)` makes an account over HTTP. The fixtures built on these
live in `conftest.py`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from atcore import dagcbor, nsids
from pds import sequencer
from pds.app import create_app
from pds.db.engine import Database
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings
from pds.settings import PdsSettings

_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Stack:
    pds_url: str
    plc_url: str
    settings: PdsSettings

    @property
    def admin_authorization(self) -> str:
        raw = f"admin:{self.settings.admin_password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def xrpc(self, nsid: str) -> str:
        return self.pds_url + nsids.xrpc_path(nsid)


@dataclass(frozen=True)
class LiveAccount:
    did: str
    handle: str
    email: str
    password: str
    access_jwt: str
    refresh_jwt: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_jwt}"}


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _ServerThread(threading.Thread):
    """Runs aiohttp applications on pre-bound sockets in a private event loop."""

    def __init__(self, apps: list[tuple[Callable[[], web.Application], socket.socket]]) -> None:
        super().__init__(name="pds-test-stack", daemon=True)
        self._apps = apps
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        runners: list[web.AppRunner] = []
        try:
            for build, sock in self._apps:
                runner = web.AppRunner(build(), access_log=None)
                await runner.setup()
                runners.append(runner)
                await web.SockSite(runner, sock).start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            for runner in reversed(runners):
                await runner.cleanup()
            return
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()

    def wait_ready(self) -> None:
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("the test stack did not start in time")
        if self._failure is not None:
            raise RuntimeError("the test stack failed to start") from self._failure

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(_START_TIMEOUT)


# What the shared stack sets beyond the defaults (describeServer reports these).
SHARED_STACK_ENV = {
    "PDS_PRIVACY_POLICY_URL": "https://skyspot.example/privacy",
    "PDS_TERMS_OF_SERVICE_URL": "https://skyspot.example/terms",
    "PDS_CONTACT_EMAIL_ADDRESS": "admin@skyspot.example",
}


@contextmanager
def start_stack(data_dir: Path, **env: str) -> Iterator[Stack]:
    """Start PLC + PDS (dev mode) with data under `data_dir`; `env` overrides PDS settings."""
    plc_sock, pds_sock = _bound_socket(), _bound_socket()
    plc_port, pds_port = plc_sock.getsockname()[1], pds_sock.getsockname()[1]
    plc_settings = PlcSettings(host="127.0.0.1", port=plc_port, data_directory=data_dir / "plc")
    settings = PdsSettings.from_env(
        {
            "PDS_DEV_MODE": "true",
            "PDS_PORT": str(pds_port),
            "PDS_DATA_DIRECTORY": str(data_dir / "pds"),
            "PDS_DID_PLC_URL": f"http://127.0.0.1:{plc_port}",
            **env,
        }
    )
    server = _ServerThread(
        [(lambda: create_plc_app(plc_settings), plc_sock), (lambda: create_app(settings), pds_sock)]
    )
    server.start()
    try:
        server.wait_ready()
        yield Stack(
            pds_url=settings.public_url,
            plc_url=settings.did_plc_url,
            settings=settings,
        )
    finally:
        server.stop()
        plc_sock.close()
        pds_sock.close()


def unique_name(prefix: str = "u") -> str:
    """A random handle label (3-18 chars, as service handles need)."""
    return f"{prefix[:8]}{secrets.token_hex(5)}"


def post_json(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """A blocking JSON POST (for fixtures): (status, decoded body)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def create_account(stack: Stack, prefix: str = "u", **extra: Any) -> LiveAccount:
    label = unique_name(prefix)
    domain = stack.settings.service_handle_domains[0]
    handle, email, password = f"{label}{domain}", f"{label}@example.com", f"pw-{label}-secret"
    status, body = post_json(
        stack.xrpc(nsids.SERVER_CREATE_ACCOUNT),
        {"handle": handle, "email": email, "password": password, **extra},
    )
    assert status == 200, body
    return LiveAccount(
        did=body["did"],
        handle=body["handle"],
        email=email,
        password=password,
        access_jwt=body["accessJwt"],
        refresh_jwt=body["refreshJwt"],
    )


async def account_events(stack: Stack, did: str) -> list[tuple[str, dict[str, Any]]]:
    """The account's sequenced events (type, decoded body), oldest first, read from the DB."""
    db = Database(stack.settings.sqlite_path)
    try:
        async with db.read() as conn:
            rows = await sequencer.events_after(conn, 0, limit=1_000_000)
    finally:
        await db.close()
    return [(row.event_type, dagcbor.decode(row.body)) for row in rows if row.did == did]
