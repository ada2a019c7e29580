"""Bounded firehose history: a background task deleting events older than the backfill window.

Every event is a `repo_seq` row, and `subscribeRepos` never replays one older than the backfill
window (`PDS_SEQUENCER_BACKFILL_HOURS`), so rows older than the window only take space. The pruner
deletes them every `interval` (and once shortly after start), keeping a `margin` beyond the
window so a subscriber whose replay is just starting at the window's edge is not overtaken.

Short write transactions
    SQLite has one writer and every PDS write waits for it, so a pass deletes `chunk_size` rows
    per transaction and pauses between chunks, letting queued writes take the write connection
    (its pool hands the connection to whoever asks first, so without the pause a tight loop of
    chunks could keep it). A pass over a backlog of a million rows is then a few hundred short
    transactions rather than one long one.

What a subscriber sees
    Each chunk records the last deleted seq (`sequencer_state.pruned_through`, in the same
    transaction; see `pds.db.seq_retention`). A cursor below it gets `#info OutdatedCursor` and
    starts at the window, and a replay that the pruner overtakes ends with `ConsumerTooSlow`
    rather than skipping events (see `pds.firehose.outbox`). `last_seq` is never touched: new
    events keep their increasing seqs.

`SequencePruner.run_once()` is one pass (tests and operators call it on demand through
`SEQUENCE_PRUNER`); `sequence_pruner_context` runs it for the application's lifetime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from aiohttp import web

from pds.background import in_background, repeat
from pds.context import CONTEXT
from pds.db import seq_retention
from pds.db.engine import Database
from pds.firehose.metrics import FirehoseMetrics
from pds.firehose.service import FIREHOSE

log = logging.getLogger(__name__)

DEFAULT_MARGIN: Final = timedelta(hours=1)
DEFAULT_FIRST_RUN_DELAY: Final = timedelta(minutes=1)
# A thousand frame bodies (a few KB each) per transaction: a few milliseconds of writer time.
DEFAULT_CHUNK_SIZE: Final = 1000
DEFAULT_PAUSE: Final = timedelta(milliseconds=50)


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one pass did: rows deleted, write transactions that deleted them, the record after."""

    deleted: int = 0
    chunks: int = 0
    pruned_through: int = 0


class SequencePruner:
    """Deletes firehose events sequenced before the window minus a margin, in chunks."""

    def __init__(
        self,
        db: Database,
        window_start_ms: Callable[[], int],
        *,
        metrics: FirehoseMetrics | None = None,
        margin: timedelta = DEFAULT_MARGIN,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        pause: timedelta = DEFAULT_PAUSE,
    ) -> None:
        if margin < timedelta(0) or pause < timedelta(0) or chunk_size < 1:
            raise ValueError("margin and pause must be >= 0, chunk_size positive")
        self._db = db
        self._window_start_ms = window_start_ms
        self._metrics = metrics
        self.margin = margin
        self.chunk_size = chunk_size
        self.pause = pause
        self._pass_lock = asyncio.Lock()

    def cutoff_ms(self) -> int:
        """Events sequenced before this instant are deleted by the next pass."""
        return self._window_start_ms() - int(self.margin.total_seconds() * 1000)

    async def run_once(self) -> PruneReport:
        """One pass: delete chunk after chunk until no event older than the cutoff is left."""
        async with self._pass_lock:  # the periodic task and a direct call never overlap
            report = await self._prune_before(self.cutoff_ms())
        if self._metrics is not None:
            self._metrics.pruned_through.set(report.pruned_through)
        return report

    async def _prune_before(self, cutoff_ms: int) -> PruneReport:
        deleted = chunks = 0
        while True:
            async with self._db.transaction() as conn:
                chunk = await seq_retention.prune_oldest(
                    conn, sequenced_before_ms=cutoff_ms, limit=self.chunk_size
                )
            if chunk.deleted:
                deleted += chunk.deleted
                chunks += 1
                if self._metrics is not None:
                    self._metrics.pruned(chunk.deleted, chunk.pruned_through)
            if not chunk.more:
                return PruneReport(deleted, chunks, chunk.pruned_through)
            await asyncio.sleep(self.pause.total_seconds())

    async def run_forever(self, interval: timedelta, first_run_delay: timedelta) -> None:
        """Prune after `first_run_delay`, then every `interval`, until cancelled; a failed pass
        is logged and tried again at the next one."""
        await repeat(
            self.run_once,
            interval=interval,
            first_delay=first_run_delay,
            what="firehose history pruning",
            worth_logging=lambda report: report.deleted > 0,
        )


# -- running it with the application ----------------------------------------------------------
SEQUENCE_PRUNER: Final = web.AppKey("pds_sequence_pruner", SequencePruner)


def sequence_pruner_context(
    *,
    margin: timedelta = DEFAULT_MARGIN,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    pause: timedelta = DEFAULT_PAUSE,
    first_run_delay: timedelta = DEFAULT_FIRST_RUN_DELAY,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A `cleanup_ctx` entry pruning firehose history in the background for the app's lifetime.

    Append it after the firehose's entry: it prunes against the firehose's own window (its
    config and clock), and reports to its metrics. The interval comes from the settings
    (`PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS`; 0 starts no task). The pruner is published under
    `SEQUENCE_PRUNER` either way, so tests and operators can run a pass on demand.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        firehose = app[FIREHOSE]
        pruner = SequencePruner(
            app[CONTEXT].db,
            firehose.window_start_ms,
            metrics=firehose.metrics,
            margin=margin,
            chunk_size=chunk_size,
            pause=pause,
        )
        app[SEQUENCE_PRUNER] = pruner
        seconds = app[CONTEXT].settings.sequencer_prune_interval_seconds
        if seconds == 0:
            yield
            return
        interval = timedelta(seconds=seconds)
        job = pruner.run_forever(interval, min(first_run_delay, interval))
        async with in_background(job, "firehose-pruner"):
            yield

    return run
