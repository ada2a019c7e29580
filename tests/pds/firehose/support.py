"""Firehose test support: an in-loop PLC + PDS, a raw subscriber, HTTP writers, and a verifier.

Unlike the shared thread-hosted stack (`tests.pds.stack`), `loop_stack` runs both servers in the
test's own event loop, so a test can give the firehose its own `FirehoseConfig` (small buffers)
and inspect the application (`stack.firehose`). Everything else goes over loopback HTTP and
WebSocket, as a relay would see it.

`verify_commits` checks every `#commit` of a stream with atcore alone: the signing key comes
from the account's DID document in the PLC directory (`DidResolver`), and each commit must
verify, match its signed commit, invert to `prevData`, and chain (`since` = previous rev).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from atcore import frames, nsids
from atcore.commit import SignedCommit
from atcore.identity.resolver import DidResolver
from pds.app import create_app
from pds.context import CONTEXT, AppContext
from pds.firehose.service import FIREHOSE, FIREHOSE_CONFIG, Firehose, FirehoseConfig
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings
from pds.sequencer import last_seq
from pds.settings import PdsSettings
from tests.pds.repo_support import verify_commit_event

# A safety net against hangs only (tests never assert on how long anything takes).
STREAM_TIMEOUT = 120.0
COLLECTION = "com.example.skyspot.checkin"


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Account:
    did: str
    handle: str
    access_jwt: str
    rkeys: list[str] = field(default_factory=list)


@dataclass
class LoopStack:
    app: web.Application
    settings: PdsSettings
    pds_url: str
    plc_url: str
    http: aiohttp.ClientSession

    @property
    def ctx(self) -> AppContext:
        return self.app[CONTEXT]

    @property
    def firehose(self) -> Firehose:
        return self.app[FIREHOSE]

    def subscribe_url(self, query: str = "") -> str:
        url = self.pds_url.replace("http://", "ws://") + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
        return f"{url}?{query}" if query else url

    async def create_account(self, prefix: str = "fh") -> Account:
        label = f"{prefix}{secrets.token_hex(5)}"
        handle = f"{label}{self.settings.service_handle_domains[0]}"
        body = await self.procedure(
            nsids.SERVER_CREATE_ACCOUNT,
            {"handle": handle, "email": f"{label}@example.com", "password": f"pw-{label}"},
        )
        return Account(body["did"], body["handle"], body["accessJwt"])

    async def create_record(self, account: Account, record: Mapping[str, Any]) -> dict[str, Any]:
        """createRecord; returns the acknowledged output (uri, cid, commit)."""
        out = await self.procedure(
            nsids.REPO_CREATE_RECORD,
            {"repo": account.did, "collection": COLLECTION, "record": dict(record)},
            token=account.access_jwt,
        )
        account.rkeys.append(out["uri"].rsplit("/", 1)[1])
        return out

    async def procedure(
        self, nsid: str, body: Mapping[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(
            self.pds_url + nsids.xrpc_path(nsid), json=body, headers=headers
        ) as response:
            raw = await response.read()
            out: dict[str, Any] = json.loads(raw) if raw else {}
            assert response.status == 200, out
            return out


def checkin(n: int, padding: int = 0) -> dict[str, Any]:
    record: dict[str, Any] = {
        "$type": COLLECTION,
        "place": f"place {n}",
        "createdAt": "2024-05-01T12:00:00.000Z",
    }
    if padding:
        record["note"] = "x" * padding
    return record


@asynccontextmanager
async def loop_stack(
    data_dir: Path, config: FirehoseConfig | None = None, **env: str
) -> AsyncIterator[LoopStack]:
    """PLC + PDS (dev mode) served from the running loop on ephemeral loopback ports."""
    plc_sock, pds_sock = bound_socket(), bound_socket()
    plc_port, pds_port = plc_sock.getsockname()[1], pds_sock.getsockname()[1]
    settings = PdsSettings.from_env(
        {
            "PDS_DEV_MODE": "true",
            "PDS_PORT": str(pds_port),
            "PDS_DATA_DIRECTORY": str(data_dir / "pds"),
            "PDS_DID_PLC_URL": f"http://127.0.0.1:{plc_port}",
            **env,
        }
    )
    plc_app = create_plc_app(
        PlcSettings(host="127.0.0.1", port=plc_port, data_directory=data_dir / "plc")
    )
    pds_app = create_app(settings)
    if config is not None:
        pds_app[FIREHOSE_CONFIG] = config
    runners: list[web.AppRunner] = []
    try:
        for app, sock in ((plc_app, plc_sock), (pds_app, pds_sock)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.SockSite(runner, sock).start()
        # No connection cap: a hundred open subscriptions must not starve the writers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            yield LoopStack(pds_app, settings, settings.public_url, settings.did_plc_url, http)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        plc_sock.close()
        pds_sock.close()


async def every_kind_of_event(stack: LoopStack) -> None:
    """Accounts, creates, an update, a delete, a batch, a handle change, (de)activation."""
    for _ in range(2):
        account = await stack.create_account("sdk")
        for n in range(3):
            await stack.create_record(account, checkin(n))
        token = account.access_jwt
        first = account.rkeys[0]
        await stack.procedure(
            nsids.REPO_PUT_RECORD,
            {"repo": account.did, "collection": COLLECTION, "rkey": first, "record": checkin(9)},
            token,
        )
        await stack.procedure(
            nsids.REPO_DELETE_RECORD,
            {"repo": account.did, "collection": COLLECTION, "rkey": account.rkeys[1]},
            token,
        )
        op = f"{nsids.REPO_APPLY_WRITES}#"
        await stack.procedure(
            nsids.REPO_APPLY_WRITES,
            {
                "repo": account.did,
                "writes": [
                    {"$type": op + "create", "collection": COLLECTION, "value": checkin(10)},
                    {
                        "$type": op + "update",
                        "collection": COLLECTION,
                        "rkey": first,
                        "value": checkin(11),
                    },
                    {"$type": op + "delete", "collection": COLLECTION, "rkey": account.rkeys[2]},
                ],
            },
            token,
        )
        new_handle = "re" + account.handle
        await stack.procedure(nsids.IDENTITY_UPDATE_HANDLE, {"handle": new_handle}, token)
        await stack.procedure(nsids.SERVER_DEACTIVATE_ACCOUNT, {}, token)
        await stack.procedure(nsids.SERVER_ACTIVATE_ACCOUNT, {}, token)


# -- subscribing -------------------------------------------------------------------------------


@dataclass
class Received:
    """What one subscriber got: decoded frames in order, and how the stream ended."""

    messages: list[frames.MessageFrame] = field(default_factory=list)
    error: frames.ErrorFrame | None = None
    closed: bool = False

    def seqs(self) -> list[int]:
        return [m.body["seq"] for m in self.messages if "seq" in m.body]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m.body for m in self.messages if m.type == kind]


async def read_stream(
    http: aiohttp.ClientSession,
    url: str,
    *,
    until_seq: int | None = None,
    count: int | None = None,
    received: Received | None = None,
) -> Received:
    """Subscribe and read until `until_seq` is seen, `count` messages arrived, or it ends."""
    out = received if received is not None else Received()
    async with asyncio.timeout(STREAM_TIMEOUT), http.ws_connect(url, max_msg_size=0) as ws:
        async for message in ws:
            assert message.type == aiohttp.WSMsgType.BINARY, message
            frame = frames.decode(message.data)
            if isinstance(frame, frames.ErrorFrame):
                out.error = frame
                continue
            out.messages.append(frame)
            if until_seq is not None and frame.body.get("seq", -1) >= until_seq:
                return out
            if count is not None and len(out.messages) >= count:
                return out
        out.closed = True
    return out


async def head_seq(stack: LoopStack) -> int:
    async with stack.ctx.db.read() as conn:
        return await last_seq(conn)


async def wait_for_broadcast(stack: LoopStack, seq: int) -> None:
    """Block until the fan-out has broadcast every event up to `seq`.

    A subscriber without a cursor starts at what the fan-out has broadcast, which trails the
    committed head by a moment (as the reference's sequencer trails its database): an event
    committed just before the connection may still reach it. Tests that mean "events after
    connecting" wait here first.
    """
    async with asyncio.timeout(STREAM_TIMEOUT):
        while stack.firehose.fanout.head < seq:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)


async def wait_for_subscribers(
    stack: LoopStack, count: int, *readers: asyncio.Task[Received]
) -> None:
    """Block until `count` subscriptions are registered (a sync point, not a timing).

    A reader that ends before its subscription is seen (its connection failed or was closed)
    fails the wait at once with what it got, instead of leaving it to time out.
    """
    async with asyncio.timeout(STREAM_TIMEOUT):
        # The firehose has no "subscribed" event to wait on, and should not grow one for tests.
        while stack.firehose.fanout.subscriber_count < count:
            for reader in readers:
                if reader.done():
                    outcome = reader.exception() or reader.result()
                    raise AssertionError(f"a reader ended before subscribing: {outcome!r}")
            await asyncio.sleep(0.01)


# -- verifying ---------------------------------------------------------------------------------


class Endpoints(Protocol):
    """Where a verifier finds DID documents: any stack (in-loop or subprocess)."""

    @property
    def http(self) -> aiohttp.ClientSession: ...

    @property
    def plc_url(self) -> str: ...


async def verify_commits(
    stack: Endpoints, messages: list[frames.MessageFrame], *, from_genesis: bool = True
) -> int:
    """Verify every `#commit` of a stream, per repo in stream order; returns how many.

    Each commit is checked as a Sync 1.1 relay would (signature against the key in the DID
    document, fields equal to the signed commit, inversion gives `prevData`); consecutive commits
    of a repo must chain (`since` = previous rev, `prevData` = previous data). With
    `from_genesis`, each repo's first commit must be its genesis (`since` None).
    """
    by_repo: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message.type == "#commit":
            by_repo.setdefault(message.body["repo"], []).append(message.body)
    async with DidResolver(session=stack.http, plc_url=stack.plc_url) as resolver:
        for did, bodies in by_repo.items():
            key = await resolver.resolve_atproto_key(did)
            if from_genesis:
                assert bodies[0]["since"] is None, f"{did}: the stream misses its first commits"
            previous: SignedCommit | None = None
            for body in bodies:
                commit = verify_commit_event(body, key)
                if previous is not None:
                    assert body["since"] == previous.rev
                    assert body["prevData"] == previous.data
                    assert commit.rev > previous.rev
                previous = commit
    return sum(len(bodies) for bodies in by_repo.values())
