"""A small, honest atproto network on loopback for consumer tests.

- `PlcDirectory`: our real PLC directory (`pds.plc`) serving DID documents.
- `SimRepo`: a real signed repository built with atcore (`prepare_commit` + `commit.sign`),
  producing Sync 1.1 `#commit` bodies (CAR slice with the commit, new MST nodes, inversion proof
  nodes and record blocks; ops with `cid`/`prev`; `since`; `prevData`) and full-repo CARs.
- `FakeHost`: a PDS-like host serving `subscribeRepos` (binary frames, cursor replay then live,
  `FutureCursor`, `OutdatedCursor`), `getRepo` and `listRepos` from those repos, with knobs for
  misbehaviour: raw (garbage/oversized) frames, dropped connections, stalls.

Nothing here is a mock of the consumer: it speaks the protocol, and everything it signs verifies
with atcore.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from atcore import dagcbor, frames, nsids
from atcore.car import write_car
from atcore.checkin import Checkin, Coordinates, GeoLocation, Place, StrongRef, checkin_to_data
from atcore.cid import CID
from atcore.commit import SignedCommit, UnsignedCommit, sign
from atcore.crypto import K256Keypair, Keypair
from atcore.identity.plc import create_genesis_op, create_update_op, did_for_genesis, op_to_json
from atcore.mst import MST, RecordOp, prepare_commit
from atcore.syntax import AtUri, Datetime, Did
from atcore.tid import TidClock
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings

CHECKIN = nsids.SKYSPOT_CHECKIN
POST = nsids.BSKY_FEED_POST


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class Server:
    """An aiohttp application on 127.0.0.1 at a free port."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()


class PlcDirectory(Server):
    def __init__(self, data_dir: Path) -> None:
        port = free_port()
        super().__init__(create_plc_app(PlcSettings("127.0.0.1", port, data_dir)))
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self._ops: dict[str, Any] = {}

    async def register(self, rotation: Keypair, signing: Keypair, pds_url: str) -> str:
        op = create_genesis_op(
            signer=rotation, rotation_keys=[rotation.public_key.did_key()],
            signing_key=signing.public_key.did_key(), pds_endpoint=pds_url,
        )  # fmt: skip
        did = str(did_for_genesis(op))
        await self._submit(did, op)
        return did

    async def rotate_signing_key(self, did: str, rotation: Keypair, signing: Keypair) -> None:
        op = create_update_op(
            self._ops[did], signer=rotation, signing_key=signing.public_key.did_key()
        )
        await self._submit(did, op)

    async def move(self, did: str, rotation: Keypair, pds_url: str) -> None:
        """The DID now names another PDS (the last step of an account migration)."""
        await self._submit(did, create_update_op(self._ops[did], signer=rotation,
                                                 pds_endpoint=pds_url))  # fmt: skip

    async def drop_pds(self, did: str, rotation: Keypair) -> None:
        """The DID's document no longer names any PDS (not a functioning atproto identity)."""
        await self._submit(did, create_update_op(self._ops[did], signer=rotation, services={}))

    async def _submit(self, did: str, op: Any) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/{did}", data=json.dumps(op_to_json(op))) as response,
        ):
            assert response.status == 200, await response.text()
        self._ops[did] = op


def checkin_record(
    lat_e6: int, lon_e6: int, name: str, *, did: str, rkey: str, post_cid: CID | None,
    created_at: str = "2025-06-01T12:00:00.000Z", **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    post = None
    if post_cid is not None:
        post = StrongRef(AtUri(f"at://{did}/{POST}/{rkey}"), post_cid)
    checkin = Checkin(
        place=Place(name=name, category=extra.pop("category", "cafe")),
        locations=(GeoLocation(Coordinates(lat_e6, lon_e6)),),
        created_at=Datetime(created_at),
        post=post,
        **extra,
    )
    return checkin_to_data(checkin)


def post_record(text: str, created_at: str = "2025-06-01T12:00:00.000Z") -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": created_at}


@dataclass
class SimRepo:
    """A repository that commits like a PDS and remembers everything to serve it again."""

    did: str
    key: Keypair
    clock: TidClock = field(default_factory=TidClock)
    tree: MST = field(default_factory=MST.create)
    blocks: dict[CID, bytes] = field(default_factory=dict)
    records: dict[str, CID] = field(default_factory=dict)
    head: SignedCommit | None = None

    @property
    def rev(self) -> str | None:
        return None if self.head is None else str(self.head.rev)

    def commit(
        self, writes: list[tuple[str, str, dict[str, Any] | None]], *, key: Keypair | None = None
    ) -> dict[str, Any]:
        """Apply (action, path, record) writes; returns the #commit body (no seq/time yet)."""
        ops, record_blocks = [], {}
        for action, path, record in writes:
            cid = None
            if record is not None:
                cid, block = dagcbor.cid_of(record)
                record_blocks[cid] = block
            prev = self.records.get(path)
            ops.append(RecordOp(action, path, cid, None if action == "create" else prev))  # type: ignore[arg-type]
        prepared = prepare_commit(self.tree, ops)
        since = self.rev
        commit = sign(
            UnsignedCommit(did=Did(self.did), data=prepared.data, rev=self.clock.next()),
            key or self.key,
        )
        commit_block = commit.encode()
        self.blocks.update(prepared.new_blocks)
        self.blocks.update(record_blocks)
        self.blocks[commit.cid] = commit_block
        self.tree.mark_stored()
        for op in prepared.ops:
            if op.cid is None:
                self.records.pop(op.path, None)
            else:
                self.records[op.path] = op.cid
        self.head = commit
        car = write_car(
            [commit.cid],
            [(commit.cid, commit_block), *prepared.blocks.items(), *record_blocks.items()],
        )
        return {
            "rebase": False, "tooBig": False, "repo": self.did, "commit": commit.cid,
            "rev": str(commit.rev), "since": since, "blocks": car,
            "ops": [_op_body(op) for op in prepared.ops], "blobs": [],
            "prevData": prepared.prev_data,
        }  # fmt: skip

    def checkin_with_post(
        self, lat_e6: int, lon_e6: int, name: str, **extra: Any
    ) -> tuple[str, dict[str, Any]]:
        """One commit holding a check-in and its companion post (same rkey); returns the rkey."""
        rkey = self.clock.next_str()
        post = post_record(f"At {name}")
        post_cid, _ = dagcbor.cid_of(post)
        record = checkin_record(lat_e6, lon_e6, name, did=self.did, rkey=rkey, post_cid=post_cid,
                                **extra)  # fmt: skip
        body = self.commit(
            [("create", f"{CHECKIN}/{rkey}", record), ("create", f"{POST}/{rkey}", post)]
        )
        return rkey, body

    def sync_body(self) -> dict[str, Any]:
        assert self.head is not None
        car = write_car([self.head.cid], [(self.head.cid, self.head.encode())])
        return {"did": self.did, "rev": str(self.head.rev), "blocks": car}

    def export_car(self) -> bytes:
        assert self.head is not None
        record_blocks = [(cid, self.blocks[cid]) for cid in self.records.values()]
        return write_car(
            [self.head.cid],
            [(self.head.cid, self.head.encode()), *self.tree.iter_blocks(), *record_blocks],
        )

    def checkin_keys(self) -> Iterator[str]:
        return (p.split("/", 1)[1] for p in self.records if p.startswith(CHECKIN + "/"))


def _op_body(op: RecordOp) -> dict[str, Any]:
    body: dict[str, Any] = {"action": op.action, "path": op.path, "cid": op.cid}
    if op.prev is not None:
        body["prev"] = op.prev
    return body


class FakeHost(Server):
    """A PDS-like host: the firehose, getRepo and listRepos for its SimRepos."""

    def __init__(self) -> None:
        app = web.Application()
        super().__init__(app)
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.repos: dict[str, SimRepo] = {}
        self.status: dict[str, tuple[bool, str | None]] = {}
        self.log: list[tuple[int | None, bytes]] = []  # (seq, frame) in send order
        self.seq = 0
        self.oldest_seq = 1  # cursors below this get #info OutdatedCursor
        self.sockets: set[web.WebSocketResponse] = set()
        self.connections = 0
        self.cursors_asked: list[str | None] = []
        self.stall = False
        self.error_once: str | None = None  # the next connection gets this error frame
        self.unstalled = asyncio.Event()
        self._changed = asyncio.Condition()
        app.router.add_get(f"/xrpc/{nsids.SYNC_SUBSCRIBE_REPOS}", self._subscribe)
        app.router.add_get(f"/xrpc/{nsids.SYNC_GET_REPO}", self._get_repo)
        app.router.add_get(f"/xrpc/{nsids.SYNC_LIST_REPOS}", self._list_repos)

    # -- producing events --------------------------------------------------------------------
    async def publish(self, kind: str, body: dict[str, Any]) -> int:
        self.seq += 1
        frame = frames.encode_message(kind, {**body, "seq": self.seq, "time": iso_now()})
        await self._append(self.seq, frame)
        return self.seq

    async def publish_raw(self, frame: bytes) -> None:
        await self._append(None, frame)

    async def _append(self, seq: int | None, frame: bytes) -> None:
        async with self._changed:
            self.log.append((seq, frame))
            self._changed.notify_all()

    async def account(self, did: str, active: bool, status: str | None = None) -> int:
        self.status[did] = (active, status)
        body: dict[str, Any] = {"did": did, "active": active}
        if status is not None:
            body["status"] = status
        return await self.publish("#account", body)

    async def drop_connections(self) -> None:
        for ws in list(self.sockets):
            await ws.close()

    # -- serving -----------------------------------------------------------------------------
    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        raw_cursor = request.query.get("cursor")
        self.cursors_asked.append(raw_cursor)
        self.sockets.add(ws)
        try:
            await self._stream(ws, None if raw_cursor is None else int(raw_cursor))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            self.sockets.discard(ws)
        return ws

    async def _stream(self, ws: web.WebSocketResponse, cursor: int | None) -> None:
        if self.error_once is not None:  # e.g. ConsumerTooSlow: an error frame, then close
            error, self.error_once = self.error_once, None
            await ws.send_bytes(frames.encode_error(error, "as asked by the test"))
            await ws.close()
            return
        if cursor is not None and cursor > self.seq:
            await ws.send_bytes(frames.encode_error("FutureCursor", "cursor in the future"))
            await ws.close()
            return
        if cursor is None:
            position = len(self.log)
        else:
            if cursor < self.oldest_seq - 1:
                info = {"name": "OutdatedCursor", "message": "cursor too old"}
                await ws.send_bytes(frames.encode_message("#info", info))
            first = max(cursor + 1, self.oldest_seq)  # older events left the window
            # Resume right after the last event before `first` (raw frames in between included).
            position = 1 + max(
                (i for i, (seq, _) in enumerate(self.log) if seq is not None and seq < first),
                default=-1,
            )
        while not ws.closed:
            async with self._changed:
                while position >= len(self.log) and not ws.closed:
                    try:
                        await asyncio.wait_for(self._changed.wait(), 0.5)
                    except TimeoutError:
                        continue
            while position < len(self.log) and not ws.closed:
                if self.stall:
                    await self.unstalled.wait()
                await ws.send_bytes(self.log[position][1])
                position += 1

    async def _get_repo(self, request: web.Request) -> web.Response:
        did = request.query.get("did", "")
        repo = self.repos.get(did)
        if repo is None or repo.head is None:
            return web.json_response({"error": "RepoNotFound", "message": did}, status=400)
        active, status = self.status.get(did, (True, None))
        if not active:
            error = {"deactivated": "RepoDeactivated", "takendown": "RepoTakendown"}.get(
                status or "deactivated", "RepoDeactivated"
            )
            return web.json_response({"error": error, "message": did}, status=400)
        return web.Response(body=repo.export_car(), content_type="application/vnd.ipld.car")

    async def _list_repos(self, request: web.Request) -> web.Response:
        repos = [
            {"did": did, "rev": r.rev, "active": self.status.get(did, (True, None))[0]}
            for did, r in sorted(self.repos.items())
            if r.head is not None
        ]
        return web.json_response({"repos": repos})


@dataclass
class Network:
    plc: PlcDirectory
    host: FakeHost
    rotation: Keypair = field(default_factory=K256Keypair.generate)

    async def new_repo(self) -> SimRepo:
        key = K256Keypair.generate()
        did = await self.plc.register(self.rotation, key, self.host.url)
        repo = SimRepo(did, key)
        self.host.repos[did] = repo
        return repo

    async def commit(self, repo: SimRepo, body: dict[str, Any]) -> int:
        return await self.host.publish("#commit", body)
