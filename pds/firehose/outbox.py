"""One subscriber's view of the firehose: a bounded live buffer, and backfill-then-live replay.

`Subscription` is the buffer the fanout fills. `offer` never waits: when the buffer is full a
live subscriber is marked too slow (the connection then gets `ConsumerTooSlow` and is closed),
while a subscriber still backfilling just drops its buffer and notes that it `missed` events.

`replay` yields a subscriber's events in seq order, each exactly once: first stored events after
the start (the cursor, or without one the fanout's head at registration), read from `repo_seq`
page by page, then the live buffer.

Why the cutover has no gap and no duplicate, even with writes racing the subscriber:

1. The subscription is registered with the fanout *before* the first backfill read.
2. Events commit in seq order (SQLite has one writer, and a transaction takes its seqs from
   `sequencer_state` inside that transaction), and the fanout broadcasts what it reads in seq
   order, never skipping one. So any event is either broadcast after registration, and lands in
   the buffer unless dropped, or was broadcast before it, and so was committed before the
   backfill's first read started.
3. Backfill pages until a read returns less than a page: every event committed before that last
   read started has then been yielded. If the buffer overflowed meanwhile (`missed`), the events
   it dropped had been committed before the drop, so one more backfill pass, starting after the
   flag was seen, reads them; that repeats until a pass ends with `missed` still clear.
4. Going live happens in the same synchronous step as that final `missed` check, so from then
   on nothing is dropped silently (a live overflow ends the stream with `ConsumerTooSlow`).
   Every event after the start is therefore either backfilled or in the buffer (no gap); the
   buffer may repeat backfilled events, and any event with `seq <= last yielded` is skipped (no
   duplicate), which also keeps the output in seq order.

Cursor handling (`plan_start`, the event-stream spec's connection rules): no cursor → live
only (the events after the fanout's position when the subscription was registered); cursor
above the head seq → `FutureCursor`; a cursor below the pruned history
(`sequencer_state.pruned_through`), or whose next event is older than the backfill window →
`OutdatedCursor` info, then the whole window; `0` → the whole (retained) window; any other
cursor → the events after it. The pruned-history test matters because pruning deletes events:
the first event still stored after an old cursor may be recent, and judging by its time alone
would skip the deleted ones silently.

Overtaken by pruning: the pruner (`pds.firehose.pruner`) only deletes events older than the window
plus a margin, but a replay that crawls through the window for longer than that margin could find
the events it is about to read deleted. Each backfill page therefore reads `pruned_through` in the
same snapshot as the events; if it passed the replay's position, the replay ends with
`ConsumerTooSlow` (the client reconnects with its cursor and is told `OutdatedCursor`), never with
a silent gap.

Errors (`FirehoseError`, a `ValueError`): `FutureCursor`, `ConsumerTooSlow`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db import schema
from pds.db.engine import Database
from pds.db.seq_retention import SequenceBounds, pruned_through, sequence_bounds
from pds.firehose.events import OutgoingEvent, outgoing
from pds.sequencer import events_after

DEFAULT_PAGE_SIZE: Final = 500


class FirehoseError(ValueError):
    """A subscription cannot start or continue; `name` is the wire error name."""

    name = "FirehoseError"


class FutureCursor(FirehoseError):
    name = "FutureCursor"


class ConsumerTooSlow(FirehoseError):
    name = "ConsumerTooSlow"


class Subscription:
    """A subscriber's bounded buffer of live events (filled by the fanout, never waiting)."""

    def __init__(self, max_events: int, max_bytes: int, registered_at: int = 0) -> None:
        self.registered_at = registered_at  # the fanout's head seq when this was registered
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.live = False
        self.missed = False
        self.too_slow = asyncio.Event()
        self._buffer: deque[OutgoingEvent] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()

    def offer(self, event: OutgoingEvent) -> bool:
        """Buffer one event; False when this made a live subscriber too slow."""
        if self.too_slow.is_set():
            return True
        if len(self._buffer) >= self.max_events or self._bytes + len(event.frame) > self.max_bytes:
            self._clear()
            if self.live:
                self.too_slow.set()
                self._ready.set()
                return False
            self.missed = True
            return True
        self._buffer.append(event)
        self._bytes += len(event.frame)
        self._ready.set()
        return True

    async def take(self) -> list[OutgoingEvent]:
        """Everything buffered, waiting for at least one event; raises once too slow."""
        while not self._buffer:
            if self.too_slow.is_set():
                raise ConsumerTooSlow("Stream consumer too slow")
            self._ready.clear()
            await self._ready.wait()
        if self.too_slow.is_set():
            raise ConsumerTooSlow("Stream consumer too slow")
        taken = list(self._buffer)
        self._clear()
        return taken

    def cut_off(self) -> None:
        """Mark this subscriber too slow (the connection ends with `ConsumerTooSlow`)."""
        self._clear()
        self.too_slow.set()
        self._ready.set()

    def _clear(self) -> None:
        self._buffer.clear()
        self._bytes = 0


@dataclass(frozen=True, slots=True)
class StartPlan:
    """Where a subscription starts: after `start_after` (None: live only)."""

    start_after: int | None
    outdated: bool = False


async def plan_start(conn: AsyncConnection, cursor: int | None, window_start_ms: int) -> StartPlan:
    """Apply the connection-time cursor rules against the stored sequence."""
    if cursor is None:
        return StartPlan(None)
    bounds = await sequence_bounds(conn)
    if cursor > bounds.last_seq:
        raise FutureCursor("Cursor in the future.")
    if cursor == 0:
        return StartPlan(await _window_start_after(conn, window_start_ms, bounds))
    if cursor < bounds.pruned_through or await _next_event_is_older(conn, cursor, window_start_ms):
        return StartPlan(await _window_start_after(conn, window_start_ms, bounds), outdated=True)
    return StartPlan(cursor)


async def _next_event_is_older(conn: AsyncConnection, cursor: int, window_start_ms: int) -> bool:
    following = await _next_event_time(conn, cursor)
    return following is not None and following < window_start_ms


async def _next_event_time(conn: AsyncConnection, cursor: int) -> int | None:
    """When the first replayable event after `cursor` was sequenced (None: there is none)."""
    seq_table = schema.repo_seq
    value = await conn.scalar(
        select(seq_table.c.sequenced_at)
        .where(seq_table.c.seq > cursor, seq_table.c.invalidated.is_(False))
        .order_by(seq_table.c.seq)
        .limit(1)
    )
    return None if value is None else int(value)


async def _window_start_after(
    conn: AsyncConnection, window_start_ms: int, bounds: SequenceBounds
) -> int:
    """The seq just before the oldest event inside the window (the head when there is none),
    never below the pruned history."""
    seq_table = schema.repo_seq
    # Ordered by `sequenced_at` so the index answers it; seqs and times grow together.
    first = await conn.scalar(
        select(seq_table.c.seq)
        .where(seq_table.c.sequenced_at >= window_start_ms)
        .order_by(seq_table.c.sequenced_at, seq_table.c.seq)
        .limit(1)
    )
    if first is None:
        return bounds.last_seq
    return max(int(first) - 1, bounds.pruned_through)


async def replay(
    db: Database,
    subscription: Subscription,
    start_after: int | None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AsyncIterator[list[OutgoingEvent]]:
    """Batches of events after `start_after`, backfilled then live (see the module docstring).

    The subscription must already be registered with the fanout. Without a cursor the stream
    starts after the fanout's position at registration: everything later reaches the buffer, and
    going through the same backfill step covers what the buffer drops before the first read.
    """
    last = subscription.registered_at if start_after is None else start_after
    while True:
        subscription.missed = False
        try:
            async for batch in _backfill(db, last, page_size):
                yield batch
                last = batch[-1].seq
        except ConsumerTooSlow:
            subscription.cut_off()
            raise
        if not subscription.missed:
            break
    subscription.live = True
    while True:
        batch = [event for event in await subscription.take() if event.seq > last]
        if batch:
            last = batch[-1].seq
            yield batch


async def _backfill(db: Database, after: int, page_size: int) -> AsyncIterator[list[OutgoingEvent]]:
    """Stored events after `after`, page by page, until a page comes back short.

    Raises `ConsumerTooSlow` when pruning deleted events after `after` before they were read.
    """
    while True:
        async with db.read() as conn:  # one snapshot: the record and the page agree
            if await pruned_through(conn) > after:
                raise ConsumerTooSlow("Stream consumer too slow: the events it needs were pruned")
            stored = await events_after(conn, after, limit=page_size)
        if not stored:
            return
        after = stored[-1].seq
        batch = [event for event in map(outgoing, stored) if event is not None]
        if batch:
            yield batch
        if len(stored) < page_size:
            return
