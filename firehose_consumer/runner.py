"""The running consumer: wiring, the dispatcher, the resync scheduler, and shutdown.

`Pipeline.open` (called by `consumer.Consumer` once the index is migrated) loads each source's
cursor and the tracked DIDs; `serve` then runs until `stop()` (SIGTERM/SIGINT in `__main__`) or
until every source has stopped on `FutureCursor` (exit code 2: an operator must look). Tasks:

- one `StreamReader` per source, putting frames on the shared `FrameQueue`;
- the dispatcher: takes frames (only while fewer than `max_inflight` events are in processing),
  decodes and filters them, registers their seqs, and hands events to the DID's lane;
- the lanes (`EventProcessor`), which submit every outcome to the `IndexWriter`;
- the resync scheduler: polls `repo_state` for desynchronized repos that are due and queues a
  resync on each one's lane (backfills land here too);
- the metrics server.

Partitions (`CONSUMER_PARTITION=i/n`, see `firehose_consumer.partition`): the `Interest` answers
no for other partitions' DIDs, so their frames are `Skipped` before strict decoding and their seqs
complete at once; tracked DIDs, the resync queue and backfills are the partition's only. Cursor
loading: each partition has its own row (`<URL>#partition=i/n`; the bare URL when n = 1). Without
one (first start, or n changed) it resumes from the lowest committed seq of stored rows that
together cover its DIDs (an older complete partitioning, or the unpartitioned row), or from
`CONSUMER_START_CURSOR` or below when none cover them (`resume_seq`): re-partitioning never loses
events, it replays some, harmlessly (idempotent upserts, stale revs skipped). Partitions started
together on a fresh index race to migrate it; the loser's DDL fails, and it tries again.

Shutdown finishes the batch in flight: readers close, the dispatcher stops, lanes get a short
grace to finish their current event, and the writer commits whatever was submitted. Events not
finished stay above the committed cursor and are read again on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore.identity import DidResolver
from atcore.lexicon import Catalog
from firehose_consumer.backfill import BackfillError, schedule_backfill
from firehose_consumer.changes import RepoStateRow
from firehose_consumer.db import queries
from firehose_consumer.decode import Limits, Rejected, Skipped, StreamError, decode_frame
from firehose_consumer.events import (
    AccountEvent,
    CommitEvent,
    IdentityEvent,
    InfoEvent,
    RepoEvent,
    SyncEvent,
)
from firehose_consumer.hosting import HostGuard
from firehose_consumer.indexer import (
    IndexWriter,
    Submission,
    WriterOptions,
    until_database_answers,
)
from firehose_consumer.metrics import ConsumerMetrics, metrics_app
from firehose_consumer.partition import resume_seq
from firehose_consumer.pipeline import FrameQueue, Lanes, SeqTracker
from firehose_consumer.process import EventProcessor, ProcessorOptions
from firehose_consumer.resync import RepoFetcher
from firehose_consumer.resync_scheduler import ResyncJob, ResyncScheduler
from firehose_consumer.settings import ConsumerSettings, Source
from firehose_consumer.state import RepoStates
from firehose_consumer.stream import ReaderExit, ReaderOptions, StreamReader
from firehose_consumer.verify import CommitVerifier

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_FUTURE_CURSOR: Final = 2
SHUTDOWN_GRACE_S: Final = 5.0
YIELD_EVERY: Final = 64  # frames dispatched between explicit yields to the readers and writer


@dataclass(frozen=True, slots=True)
class SourceEvent:
    source: str
    event: RepoEvent


LaneItem = SourceEvent | ResyncJob


class Pipeline:
    """Every running part of the consumer, wired together."""

    def __init__(
        self,
        *,
        settings: ConsumerSettings,
        metrics: ConsumerMetrics,
        engine: AsyncEngine,
        reader_engine: AsyncEngine,
        session: aiohttp.ClientSession,
        states: RepoStates,
        trackers: dict[str, SeqTracker],
    ) -> None:
        self.settings, self.metrics = settings, metrics
        self.engine, self.reader_engine, self.session = engine, reader_engine, session
        self.states, self.trackers = states, trackers
        self.partition = settings.partition
        # Per source (by index, like the queue's frames): the key of its tracker and cursor row.
        self.cursor_keys = tuple(self.partition.cursor_key(s.name) for s in settings.sources)
        # The public URL of each PDS source, by cursor key (relays: None, nothing to check).
        self.pds_of_key = {
            key: source.pds_endpoint
            for key, source in zip(self.cursor_keys, settings.sources, strict=True)
        }
        self.writer = IndexWriter(
            engine, trackers, states, metrics,
            WriterOptions(max_batch_events=settings.batch_max_events,
                          max_delay_s=settings.batch_max_delay_s),
        )  # fmt: skip
        self.resolver = DidResolver(
            session=session, plc_url=settings.did_plc_url, allow_http_loopback=settings.dev_mode
        )
        catalog = Catalog.from_directory(settings.lexicon_dir)
        self.processor = EventProcessor(
            states=states,
            verifier=CommitVerifier(
                self.resolver,
                verify_signatures=settings.verify_signatures,
                hosts=HostGuard(self.resolver),
            ),
            fetcher=RepoFetcher(
                session,
                self.resolver,
                catalog,
                verify_signatures=settings.verify_signatures,
                allow_http_loopback=settings.dev_mode,
            ),
            catalog=catalog,
            metrics=metrics,
            forget_identity=self.resolver.invalidate,
            options=ProcessorOptions(
                resync_new_repos=settings.resync_new_repos,
                resync_concurrency=settings.resync_concurrency,
            ),
        )
        self.lanes: Lanes[LaneItem] = Lanes(self._process)
        self.scheduler = ResyncScheduler(
            reader_engine=reader_engine, states=states, processor=self.processor,
            writer=self.writer, metrics=metrics, submit=self.lanes.submit,
            concurrency=settings.resync_concurrency, partition=settings.partition,
        )  # fmt: skip
        self.queue = FrameQueue(settings.queue_max_frames, settings.queue_max_bytes)
        self.exit_code = 0
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(
        cls,
        settings: ConsumerSettings,
        metrics: ConsumerMetrics,
        engine: AsyncEngine,
        reader_engine: AsyncEngine,
        session: aiohttp.ClientSession,
    ) -> Pipeline:
        """Load the cursors and tracked repos, then build the parts."""
        partition = settings.partition
        owns = None if partition.is_whole else partition.owns
        async with reader_engine.connect() as conn:
            stored = {s.name: await queries.load_cursors_of(conn, s.name) for s in settings.sources}
            tracked = await queries.load_tracked_dids(conn, owns)
        cursors = {
            partition.cursor_key(name): resume_seq(partition, name, rows, settings.start_cursor)
            for name, rows in stored.items()
        }
        log.info("starting partition %s: cursors %s, %d tracked repos",
                 partition, cursors, len(tracked))  # fmt: skip

        async def load_state(did: str) -> RepoStateRow | None:
            async with reader_engine.connect() as conn:
                return await queries.load_repo_state(conn, did)

        states = RepoStates(load_state, tracked)
        trackers = {key: SeqTracker(seq) for key, seq in cursors.items()}
        return cls(
            settings=settings, metrics=metrics, engine=engine, reader_engine=reader_engine,
            session=session, states=states, trackers=trackers,
        )  # fmt: skip

    async def serve(self, stop: asyncio.Event, *, on_metrics_port: Any = None) -> int:
        """Run until `stop` is set or every source has stopped; returns the exit code."""
        settings = self.settings
        reader_stop, writer_stop = asyncio.Event(), asyncio.Event()
        readers = [
            StreamReader(
                index,
                source,
                session=self.session,
                queue=self.queue,
                metrics=self.metrics,
                resume_cursor=_resume(self.trackers[self.cursor_keys[index]]),
                options=ReaderOptions(
                    receive_timeout_s=settings.receive_timeout_s,
                    reconnect_base_s=settings.reconnect_base_s,
                    reconnect_max_s=settings.reconnect_max_s,
                    pause_grace_s=settings.pause_grace_s,
                ),
            )
            for index, source in enumerate(settings.sources)
        ]
        metrics_runner = await self._start_metrics(on_metrics_port)
        writer_task = asyncio.create_task(self.writer.run(writer_stop), name="writer")
        dispatcher = asyncio.create_task(self._dispatch(), name="dispatcher")
        scheduler = asyncio.create_task(self.scheduler.run(), name="resync-scheduler")
        reader_tasks = [asyncio.create_task(r.run(reader_stop), name=f"reader:{r.source.name}")
                        for r in readers]  # fmt: skip
        stopper = asyncio.create_task(stop.wait())
        try:
            await self._until_done(stopper, reader_tasks, writer_task, dispatcher)
        finally:
            reader_stop.set()
            for task in (*reader_tasks, dispatcher, scheduler, stopper, *self._background):
                task.cancel()
            await asyncio.gather(*reader_tasks, dispatcher, scheduler, stopper, *self._background,
                                 return_exceptions=True)  # fmt: skip
            await self._drain_lanes()
            writer_stop.set()
            await writer_task
            if metrics_runner is not None:
                await metrics_runner.cleanup()
        return self.exit_code

    async def _until_done(
        self,
        stopper: asyncio.Task[Any],
        readers: list[asyncio.Task[ReaderExit]],
        writer: asyncio.Task[None],
        dispatcher: asyncio.Task[None],
    ) -> None:
        watched: set[asyncio.Task[Any]] = {stopper, writer, dispatcher, *readers}
        while True:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                return
            for task in done & {writer, dispatcher}:
                task.result()  # a crash of the writer or dispatcher is fatal: raise it
            watched -= done
            if all(task.done() for task in readers):
                if any(t.result() is ReaderExit.FUTURE_CURSOR for t in readers):
                    self.exit_code = EXIT_FUTURE_CURSOR
                return

    async def _drain_lanes(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.lanes.wait_idle(), SHUTDOWN_GRACE_S)
        await self.lanes.cancel()

    async def _start_metrics(self, on_port: Any) -> web.AppRunner | None:
        if self.settings.metrics_port is None:
            return None
        runner = web.AppRunner(metrics_app(self.metrics), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.metrics_host, self.settings.metrics_port)
        await site.start()
        if on_port is not None:
            addresses = runner.addresses
            on_port(addresses[0][1] if addresses else self.settings.metrics_port)
        return runner

    # -- dispatch ----------------------------------------------------------------------------

    def _interest(self, did: str, touches_checkins: bool) -> bool:
        # The partition test hashes the DID: only for the few repos wanted otherwise.
        wanted = touches_checkins or self.states.is_tracked(did) or self.lanes.busy(did)
        return wanted and self.partition.owns(did)

    def _inflight(self) -> int:
        return self.lanes.pending + self.writer.uncommitted

    async def _dispatch(self) -> None:
        limits = Limits(max_frame_bytes=self.settings.max_frame_bytes)
        sources = self.settings.sources
        dispatched = 0
        while True:
            while self._inflight() >= self.settings.max_inflight:
                await self.writer.wait_committed()
            dispatched += 1
            if dispatched % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a full queue never suspends get(): let others run
            index, frame = await self.queue.get()
            self.metrics.queue_depth.set(len(self.queue))
            self.metrics.inflight.set(self._inflight())
            decoded = decode_frame(frame, self._interest, limits)
            self._route(sources[index], self.cursor_keys[index], decoded)

    def _route(self, source: Source, key: str, decoded: object) -> None:
        tracker = self.trackers[key]
        if isinstance(decoded, Rejected):
            # Its seq is as untrustworthy as the rest of it: never let it move the cursor.
            self.metrics.invalid.labels(decoded.reason).inc()
            log.info("%s: rejected frame (%s) %s", source.name, decoded.reason, decoded.detail)
            return
        if isinstance(decoded, Skipped):
            self.metrics.skipped.labels(decoded.reason).inc()
            if decoded.seq is not None and tracker.register(decoded.seq):
                tracker.complete(decoded.seq)
            return
        if isinstance(decoded, StreamError):
            self.metrics.stream_errors.labels(source.name, decoded.error).inc()
            return
        if isinstance(decoded, InfoEvent):
            self._on_info(source, decoded)
            return
        assert isinstance(decoded, CommitEvent | SyncEvent | IdentityEvent | AccountEvent)
        if not tracker.register(decoded.seq):
            self.metrics.skipped.labels("replayed").inc()
            return
        self.metrics.event_received(key, type(decoded).__name__)
        self.lanes.submit(decoded.did, SourceEvent(key, decoded))

    def _on_info(self, source: Source, info: InfoEvent) -> None:
        log.warning("%s: #info %s: %s", source.name, info.name, info.message)
        if info.name == "OutdatedCursor" and self.settings.backfill_on_outdated:
            self._spawn(self._backfill(source))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _backfill(self, source: Source) -> None:
        try:
            dids = await schedule_backfill(
                self.engine, self.session, source.http_base, self.partition.owns
            )
        except BackfillError as exc:
            log.error("%s: backfill could not list repositories: %s", source.name, exc)
            return
        self.states.tracked.update(dids)
        log.info("%s: backfill queued %d repositories (partition %s)",
                 source.name, len(dids), self.partition)  # fmt: skip
        self.scheduler.wake()

    # -- lanes -------------------------------------------------------------------------------

    async def _process(self, did: str, item: LaneItem) -> None:
        if isinstance(item, ResyncJob):
            await self.scheduler.resync(item.did)
            return
        event = item.event
        try:
            handle = partial(self._handle, event, self.pds_of_key[item.source])
            changes = await until_database_answers(handle, self.metrics)
        except Exception:  # never let one event wedge the cursor; CancelledError passes
            log.exception("processing %s seq %s failed", type(event).__name__, event.seq)
            self.metrics.invalid.labels("processing_error").inc()
            changes = None
        self.metrics.observe_time(item.source, _event_time(event.time))
        self.writer.submit(Submission(item.source, event.seq, changes))

    async def _handle(self, event: RepoEvent, host: str | None) -> Any:
        if isinstance(event, CommitEvent):
            return await self.processor.commit(event, host)
        if isinstance(event, SyncEvent):
            return await self.processor.sync(event, host)
        if isinstance(event, AccountEvent):
            return await self.processor.account(event, host)
        self.processor.identity(event)
        return None


def _resume(tracker: SeqTracker) -> Any:
    return lambda: tracker.last_registered


def _event_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
