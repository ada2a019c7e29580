"""Scheduled resyncs: desynchronized repos, queued in `repo_state`, fetched when due.

Repos become desynchronized when their chain breaks and an immediate resync fails, when a
backfill queues them, or when a deleted account comes back. The scheduler polls `repo_state`
for those whose `resync_after` has come, and queues a `ResyncJob` on each one's lane - so a
snapshot and the live events of that DID stay in order - keeping at most twice the fetch
concurrency in flight. A job re-checks the DID's state first: a lane may have resynced it since.

A partitioned consumer (`CONSUMER_PARTITION`) takes only its own DIDs from the queue, which holds
every partition's. SQL cannot select a share by hash portably, so it pages through the queue in
order, keeping its place between polls and looking at no more than `SCAN_BUDGET` rows per poll:
a long run of other partitions' repos ahead of its own (one partition's backfill) costs it a
bounded amount of work per poll, and it still reaches its repos behind them within a few polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from firehose_consumer.db import queries
from firehose_consumer.indexer import IndexWriter, Submission, until_database_answers
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.partition import WHOLE, Partition
from firehose_consumer.process import EventProcessor, now_ms
from firehose_consumer.state import RepoStates

POLL_S: Final = 1.0
SCAN_BUDGET: Final = 10_000  # queue rows a partitioned consumer reads per poll, at most


@dataclass(frozen=True, slots=True)
class ResyncJob:
    did: str


class ResyncScheduler:
    def __init__(
        self,
        *,
        reader_engine: AsyncEngine,
        states: RepoStates,
        processor: EventProcessor,
        writer: IndexWriter,
        metrics: ConsumerMetrics,
        submit: Callable[[str, ResyncJob], None],
        concurrency: int,
        partition: Partition = WHOLE,
    ) -> None:
        self.reader_engine = reader_engine
        self.states = states
        self.processor = processor
        self.writer = writer
        self.metrics = metrics
        self.submit = submit
        self.partition = partition
        self.room = 2 * concurrency
        self._scan_from: queries.DueKey | None = None
        self.in_flight: set[str] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due repos now (after a backfill queued some)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            free = self.room - len(self.in_flight)
            if free > 0:
                due = await until_database_answers(
                    partial(self._due, free + len(self.in_flight)), self.metrics
                )
                for did in due:
                    if did not in self.in_flight and len(self.in_flight) < self.room:
                        self.in_flight.add(did)
                        self.states.tracked.add(did)
                        self.submit(did, ResyncJob(did))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _due(self, limit: int) -> list[str]:
        async with self.reader_engine.connect() as conn:
            if self.partition.is_whole:
                return await queries.due_resyncs(conn, now_ms(), limit)
            return await self._due_share(conn, limit)

    async def _due_share(self, conn: AsyncConnection, limit: int) -> list[str]:
        """Up to `limit` due repos of our partition, continuing the scan where it stopped."""
        found: list[str] = []
        page = min(SCAN_BUDGET, max(64, 4 * limit * self.partition.count))
        scanned, now = 0, now_ms()
        while scanned < SCAN_BUDGET:
            keys = await queries.due_resyncs_after(conn, now, page, self._scan_from)
            scanned += len(keys)
            found.extend(did for _, did in keys if self.partition.owns(did))
            if len(keys) < page or len(found) >= limit:
                self._scan_from = None  # the end, or enough: the next poll starts at the oldest
                break
            self._scan_from = keys[-1]
        return found[:limit]

    async def resync(self, did: str) -> None:
        """A job's work, on the DID's lane."""
        try:
            state = await until_database_answers(partial(self.states.get, did), self.metrics)
            if state is None or not state.desynchronized:
                return
            if state.resync_after is not None and state.resync_after > now_ms():
                return
            changes = await self.processor.resync(state, "scheduled")
            self.writer.submit(Submission(None, None, changes))
        finally:
            self.in_flight.discard(did)
