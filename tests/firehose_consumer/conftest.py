"""Fixtures for consumer tests: a loopback network, consumer settings, and a running consumer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from atcore.index.engine import create_index_engine
from atcore.index.schema import checkin, repo_state, source_cursor
from firehose_consumer.consumer import Consumer
from firehose_consumer.settings import ConsumerSettings, parse_source
from tests.firehose_consumer.fakenet import FakeHost, Network, PlcDirectory

WAIT_S = 60.0  # generous deadline for eventual conditions; no test asserts on timing


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    plc = PlcDirectory(tmp_path / "plc")
    host = FakeHost()
    await plc.start()
    await host.start()
    try:
        yield Network(plc, host)
    finally:
        await host.drop_connections()
        await host.stop()
        await plc.stop()


def consumer_settings(network: Network, database_url: str, **overrides: Any) -> ConsumerSettings:
    settings = ConsumerSettings(
        sources=(parse_source(network.host.ws_url),),
        database_url=database_url,
        did_plc_url=network.plc.url,
        start_cursor=0,
        metrics_port=0,
        dev_mode=True,
        receive_timeout_s=30.0,
        reconnect_base_s=0.05,
        reconnect_max_s=0.5,
        batch_max_delay_s=0.01,
    )
    return replace(settings, **overrides)


@dataclass
class RunningConsumer:
    consumer: Consumer
    task: asyncio.Task[int]
    database_url: str

    async def stop(self) -> int:
        self.consumer.stop()
        return await asyncio.wait_for(self.task, WAIT_S)


@contextlib.asynccontextmanager
async def running(settings: ConsumerSettings) -> AsyncIterator[RunningConsumer]:
    consumer = Consumer(settings)
    task = asyncio.create_task(consumer.run())
    handle = RunningConsumer(consumer, task, settings.database_url)
    try:
        yield handle
    finally:
        if not task.done():
            consumer.stop()
            await asyncio.wait_for(task, WAIT_S)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until true; fail (naming `what`) after a generous deadline."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class IndexReader:
    """Read the index the way tests need it (a separate read-only engine).

    Every reader is disposed at the end of its test, even when the test fails early.
    """

    open_readers: ClassVar[list[IndexReader]] = []

    def __init__(self, url: str) -> None:
        self.engine = create_index_engine(url, read_only=True)
        IndexReader.open_readers.append(self)

    async def checkins(self) -> dict[tuple[str, str], dict[str, Any]]:
        if not await self.has_tables():
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(checkin))
            return {(r.author_did, r.rkey): dict(r._mapping) for r in rows}

    async def cursor(self, source: str) -> int | None:
        if not await self.has_tables():
            return None
        async with self.engine.connect() as conn:
            query = select(source_cursor.c.seq).where(source_cursor.c.source == source)
            value = (await conn.execute(query)).scalar_one_or_none()
            return None if value is None else int(value)

    async def repo(self, did: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(repo_state).where(repo_state.c.did == did))).first()
            return None if row is None else dict(row._mapping)

    async def has_tables(self) -> bool:
        async with self.engine.connect() as conn:
            try:
                await conn.execute(text("SELECT 1 FROM source_cursor LIMIT 1"))
            except DBAPIError:
                return False
            return True

    async def close(self) -> None:
        await self.engine.dispose()


@pytest.fixture(autouse=True)
async def _dispose_readers() -> AsyncIterator[None]:
    yield
    while IndexReader.open_readers:
        await IndexReader.open_readers.pop().close()


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
