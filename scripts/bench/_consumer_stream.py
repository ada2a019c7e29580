"""The consumer benchmark's recorded stream: record it once, serve it as a PDS/relay would.

Recording (`record`): `checkins` check-in commits (check-in + companion post in one commit,
real signed Sync 1.1 commits from `tests.firehose_consumer.fakenet.SimRepo`) spread over
`repos` accounts, interleaved with as many unrelated commits (posts and likes) from bystander
accounts that never check in - what a relay carries. The frames (with seqs) go to `<dir>/frames`
(4-byte big-endian length + frame), the DIDs' PLC genesis operations to `<dir>/manifest.json`.
A recording is reused when one of the same shape exists.

Serving (`python -m scripts.bench._consumer_stream DIR PLC_PORT STREAM_PORT`): one process runs
our PLC directory (loaded with the recorded DIDs) and a `subscribeRepos` endpoint replaying the
frames after the requested cursor as fast as the socket takes them; `/health` answers once the
PLC is loaded.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from atcore import frames, nsids
from atcore.crypto import K256Keypair
from atcore.identity.plc import create_genesis_op, did_for_genesis, op_to_json
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings
from tests.firehose_consumer.fakenet import POST, SimRepo, iso_now, post_record

_LENGTH = struct.Struct(">I")
_CITIES = (
    (48_856_600, 2_352_200),
    (35_676_200, 139_650_300),
    (40_712_800, -74_006_000),
    (-33_868_800, 151_209_300),
    (51_507_400, -127_800),
    (-23_550_500, -46_633_300),
)


@dataclass(frozen=True)
class Recording:
    directory: Path
    checkins: int
    unrelated: int
    frames: int

    @property
    def frames_path(self) -> Path:
        return self.directory / "frames"

    def iter_frames(self) -> Iterator[bytes]:
        with self.frames_path.open("rb") as stream:
            while header := stream.read(_LENGTH.size):
                (length,) = _LENGTH.unpack(header)
                yield stream.read(length)

    def load_frames(self) -> list[bytes]:
        return list(self.iter_frames())

    def plc_ops(self) -> dict[str, Any]:
        ops: dict[str, Any] = json.loads((self.directory / "manifest.json").read_text())["ops"]
        return ops


def _new_repo(rotation: K256Keypair, ops: dict[str, Any]) -> SimRepo:
    key = K256Keypair.generate()
    op = create_genesis_op(
        signer=rotation, rotation_keys=[rotation.public_key.did_key()],
        signing_key=key.public_key.did_key(), pds_endpoint="https://pds.invalid",
    )  # fmt: skip
    did = str(did_for_genesis(op))
    ops[did] = op_to_json(op)
    return SimRepo(did, key)


def record(directory: Path, *, checkins: int, repos: int, seed: int = 1) -> Recording:
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():
        shape = json.loads(manifest_path.read_text())
        if (shape["checkins"], shape["repos"]) == (checkins, repos):
            return Recording(directory, checkins, shape["unrelated"], shape["frames"])
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rotation = K256Keypair.generate()
    ops: dict[str, Any] = {}
    authors = [_new_repo(rotation, ops) for _ in range(repos)]
    bystanders = [_new_repo(rotation, ops) for _ in range(max(1, repos // 5))]
    seq, unrelated = 0, 0
    with (directory / "frames").open("wb") as out:

        def write(body: dict[str, Any]) -> None:
            nonlocal seq
            seq += 1
            frame = frames.encode_message("#commit", {**body, "seq": seq, "time": iso_now()})
            out.write(_LENGTH.pack(len(frame)) + frame)

        for _ in range(checkins):
            author = rng.choice(authors)
            lat, lon = rng.choice(_CITIES)
            jitter = rng.randint(-9999, 9999), rng.randint(-9999, 9999)
            _, body = author.checkin_with_post(lat + jitter[0], lon + jitter[1], "Bench spot")
            write(body)
            other = rng.choice(bystanders)
            rkey = other.clock.next_str()
            collection = rng.choice((POST, nsids.BSKY_FEED_LIKE))
            record_value = (
                post_record("unrelated") if collection == POST
                else {"$type": nsids.BSKY_FEED_LIKE, "createdAt": "2025-01-01T00:00:00.000Z",
                      "subject": {"uri": f"at://{other.did}/{POST}/x", "cid": str(body["commit"])}}
            )  # fmt: skip
            write(other.commit([("create", f"{collection}/{rkey}", record_value)]))
            unrelated += 1
    manifest_path.write_text(json.dumps(
        {"checkins": checkins, "repos": repos, "unrelated": unrelated, "frames": seq, "ops": ops}
    ))  # fmt: skip
    return Recording(directory, checkins, unrelated, seq)


def default_directory(checkins: int, repos: int) -> Path:
    return Path(tempfile.gettempdir()) / f"skyspot-consumer-bench-{checkins}-{repos}"


# -- serving ------------------------------------------------------------------------------------


async def _load_plc(plc_url: str, ops: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        semaphore = asyncio.Semaphore(16)

        async def submit(did: str, op: Any) -> None:
            async with semaphore, session.post(f"{plc_url}/{did}", json=op) as response:
                if response.status != 200:
                    raise RuntimeError(f"PLC refused {did}: {await response.text()}")

        await asyncio.gather(*(submit(did, op) for did, op in ops.items()))


def stream_app(frames_by_seq: list[bytes], ready: asyncio.Event) -> web.Application:
    async def subscribe(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        cursor = int(request.query.get("cursor", "0"))
        for frame in frames_by_seq[cursor:]:
            if ws.closed:
                break
            await ws.send_bytes(frame)
        async for _message in ws:  # the recording is over: stay quiet, like an idle PDS
            pass
        return ws

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ready": True}, status=200 if ready.is_set() else 503)

    app = web.Application()
    app.router.add_get(f"/xrpc/{nsids.SYNC_SUBSCRIBE_REPOS}", subscribe)
    app.router.add_get("/health", health)
    return app


async def serve(directory: Path, plc_port: int, stream_port: int) -> None:
    shape = json.loads((directory / "manifest.json").read_text())
    recording = Recording(directory, shape["checkins"], shape["unrelated"], shape["frames"])
    ready = asyncio.Event()
    with tempfile.TemporaryDirectory() as plc_data:
        plc = web.AppRunner(create_plc_app(PlcSettings("127.0.0.1", plc_port, Path(plc_data))))
        stream = web.AppRunner(stream_app(recording.load_frames(), ready), access_log=None)
        await plc.setup()
        await stream.setup()
        await web.TCPSite(plc, "127.0.0.1", plc_port).start()
        await web.TCPSite(stream, "127.0.0.1", stream_port).start()
        await _load_plc(f"http://127.0.0.1:{plc_port}", recording.plc_ops())
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await stream.cleanup()
            await plc.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
