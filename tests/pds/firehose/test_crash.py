"""kill -9 of the PDS process during a write storm, then a restart on the same data.

`python -m pds` and `python -m pds.plc` run as real subprocesses. Writers hammer the PDS while a
subscriber follows the firehose; the PDS is SIGKILLed mid-storm and started again. Afterwards:
no seq is reused (what the live subscriber saw before the crash replays byte for byte, and the
sequence stays strictly increasing), every acknowledged write has exactly one event, every
commit verifies and chains, and the repository export still verifies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from atcore import frames, nsids
from atcore.identity.resolver import DidResolver
from tests.pds.firehose.support import (
    COLLECTION,
    STREAM_TIMEOUT,
    Account,
    bound_socket,
    checkin,
    verify_commits,
)
from tests.pds.repo_support import verify_repo_car

REPO_ROOT = Path(__file__).resolve().parents[3]
WRITERS = 6
WRITES_BEFORE_KILL = 40

pytestmark = pytest.mark.slow


def free_port() -> int:
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@dataclass
class Processes:
    data_dir: Path
    pds_port: int
    plc_port: int
    http: aiohttp.ClientSession

    @property
    def pds_url(self) -> str:
        return f"http://127.0.0.1:{self.pds_port}"

    @property
    def plc_url(self) -> str:
        return f"http://127.0.0.1:{self.plc_port}"

    def pds_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PDS_DEV_MODE": "true",
            "PDS_PORT": str(self.pds_port),
            "PDS_DATA_DIRECTORY": str(self.data_dir / "pds"),
            "PDS_DID_PLC_URL": self.plc_url,
            "LOG_LEVEL": "WARNING",
        }

    def plc_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PLC_PORT": str(self.plc_port),
            "PLC_DATA_DIRECTORY": str(self.data_dir / "plc"),
        }

    @contextmanager
    def process(
        self, module: str, env: dict[str, str], log_name: str
    ) -> Iterator[subprocess.Popen[bytes]]:
        log = (self.data_dir / log_name).open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=REPO_ROOT, stdout=log, stderr=log
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()

    async def wait_healthy(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        async with asyncio.timeout(STREAM_TIMEOUT):
            while True:
                assert proc.poll() is None, (self.data_dir / "pds.log").read_text()
                with suppress(aiohttp.ClientError):
                    async with self.http.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    async def procedure(self, nsid: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(
            self.pds_url + nsids.xrpc_path(nsid), json=body, headers=headers
        ) as response:
            out = await response.json()
            assert response.status == 200, out
            return out


@asynccontextmanager
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        yield Processes(tmp_path, free_port(), free_port(), http)


async def create_account(procs: Processes, label: str) -> Account:
    out = await procs.procedure(
        nsids.SERVER_CREATE_ACCOUNT,
        {"handle": f"{label}.test", "email": f"{label}@example.com", "password": f"pw-{label}"},
    )
    return Account(out["did"], out["handle"], out["accessJwt"])


async def write_until_dead(
    procs: Processes, accounts: list[Account], acknowledged: list[tuple[str, str, str]]
) -> None:
    """Concurrent createRecords; stops at the first failed request (the process died)."""

    async def writer(index: int) -> None:
        account = accounts[index % len(accounts)]
        n = 0
        while True:
            try:
                out = await procs.procedure(
                    nsids.REPO_CREATE_RECORD,
                    {"repo": account.did, "collection": COLLECTION, "record": checkin(n)},
                    account.access_jwt,
                )
            except (aiohttp.ClientError, AssertionError):
                return
            acknowledged.append((account.did, out["uri"].split("/", 3)[3], out["cid"]))
            n += 1

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))


async def follow(procs: Processes, seen: dict[int, bytes]) -> None:
    """A live subscriber recording every frame until the connection dies."""
    url = procs.pds_url.replace("http://", "ws://") + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
    with suppress(aiohttp.ClientError, ConnectionError):
        async with procs.http.ws_connect(f"{url}?cursor=0") as ws:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY:
                    return
                decoded = frames.decode(message.data)
                assert isinstance(decoded, frames.MessageFrame)
                seen[decoded.body["seq"]] = message.data


async def test_kill_9_during_writes_loses_nothing_acknowledged_and_reuses_no_seq(
    tmp_path: Path,
) -> None:
    async with processes(tmp_path) as procs:
        with procs.process("pds.plc", procs.plc_env(), "plc.log") as plc:
            await procs.wait_healthy(procs.plc_url + "/_health", plc)
            with procs.process("pds", procs.pds_env(), "pds.log") as pds:
                await procs.wait_healthy(procs.pds_url + "/xrpc/_health", pds)
                accounts = [await create_account(procs, f"crash{i}") for i in range(3)]
                seen_before: dict[int, bytes] = {}
                follower = asyncio.create_task(follow(procs, seen_before))
                acknowledged: list[tuple[str, str, str]] = []
                storm = asyncio.create_task(write_until_dead(procs, accounts, acknowledged))
                async with asyncio.timeout(STREAM_TIMEOUT):
                    while len(acknowledged) < WRITES_BEFORE_KILL:  # noqa: ASYNC110
                        await asyncio.sleep(0.005)
                pds.send_signal(signal.SIGKILL)
                pds.wait()
                await storm
                await follower
            acked_before_restart = len(acknowledged)

            with procs.process("pds", procs.pds_env(), "pds.log") as pds:
                await procs.wait_healthy(procs.pds_url + "/xrpc/_health", pds)
                last = await procs.procedure(
                    nsids.REPO_CREATE_RECORD,
                    {"repo": accounts[0].did, "collection": COLLECTION, "record": checkin(-1)},
                    accounts[0].access_jwt,
                )
                acknowledged.append((accounts[0].did, last["uri"].split("/", 3)[3], last["cid"]))
                replay = await replay_until(procs, last["cid"])
                cars = {a.did: await get_repo(procs, a.did) for a in accounts}
            # The PDS is down again; the PLC directory still answers for the DID documents.
            await check_outcome(procs, accounts, acknowledged, seen_before, replay, cars)
        assert acked_before_restart >= WRITES_BEFORE_KILL


async def check_outcome(
    procs: Processes,
    accounts: list[Account],
    acknowledged: list[tuple[str, str, str]],
    seen_before: dict[int, bytes],
    replay: Replay,
    cars: dict[str, bytes],
) -> None:
    seqs = replay.seqs()
    assert seqs == sorted(set(seqs)), "seqs must strictly increase, never repeat"
    raw_by_seq = dict(zip(seqs, replay.raw, strict=True))
    for seq, frame in seen_before.items():
        assert raw_by_seq.get(seq) == frame, f"seq {seq} was reused or lost"

    written = [
        (m.body["repo"], op["path"], str(op["cid"]))
        for m in replay.messages
        if m.type == "#commit"
        for op in m.body["ops"]
    ]
    for write in acknowledged:
        assert written.count(write) == 1, write
    assert len(written) == len(set(written))
    assert await verify_commits(procs, replay.messages) == len(written) + len(accounts)

    async with DidResolver(session=procs.http, plc_url=procs.plc_url) as resolver:
        for account in accounts:
            key = await resolver.resolve_atproto_key(account.did)
            _commit, records = verify_repo_car(cars[account.did], account.did, key)
            mine = {path for did, path, _ in written if did == account.did}
            assert set(records) == mine


@dataclass
class Replay:
    messages: list[frames.MessageFrame]
    raw: list[bytes]

    def seqs(self) -> list[int]:
        return [m.body["seq"] for m in self.messages]


async def replay_until(procs: Processes, record_cid: str) -> Replay:
    """Replay from 0 until the commit carrying `record_cid` arrives."""
    url = procs.pds_url.replace("http://", "ws://") + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
    out = Replay([], [])
    async with asyncio.timeout(STREAM_TIMEOUT), procs.http.ws_connect(f"{url}?cursor=0") as ws:
        async for message in ws:
            decoded = frames.decode(message.data)
            assert isinstance(decoded, frames.MessageFrame), decoded
            out.messages.append(decoded)
            out.raw.append(message.data)
            ops = decoded.body.get("ops", []) if decoded.type == "#commit" else []
            if any(str(op["cid"]) == record_cid for op in ops):
                return out
    raise AssertionError("the stream ended before the last write's commit")


async def get_repo(procs: Processes, did: str) -> bytes:
    url = procs.pds_url + nsids.xrpc_path(nsids.SYNC_GET_REPO)
    async with procs.http.get(url, params={"did": did}) as response:
        assert response.status == 200
        return await response.read()
