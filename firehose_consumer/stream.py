"""Reading one `subscribeRepos` source: connect, receive, reconnect, forever.

The reader only moves bytes: it receives binary frames and puts them on the `FrameQueue` without
decoding them (it peeks at the header only to notice error frames). It never touches the
database, so a slow or restarting database cannot stall the socket; when the pipeline falls
behind and the queue stays full for `pause_grace_s`, the reader closes its connection (rather
than letting the server's buffer overflow), waits for room, and resumes from the last seq the
pipeline registered - nothing is lost, nothing is read twice.

Reconnection happens on every failure: connection errors, handshake refusals, clean closes,
error frames (`ConsumerTooSlow`, ...), and stalls (no frame for `receive_timeout_s`; WebSocket
pings catch dead peers sooner). Waits grow exponentially with full jitter up to
`reconnect_max_s`, and reset once a connection delivers frames.

`FutureCursor` is different: the server says our cursor is ahead of its sequence (restored from
an older backup, or the wrong server). Resetting the cursor would silently skip or duplicate
events, so the reader stops, the `firehose_future_cursor` gauge goes to 1, and an operator
decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

import aiohttp

from atcore import frames
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.pipeline import FrameQueue
from firehose_consumer.settings import Source

log = logging.getLogger(__name__)

FUTURE_CURSOR: Final = "FutureCursor"
_FLUSH_METRICS_EVERY: Final = 256


class ReaderExit(Enum):
    STOPPED = "stopped"
    FUTURE_CURSOR = "future_cursor"


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    receive_timeout_s: float = 60.0
    reconnect_base_s: float = 0.5
    reconnect_max_s: float = 60.0
    heartbeat_s: float = 20.0
    pause_grace_s: float = 2.0
    transport_max_bytes: int = 16 * 1024 * 1024  # the 5 MB protocol limit is enforced in decode


class Backoff:
    """Exponential backoff with full jitter."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self.base_s, self.max_s, self.failures = base_s, max_s, 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.base_s * 2 ** min(self.failures, 30))
        self.failures += 1
        return random.uniform(0.0, ceiling)  # noqa: S311 - spreading reconnects, not security

    def reset(self) -> None:
        self.failures = 0


class _Disconnect(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _FutureCursor(Exception):
    pass


class StreamReader:
    def __init__(
        self,
        index: int,
        source: Source,
        *,
        session: aiohttp.ClientSession,
        queue: FrameQueue,
        metrics: ConsumerMetrics,
        resume_cursor: Callable[[], int | None],
        options: ReaderOptions = ReaderOptions(),
    ) -> None:
        self.index = index
        self.source = source
        self.session = session
        self.queue = queue
        self.metrics = metrics
        self.resume_cursor = resume_cursor
        self.options = options
        self.connections = 0
        self._received = 0  # frames on the current connection

    async def run(self, stop: asyncio.Event) -> ReaderExit:
        backoff = Backoff(self.options.reconnect_base_s, self.options.reconnect_max_s)
        while not stop.is_set():
            await self._wait_until_drained(stop)
            if stop.is_set():
                break
            try:
                delivered = await self._connection(stop)
                reason = "closed"
            except _FutureCursor:
                self.metrics.future_cursor.labels(self.source.name).set(1)
                log.error("%s refused our cursor as in the future: stopping this source; "
                          "check the service and the index before resetting anything",
                          self.source.name)  # fmt: skip
                return ReaderExit.FUTURE_CURSOR
            except _Disconnect as exc:
                delivered, reason = self._received > 0, exc.reason
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                delivered, reason = False, type(exc).__name__
            if stop.is_set():
                break
            if delivered:
                backoff.reset()
            self.metrics.reconnects.labels(self.source.name, reason).inc()
            delay = backoff.next_delay()
            log.info("%s: reconnecting in %.1fs (%s)", self.source.name, delay, reason)
            await _sleep_unless(stop, delay)
        return ReaderExit.STOPPED

    async def _wait_until_drained(self, stop: asyncio.Event) -> None:
        """Resume only once our queued frames are registered, so the cursor is exact."""
        while self.queue.count(self.index) and not stop.is_set():
            await _sleep_unless(stop, 0.02)

    def _url(self) -> str:
        return self.source.subscribe_url

    async def _connection(self, stop: asyncio.Event) -> bool:
        """One connection's life; returns whether it delivered frames before ending cleanly."""
        cursor = self.resume_cursor()
        params = {} if cursor is None else {"cursor": str(cursor)}
        async with self.session.ws_connect(
            self._url(),
            params=params,
            heartbeat=self.options.heartbeat_s,
            max_msg_size=self.options.transport_max_bytes,
        ) as ws:
            self.connections += 1
            log.info("%s: connected (cursor %s)", self.source.name, cursor)
            self._received = 0
            pending_count = 0
            while not stop.is_set():
                message = await self._receive(ws, stop)
                if message is None:
                    break
                self._received += 1
                pending_count += 1
                if pending_count >= _FLUSH_METRICS_EVERY:
                    self.metrics.count_frames(self.source.name, pending_count)
                    pending_count = 0
                await self._deliver(ws, message)
            return self._received > 0

    async def _receive(
        self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event
    ) -> bytes | None:
        try:
            message = await ws.receive(timeout=self.options.receive_timeout_s)
        except TimeoutError:
            raise _Disconnect("stall") from None
        if message.type == aiohttp.WSMsgType.BINARY:
            data: bytes = message.data
            return data
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING):  # fmt: skip
            if stop.is_set():
                return None
            raise _Disconnect("server_closed")
        if message.type == aiohttp.WSMsgType.ERROR:
            raise _Disconnect("transport_error")
        self.metrics.invalid.labels("text_frame").inc()
        return b""

    async def _deliver(self, ws: aiohttp.ClientWebSocketResponse, frame: bytes) -> None:
        if not frame:
            return
        self._check_error_frame(frame)
        if self.queue.put_nowait(self.index, frame):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.wait_for_room(), self.options.pause_grace_s)
        if not self.queue.put_nowait(self.index, frame):
            # Still full: stop reading. This frame was not queued; the reconnection waits until
            # our queued frames are registered and resumes after the last one, fetching this
            # frame again once the pipeline has caught up.
            await ws.close()
            raise _Disconnect("paused")

    def _check_error_frame(self, frame: bytes) -> None:
        try:
            header, offset = frames.peek_header(frame)
        except frames.FrameError:
            return  # the decoder counts it
        if header.op != frames.OP_ERROR:
            return
        try:
            body = frames.decode_body(frame, offset)
        except frames.FrameError:
            body = {}
        error = str(body.get("error", "Unknown"))
        self.metrics.stream_errors.labels(self.source.name, error).inc()
        log.warning("%s: error frame %s: %s", self.source.name, error, body.get("message"))
        if error == FUTURE_CURSOR:
            raise _FutureCursor
        raise _Disconnect(f"error_frame:{error}")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
