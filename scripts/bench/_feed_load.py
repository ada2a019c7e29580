"""The feed benchmark's load generator: a minimal keep-alive HTTP/1.1 client and the load loop.

The driver shares the machine's cores with the servers it measures, so it must cost little per
request: a full client (aiohttp's, with its per-request URL building, header objects and
response machinery) spent about as much CPU per request as the feed generator itself, and every
millisecond it took was a millisecond the server could not have. Here each of `concurrency`
workers owns one connection and writes a pre-encoded `GET`; a response is read as its header
block and a `Content-Length` body (both servers always send one; a chunked or length-less
response is an error, not silently misread). A server that answers `Connection: close` (the
peer's HTTP/1.0 replies) is reconnected, and the reconnect is part of that request's latency, as
it would be for a real client.

Errors: `LoadError` (a `ValueError`) for a response this client cannot frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

MAX_HEAD_BYTES = 16_384


class LoadError(ValueError):
    """A response the load client cannot frame (no Content-Length, chunked, garbled)."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int  # responses other than 200
    seconds: float
    latencies_ms: list[float]


def request_target(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}"


class Connection:
    """One keep-alive HTTP/1.1 connection to `base` (http://host:port)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"the load client speaks plain http://host:port, not {base}")
        self._host, self._port = parts.hostname, parts.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        """(status, body) of `GET target`."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(f"GET {target} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status, length, close = _parse_head(head)
        body = await self._reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):  # the server closed first: nothing to flush
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, connection closes) of a response's header block."""
    if len(head) > MAX_HEAD_BYTES or not head.startswith(b"HTTP/1."):
        raise LoadError(f"not an HTTP/1.x response: {head[:60]!r}")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0][:8], int(lines[0][9:12])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" not in headers or "chunked" in headers.get("transfer-encoding", ""):
        raise LoadError("the load client needs a Content-Length response")
    connection = headers.get("connection", "")
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    return status, int(headers["content-length"]), close


async def run_load(
    base: str, targets: Sequence[str], *, seconds: float, concurrency: int
) -> LoadResult:
    """`concurrency` workers, each on its own connection, request `targets` round-robin for
    `seconds`; the latency of each request is from writing it to reading its last byte."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0

    async def worker(deadline: float) -> None:
        nonlocal errors
        connection = Connection(base)
        try:
            while time.perf_counter() < deadline:
                target = targets[next(counter) % len(targets)]
                started = time.perf_counter()
                status, _body = await connection.get(target)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += status != 200
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
    return LoadResult(len(latencies), errors, time.perf_counter() - started, latencies)
