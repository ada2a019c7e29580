"""The batched writer: index changes and source cursors, together, in one transaction per batch.

Lanes `submit` the outcome of every event they process (its changes, possibly none, and its
source seq). The writer collects submissions for up to `max_delay_s` or `max_batch_events`,
coalesces at most `max_batch_events` of them (`changes.Batch`), completes their seqs in the
`SeqTracker`s, and writes the changes plus each source's new watermark in ONE transaction - so
the stored cursor never runs ahead of the stored index, and never lags it by more than one batch.

Failure handling:
- serialization failures (40001) and SQLite busy: the whole transaction is re-run
  (`atcore.index.retry.run_transaction`);
- the database unreachable or restarting: the batch is kept and retried with capped exponential
  backoff and jitter, forever; meanwhile the pipeline fills up and the readers pause;
- a batch the database refuses (a constraint, a bug): it is split and written event by event,
  dropping (and counting) only the events that fail, so one bad event cannot wedge the consumer.

States of DIDs with uncommitted changes are pinned in `RepoStates` and released after commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from atcore.index.retry import RetryPolicy, run_transaction, sqlstate_of
from firehose_consumer.changes import Batch, EventChanges
from firehose_consumer.db import queries
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.pipeline import SeqTracker
from firehose_consumer.state import RepoStates
from firehose_consumer.stream import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")

_OUTAGE_STATES: Final = ("08", "57P")  # connection exception; operator intervention (shutdown)


WRITE_RETRY: Final = RetryPolicy(max_attempts=12, base_delay=0.005, max_delay=0.5)


@dataclass(frozen=True, slots=True)
class WriterOptions:
    max_batch_events: int = 2000
    max_delay_s: float = 0.05
    cursor_interval_s: float = 1.0  # how often a cursor-only batch is written
    retry: RetryPolicy = WRITE_RETRY
    outage_backoff_s: float = 0.2
    outage_backoff_max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Submission:
    source: str | None  # None for work that belongs to no event (a scheduled resync)
    seq: int | None
    changes: EventChanges | None


@dataclass
class _Pending:
    items: list[Submission] = field(default_factory=list)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def is_outage(error: BaseException) -> bool:
    """The database cannot be reached right now (as opposed to refusing this batch).

    Covers wrapped driver errors and the raw ones some drivers raise while connecting (asyncpg's
    `CannotConnectNowError` while a restarted server recovers, for one).
    """
    if isinstance(error, OSError):  # refused, reset, timed out
        return True
    if (sqlstate_of(error) or "").startswith(_OUTAGE_STATES):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError))
    return False


class IndexWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        trackers: dict[str, SeqTracker],
        states: RepoStates,
        metrics: ConsumerMetrics,
        options: WriterOptions = WriterOptions(),
    ) -> None:
        self.engine = engine
        self.trackers = trackers
        self.states = states
        self.metrics = metrics
        self.options = options
        self._pending = _Pending()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._commit_signal = asyncio.Event()
        self._saved: dict[str, int | None] = {}
        self.uncommitted = 0
        self.batches_written = 0

    def submit(self, submission: Submission) -> None:
        if submission.changes is not None and not submission.changes.is_empty:
            self.states.pin(submission.changes.did)
        self._pending.items.append(submission)
        self.uncommitted += 1
        self._arrived.set()
        if len(self._pending.items) >= self.options.max_batch_events:
            self._full.set()

    async def wait_committed(self) -> None:
        """Until the next batch is committed (backpressure for the dispatcher)."""
        await self._commit_signal.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop` is set, then write what is left and return."""
        while True:
            stopping = stop.is_set()
            if not stopping:
                await self._gather(stop)
            await self.flush()
            if stopping:
                while self._pending.items:  # everything submitted, batch by batch
                    await self.flush()
                return

    async def _gather(self, stop: asyncio.Event) -> None:
        """Wait for a first item (or the cursor interval), then up to `max_delay_s` for more."""
        if not self._pending.items:
            await _first_of((stop, self._arrived), self.options.cursor_interval_s)
        if self._pending.items and not stop.is_set():
            await _first_of((stop, self._full), self.options.max_delay_s)

    async def flush(self) -> None:
        """Write everything submitted so far, plus the cursors it lets advance."""
        cap = self.options.max_batch_events
        items, rest = self._pending.items[:cap], self._pending.items[cap:]
        self._pending = _Pending(rest)
        if not rest:
            self._arrived.clear()
        if len(rest) < cap:
            self._full.clear()
        batch = Batch()
        for item in items:
            if item.changes is not None:
                batch.add(item.changes)
            if item.source is not None and item.seq is not None:
                self.trackers[item.source].complete(item.seq)
        for source, tracker in self.trackers.items():
            mark = tracker.watermark()
            if mark is not None and mark != self._saved.get(source):
                batch.set_cursor(source, mark)
        if batch.is_empty:
            self._release(items)
            return
        started = time.perf_counter()
        await self._write(batch, items)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_events.observe(len(items))
        for source, seq in batch.cursors.items():
            self._saved[source] = seq
            self.metrics.cursor.labels(source).set(seq)
        self.batches_written += 1
        self._release(items)

    def _release(self, items: list[Submission]) -> None:
        for item in items:
            if item.changes is not None and not item.changes.is_empty:
                self.states.unpin(item.changes.did)
        self.uncommitted -= len(items)
        self._notify()

    def _notify(self) -> None:
        self._commit_signal.set()
        self._commit_signal = asyncio.Event()

    async def _write(self, batch: Batch, items: list[Submission]) -> None:
        try:
            await self._write_through_outages(batch)
        except DBAPIError as exc:
            log.error("the index refused a batch of %d events (%s); isolating", len(items), exc)
            await self._write_one_by_one(items, batch.cursors)

    async def _write_through_outages(self, batch: Batch) -> None:
        attempt = 0
        while True:
            try:
                await run_transaction(
                    self.engine, lambda conn: self._apply(conn, batch), policy=self.options.retry,
                    on_retry=lambda _e, _n: self.metrics.write_retries.labels("conflict").inc(),
                )  # fmt: skip
                return
            except Exception as exc:
                if not is_outage(exc):
                    raise
                attempt += 1
                self.metrics.write_retries.labels("unavailable").inc()
                ceiling = min(
                    self.options.outage_backoff_max_s,
                    self.options.outage_backoff_s * 2 ** min(attempt - 1, 16),
                )
                log.warning("index database unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311

    async def _apply(self, conn: AsyncConnection, batch: Batch) -> None:
        await queries.apply_batch(conn, batch, now_ms())

    async def _write_one_by_one(self, items: list[Submission], cursors: dict[str, int]) -> None:
        for item in items:
            if item.changes is None or item.changes.is_empty:
                continue
            single = Batch()
            single.add(item.changes)
            try:
                await self._write_through_outages(single)
            except DBAPIError as exc:
                self.metrics.invalid.labels("index_write_failed").inc()
                log.error("dropping the changes of %s seq %s: %s", item.source, item.seq, exc)
        cursor_only = Batch()
        cursor_only.cursors.update(cursors)
        await self._write_through_outages(cursor_only)


async def _first_of(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    """Until one of `events` is set, or `seconds` have passed."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def until_database_answers(work: Callable[[], Awaitable[T]], metrics: ConsumerMetrics) -> T:
    """Run `work`, again and again while the index database is unreachable.

    For reads done before any state changes (a repo state cache miss, the resync queue): a
    failed attempt can simply be repeated, whereas giving up on an event would let the cursor
    pass an event whose changes were never written.
    """
    backoff = Backoff(0.1, 5.0)
    while True:
        try:
            return await work()
        except Exception as exc:
            if not is_outage(exc):
                raise
            metrics.write_retries.labels("unavailable").inc()
            await asyncio.sleep(backoff.next_delay())
