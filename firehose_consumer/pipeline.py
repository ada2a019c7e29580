"""The moving parts between the socket and the writer: frame queue, cursor watermarks, lanes.

    reader(s) ──frames──▶ FrameQueue ──▶ dispatcher: decode, filter ──▶ Lanes (one per DID)
                 (never waits on the DB)                                  │ in order per DID,
                                                                          ▼ concurrent across DIDs
                                                       IndexWriter: batches + cursor, one txn

`FrameQueue` is bounded in frames and bytes; `put_nowait` refuses instead of blocking, so a
reader decides itself what to do when the consumer falls behind (it pauses its connection).

`SeqTracker` turns out-of-order completion into a safe cursor. Events are registered in arrival
(seq) order; each is completed when its changes are in a batch, or at once when it needs none.
The watermark is the highest seq with every event at or below it completed: after a crash,
resuming from the watermark replays only events whose effects may be missing, and replays are
harmless (stale revs are skipped).

`Lanes` runs one task per DID with pending work, processing that DID's items strictly in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class SeqTracker:
    """Registered seqs in order, their completion, and the resulting watermark."""

    def __init__(self, committed: int | None) -> None:
        self.last_registered = committed
        self._mark = committed
        self._pending: deque[int] = deque()
        self._done: set[int] = set()

    def register(self, seq: int) -> bool:
        """Record an arriving seq; False for a replayed or out-of-order one (drop it)."""
        if self.last_registered is not None and seq <= self.last_registered:
            return False
        self.last_registered = seq
        self._pending.append(seq)
        return True

    def complete(self, seq: int) -> None:
        self._done.add(seq)

    def watermark(self) -> int | None:
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            seq = pending.popleft()
            done.discard(seq)
            self._mark = seq
        return self._mark

    @property
    def outstanding(self) -> int:
        return len(self._pending)


class FrameQueue:
    """(source index, frame) pairs, bounded by count and bytes; FIFO."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._per_source: dict[int, int] = {}
        self._has_items = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()

    def put_nowait(self, source: int, frame: bytes) -> bool:
        if self._items and (
            len(self._items) >= self.max_frames or self._bytes + len(frame) > self.max_bytes
        ):
            self._has_room.clear()
            return False
        self._items.append((source, frame))
        self._bytes += len(frame)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._has_items.set()
        return True

    async def get(self) -> tuple[int, bytes]:
        while not self._items:
            self._has_items.clear()
            await self._has_items.wait()
        source, frame = self._items.popleft()
        self._bytes -= len(frame)
        self._per_source[source] -= 1
        if len(self._items) <= self.max_frames // 2 and self._bytes <= self.max_bytes // 2:
            self._has_room.set()
        return source, frame

    async def wait_for_room(self) -> None:
        """Until the queue has drained to half (hysteresis: a paused reader resumes once)."""
        await self._has_room.wait()

    def count(self, source: int) -> int:
        """Frames of `source` still waiting."""
        return self._per_source.get(source, 0)

    def __len__(self) -> int:
        return len(self._items)


class Lanes(Generic[T]):
    """Per-key ordered processing: items of one key in order, different keys concurrently."""

    def __init__(self, process: Callable[[str, T], Awaitable[None]]) -> None:
        self._process = process
        self._queues: dict[str, deque[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, key: str, item: T) -> None:
        self.pending += 1
        self._idle.clear()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(item)
            return
        self._queues[key] = deque((item,))
        task = asyncio.create_task(self._run(key), name=f"lane:{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def busy(self, key: str) -> bool:
        return key in self._queues

    async def _run(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item = queue[0]
                try:
                    await self._process(key, item)
                except Exception:  # a bug in one event must not stall the DID's later events
                    log.exception("lane %s: processing failed", key)
                finally:
                    queue.popleft()
                    self.pending -= 1
                    if not self.pending:
                        self._idle.set()
                # Cached verification never suspends: yield so one busy DID cannot starve the
                # socket readers and the writer.
                await asyncio.sleep(0)
        finally:
            del self._queues[key]

    async def wait_idle(self) -> None:
        """Until no item is pending in any lane."""
        await self._idle.wait()

    async def cancel(self) -> None:
        """Stop every lane (shutdown); their unfinished events stay below the watermark."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
