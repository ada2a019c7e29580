"""The fanout: one task reads newly sequenced events and hands them to every subscriber.

Writers ring the sequencer's signal after their transaction commits; the fanout then reads every
`repo_seq` row above the last one it broadcast, oldest first, builds each frame once, and offers
it to every subscription. Offering only appends to the subscriber's bounded buffer, so a slow
subscriber costs the fanout nothing: it overflows its own buffer and is dropped
(`ConsumerTooSlow`), and everyone else carries on.

The database is the source of truth, the signal only a hint: the fanout also polls every
`idle_poll_seconds`, so events written by another process (or a missed ring) still go out.
A failing read is logged and retried; the position only advances past broadcast events, and
events commit in seq order, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from pds.db.engine import Database
from pds.firehose.events import OutgoingEvent, outgoing
from pds.firehose.metrics import FirehoseMetrics
from pds.firehose.outbox import DEFAULT_PAGE_SIZE, Subscription
from pds.sequencer import SequencerSignal, events_after, last_seq

log = logging.getLogger(__name__)

DEFAULT_IDLE_POLL_SECONDS: Final = 1.0
_RETRY_SECONDS: Final = 0.5


class Fanout:
    """Broadcasts sequenced events to the registered subscriptions."""

    def __init__(
        self,
        db: Database,
        signal: SequencerSignal,
        metrics: FirehoseMetrics,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
    ) -> None:
        self.db = db
        self.signal = signal
        self.metrics = metrics
        self.page_size = page_size
        self.idle_poll_seconds = idle_poll_seconds
        self.head = 0  # highest seq broadcast (or skipped as unsendable)
        self._subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, max_events: int, max_bytes: int) -> Subscription:
        subscription = Subscription(max_events, max_bytes, registered_at=self.head)
        self._subscriptions.add(subscription)
        self.metrics.subscribers.set(len(self._subscriptions))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        self.metrics.subscribers.set(len(self._subscriptions))

    async def load_head(self) -> None:
        """Position at the current head (subscribers replay older events from the database)."""
        async with self.db.read() as conn:
            self.head = await last_seq(conn)
        self.metrics.head_seq.set(self.head)

    async def start(self) -> None:
        """Load the head and run the broadcasting task until `stop`."""
        await self.load_head()
        self._remove_listener = self.signal.add_listener(self._wake.set)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="firehose-fanout")

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.idle_poll_seconds):
                    await self._wake.wait()
            # Cleared before reading: a ring during the read triggers one more round.
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firehose fanout failed to read new events; retrying")
                await asyncio.sleep(_RETRY_SECONDS)
                self._wake.set()

    async def drain(self) -> None:
        """Broadcast every event above `head` now, a page at a time (the task does this on
        every ring; calling it directly is for embedders that drive the fanout themselves)."""
        while True:
            async with self.db.read() as conn:
                stored = await events_after(conn, self.head, limit=self.page_size)
            if not stored:
                return
            for event in stored:
                ready = outgoing(event)
                if ready is not None:
                    self._broadcast_one(ready)
            self.head = stored[-1].seq
            self.metrics.broadcast(len(stored), self.head)
            if len(stored) < self.page_size:
                return

    def _broadcast_one(self, event: OutgoingEvent) -> None:
        for subscription in list(self._subscriptions):
            if not subscription.offer(event):
                # Too slow: it has been told (its `too_slow` is set); stop feeding it.
                self.unsubscribe(subscription)
                self.metrics.slow_consumers_dropped.inc()
