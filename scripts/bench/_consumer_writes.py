"""The `writes` section of the consumer benchmark: the index writes alone, into SQLite.

Where does a check-in's time go, verification or the database? This section answers the second
half. Every recorded check-in commit is first turned into its index changes by the consumer's
own `EventProcessor` (untimed; verification with signatures off, since only the changes
matter), then the changes are written the way `IndexWriter` writes them: coalesced `Batch`es of
`CONSUMER_BATCH_EVENTS` events, each in one transaction with the source cursor
(`firehose_consumer.db.queries.apply_batch` through the 40001-retrying `run_transaction`), into
a fresh WAL SQLite index on local disk. Reported: check-ins written per wall second, and per
CPU second of this process (the SQLite work happens in aiosqlite's thread and is included).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.index.engine import create_index_engine, migrate
from atcore.index.retry import run_transaction
from atcore.lexicon import Catalog
from firehose_consumer.changes import Batch, EventChanges
from firehose_consumer.db.queries import apply_batch
from firehose_consumer.decode import decode_frame
from firehose_consumer.events import CommitEvent
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.process import EventProcessor, ProcessorOptions, now_ms
from firehose_consumer.settings import DEFAULT_LEXICON_DIR, ConsumerSettings
from firehose_consumer.state import RepoStates
from firehose_consumer.verify import CommitVerifier
from scripts.bench._consumer_inproc import ManifestDocuments
from scripts.bench._consumer_stream import Recording
from scripts.bench._util import Measurement

SOURCE = "wss://bench.invalid"
TASK = "index writes alone, SQLite (check-ins/s)"


async def _no_stored_state(_did: str) -> None:
    return None  # a fresh index: nothing stored yet


async def index_changes(recording: Recording, frames: list[bytes]) -> list[EventChanges]:
    """Each check-in commit's index changes, as the consumer's lanes produce them."""
    processor = EventProcessor(
        states=RepoStates(_no_stored_state, set()),
        verifier=CommitVerifier(ManifestDocuments(recording), verify_signatures=False),
        fetcher=None,
        catalog=Catalog.from_directory(DEFAULT_LEXICON_DIR),
        metrics=ConsumerMetrics(),
        forget_identity=lambda _did: None,
        options=ProcessorOptions(resync_new_repos=False),
    )
    changes = []
    for frame in frames:
        event = decode_frame(frame, lambda _did, touches: touches)
        if isinstance(event, CommitEvent):
            found = await processor.commit(event)
            if found is not None and found.upserts:
                changes.append(found)
    return changes


async def _write_all(url: str, changes: list[EventChanges], batch_events: int) -> float:
    engine = create_index_engine(url)
    try:
        await migrate(engine)
        started = time.perf_counter()
        for start in range(0, len(changes), batch_events):
            batch = Batch()
            for item in changes[start : start + batch_events]:
                batch.add(item)
            batch.set_cursor(SOURCE, start + batch_events)
            await run_transaction(engine, partial(_apply, batch=batch))
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def _apply(conn: AsyncConnection, *, batch: Batch) -> None:
    await apply_batch(conn, batch, now_ms())


def writes_section(recording: Recording, frames: list[bytes], scratch: Path) -> list[Measurement]:
    changes = asyncio.run(index_changes(recording, frames))
    checkins = sum(len(item.upserts) for item in changes)
    batch_events = ConsumerSettings(sources=()).batch_max_events
    url = f"sqlite+aiosqlite:///{scratch / 'writes.sqlite'}"
    cpu_started = time.process_time()
    wall = asyncio.run(_write_all(url, changes, batch_events))
    cpu = time.process_time() - cpu_started
    note = f"{checkins:,} check-ins in batches of {batch_events} events"
    return [
        Measurement(TASK, "ours, per wall second", checkins / wall, note),
        Measurement(TASK, "ours, per CPU second", checkins / cpu, "incl. SQLite's thread"),
    ]
