"""The firehose under load, over real WebSockets: a write storm with subscribers joining midway,
100 concurrent subscribers, and a stalled subscriber cut off while the others carry on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from atcore import frames, nsids
from pds.firehose.service import FirehoseConfig
from tests.pds.firehose.support import (
    STREAM_TIMEOUT,
    Account,
    LoopStack,
    checkin,
    head_seq,
    loop_stack,
    verify_commits,
)

WRITERS = 8
WRITES_PER_WRITER = 15
SUBSCRIBERS = 100


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LoopStack]:
    async with loop_stack(tmp_path) as running:
        yield running


class Subscriber:
    """Reads raw frames until the stream reaches a target seq announced later."""

    def __init__(self, stack: LoopStack, query: str) -> None:
        self.frames: list[bytes] = []
        self.seqs: list[int] = []
        self.errors: list[frames.ErrorFrame] = []
        self._url = stack.subscribe_url(query)
        self._http = stack.http
        self.connected = asyncio.Event()

    async def run(self, target: asyncio.Future[int]) -> None:
        async with asyncio.timeout(STREAM_TIMEOUT), self._http.ws_connect(self._url) as ws:
            self.connected.set()
            async for message in ws:
                decoded = frames.decode(message.data)
                if isinstance(decoded, frames.ErrorFrame):
                    self.errors.append(decoded)
                    continue
                self.frames.append(message.data)
                self.seqs.append(decoded.body["seq"])
                if target.done() and self.seqs[-1] >= target.result():
                    return


async def storm(
    stack: LoopStack, accounts: list[Account], on_ack: asyncio.Queue[int]
) -> list[dict[str, Any]]:
    """WRITERS concurrent writers over HTTP; every acknowledged write is reported on `on_ack`."""
    acknowledged: list[dict[str, Any]] = []

    async def writer(index: int) -> None:
        account = accounts[index % len(accounts)]
        for n in range(WRITES_PER_WRITER):
            out = await stack.create_record(account, checkin(index * 1000 + n))
            acknowledged.append({"did": account.did, **out})
            on_ack.put_nowait(len(acknowledged))

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    return acknowledged


async def test_cutover_under_a_write_storm_has_no_gap_and_no_duplicate(stack: LoopStack) -> None:
    accounts = [await stack.create_account() for _ in range(4)]
    base = await head_seq(stack)
    acks: asyncio.Queue[int] = asyncio.Queue()
    target: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    subscribers: list[tuple[int | None, Subscriber]] = []
    tasks: list[asyncio.Task[None]] = []

    def join(cursor: int | None) -> None:
        subscriber = Subscriber(stack, "" if cursor is None else f"cursor={cursor}")
        subscribers.append((cursor, subscriber))
        tasks.append(asyncio.create_task(subscriber.run(target)))

    writes = asyncio.create_task(storm(stack, accounts, acks))
    # Subscribers join while the storm runs, each after another acknowledged write: replaying
    # from genesis, from the head of the moment, and live.
    for _ in range(WRITERS * WRITES_PER_WRITER):
        count = await acks.get()
        if count % 10 == 1:
            current = await head_seq(stack)
            join(0)
            join(current)
            join(None)
    acknowledged = await writes
    final = await head_seq(stack)
    target.set_result(final + 1)
    await stack.create_record(accounts[0], checkin(-1))  # the last event everyone waits for
    await asyncio.gather(*tasks)

    assert final - base == WRITERS * WRITES_PER_WRITER == len(acknowledged)
    for cursor, subscriber in subscribers:
        assert subscriber.errors == []
        first = 1 if cursor == 0 else subscriber.seqs[0] if cursor is None else cursor + 1
        assert subscriber.seqs == list(range(first, final + 2)), cursor
    genesis_streams = [s for cursor, s in subscribers if cursor == 0]
    assert all(s.frames == genesis_streams[0].frames for s in genesis_streams)

    everything = [frames.decode(raw) for raw in genesis_streams[0].frames]
    messages = [m for m in everything if isinstance(m, frames.MessageFrame)]
    assert await verify_commits(stack, messages) == len(accounts) + len(acknowledged) + 1
    # Every acknowledged write appears in exactly one event.
    written = [
        (m.body["repo"], op["path"], str(op["cid"]))
        for m in messages
        if m.type == "#commit"
        for op in m.body["ops"]
    ]
    for ack in acknowledged:
        path = str(ack["uri"]).split("/", 3)[3]
        assert written.count((ack["did"], path, ack["cid"])) == 1


async def test_100_concurrent_subscribers_receive_identical_sequences(stack: LoopStack) -> None:
    accounts = [await stack.create_account() for _ in range(2)]
    target: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    subscribers = [Subscriber(stack, "cursor=0") for _ in range(SUBSCRIBERS)]
    tasks = [asyncio.create_task(s.run(target)) for s in subscribers]
    await asyncio.gather(*(s.connected.wait() for s in subscribers))
    acknowledged = await storm(stack, accounts, asyncio.Queue())
    final = await head_seq(stack)
    target.set_result(final + 1)
    await stack.create_record(accounts[1], checkin(-1))
    await asyncio.gather(*tasks)

    reference = subscribers[0]
    assert reference.seqs == list(range(1, final + 2))
    for subscriber in subscribers:
        assert subscriber.errors == []
        assert subscriber.frames == reference.frames
    assert len(acknowledged) == WRITERS * WRITES_PER_WRITER


# -- a stalled subscriber ------------------------------------------------------------------------


class StalledSubscriber:
    """A WebSocket client on a raw socket with a tiny receive buffer that stops reading."""

    def __init__(self, stack: LoopStack) -> None:
        host, port = stack.pds_url.removeprefix("http://").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.address = (host, int(port))

    async def handshake(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, self.address)
        host, port = self.address
        request = (
            f"GET {nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(self.sock, request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += await loop.sock_recv(self.sock, 1)
        assert response.startswith(b"HTTP/1.1 101"), response

    async def read_all(self) -> list[tuple[int, bytes]]:
        """Resume reading: every WebSocket frame (opcode, payload) until the server closes."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        async with asyncio.timeout(STREAM_TIMEOUT):
            while chunk := await loop.sock_recv(self.sock, 1 << 20):
                data += chunk
        self.sock.close()
        return parse_ws_frames(bytes(data))


def parse_ws_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked server-to-client frames (RFC 6455 §5.2); the last may be cut off by the close."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 2 <= len(data):
        opcode, length, pos_after = data[pos] & 0x0F, data[pos + 1] & 0x7F, pos + 2
        if length == 126:
            length, pos_after = int.from_bytes(data[pos + 2 : pos + 4]), pos + 4
        elif length == 127:
            length, pos_after = int.from_bytes(data[pos + 2 : pos + 10]), pos + 10
        if pos_after + length > len(data):
            break
        out.append((opcode, data[pos_after : pos_after + length]))
        pos = pos_after + length
    return out


async def dropped_slow_consumers(stack: LoopStack) -> float:
    async with stack.http.get(stack.pds_url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("pds_firehose_slow_consumers_dropped_total "):
            return float(line.split()[1])
    raise AssertionError("metric missing")


async def test_a_stalled_subscriber_gets_consumer_too_slow_and_others_are_unaffected(
    tmp_path: Path,
) -> None:
    # The server waits as long as it takes for the stalled peer to take its error frame.
    config = FirehoseConfig(buffer_bytes=2 * 1024 * 1024, send_timeout_seconds=STREAM_TIMEOUT)
    async with loop_stack(tmp_path, config) as stack:
        account = await stack.create_account()
        base = await head_seq(stack)
        stalled = StalledSubscriber(stack)
        await stalled.handshake()
        target: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        healthy = [Subscriber(stack, f"cursor={base}") for _ in range(3)]
        tasks = [asyncio.create_task(s.run(target)) for s in healthy]
        await asyncio.gather(*(s.connected.wait() for s in healthy))
        # 100 KB records until the stalled one is cut off (its socket, then its buffer, fill).
        writes = 0
        while await dropped_slow_consumers(stack) == 0:
            assert writes < 1000, "the stalled subscriber was never cut off"
            await stack.create_record(account, checkin(writes, padding=100_000))
            writes += 1
        final = await head_seq(stack)
        received = await stalled.read_all()
        target.set_result(final + 1)
        await stack.create_record(account, checkin(-1))
        await asyncio.gather(*tasks)
        for subscriber in healthy:
            assert subscriber.errors == []
            assert subscriber.seqs == list(range(base + 1, final + 2))

    messages = [frames.decode(payload) for opcode, payload in received if opcode == 0x2]
    *events, last = messages
    assert last == frames.ErrorFrame(error="ConsumerTooSlow", message="Stream consumer too slow")
    seqs = [m.body["seq"] for m in events if isinstance(m, frames.MessageFrame)]
    assert seqs == list(range(base + 1, base + 1 + len(seqs)))  # a gap-free prefix
    assert len(seqs) < writes
    assert received[-1][0] == 0x8  # then the close frame
