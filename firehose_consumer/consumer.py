"""The consumer process: opens the index and an HTTP session, runs a `Pipeline`, closes them.

`Consumer(settings).run()` returns the process's exit code (see `runner.Pipeline.serve`);
`stop()` (SIGTERM/SIGINT in `__main__`) asks it to finish the batch in flight and return.
Partitions of one stream start together on a fresh index, so the migration may race another
process's: `migrate_racing` retries it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import aiohttp
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore.index.engine import create_index_engine, migrate
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.runner import Pipeline
from firehose_consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)

MIGRATE_ATTEMPTS: Final = 5


class Consumer:
    """The process: opens the database and HTTP session, runs a `Pipeline`, closes them."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.metrics = ConsumerMetrics(partition=str(settings.partition))
        self.metrics_port: int | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        settings = self.settings
        engine = create_index_engine(settings.database_url)
        reader_engine = create_index_engine(settings.database_url, read_only=True)
        session = aiohttp.ClientSession()
        try:
            await migrate_racing(engine)
            pipeline = await Pipeline.open(settings, self.metrics, engine, reader_engine, session)
            return await pipeline.serve(self._stop, on_metrics_port=self._set_metrics_port)
        finally:
            await session.close()
            await reader_engine.dispose()
            await engine.dispose()

    def _set_metrics_port(self, port: int) -> None:
        self.metrics_port = port


async def migrate_racing(engine: AsyncEngine) -> None:
    """`migrate`, tried again when a concurrent migration of another partition got there first."""
    for attempt in range(1, MIGRATE_ATTEMPTS + 1):
        try:
            await migrate(engine)
            return
        except DBAPIError as exc:
            if attempt == MIGRATE_ATTEMPTS:
                raise
            log.warning("migrating the index failed (%s); trying again", type(exc).__name__)
            await asyncio.sleep(0.2 * attempt)
