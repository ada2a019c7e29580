"""Connection behaviour: reconnects (drops, error frames, stalls, pauses), FutureCursor, backfill.

No test waits a fixed time: each waits for an observable condition (cursor, metric, exit).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

from sqlalchemy import text

from atcore.index.engine import create_index_engine, migrate
from atcore.index.schema import DESYNCHRONIZED, SYNCHRONIZED
from tests.firehose_consumer.conftest import (
    WAIT_S,
    IndexReader,
    consumer_settings,
    eventually,
    running,
)
from tests.firehose_consumer.fakenet import Network
from tests.firehose_consumer.test_consumer_loopback import LYON, PARIS, metric

ROOT = Path(__file__).resolve().parents[2]


async def _publish_checkins(network: Network, count: int) -> tuple[list[tuple[str, str]], int]:
    repo = await network.new_repo()
    keys, last = [], 0
    for i in range(count):
        rkey, body = repo.checkin_with_post(*(PARIS if i % 2 else LYON), f"Place {i}")
        last = await network.commit(repo, body)
        keys.append((repo.did, rkey))
    return keys, last


async def _cursor_is(reader: IndexReader, network: Network, seq: int) -> bool:
    return await reader.cursor(network.host.ws_url) == seq


async def test_dropped_connection_resumes_from_the_last_seq(
    network: Network, sqlite_url: str
) -> None:
    first, last = await _publish_checkins(network, 5)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _cursor_is(reader, network, last), "the first five")
        await network.host.drop_connections()
        more, last = await _publish_checkins(network, 5)
        await eventually(lambda: _cursor_is(reader, network, last), "the next five")
        assert set(await reader.checkins()) == set(first + more)
        assert network.host.connections >= 2
        assert network.host.cursors_asked[-1] == "5"  # resumed exactly after the last event
        assert await metric(consumer, "firehose_reconnects_total") >= 1
    await reader.close()


async def test_error_frame_makes_the_consumer_reconnect(network: Network, sqlite_url: str) -> None:
    network.host.error_once = "ConsumerTooSlow"
    keys, last = await _publish_checkins(network, 3)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _cursor_is(reader, network, last), "events after the error")
        assert set(await reader.checkins()) == set(keys)
        reason = "error_frame:ConsumerTooSlow"
        assert await metric(consumer, "firehose_reconnects_total", reason=reason) >= 1
        assert await metric(consumer, "firehose_stream_errors_total", error="ConsumerTooSlow") >= 1
    await reader.close()


async def test_a_stalled_stream_is_abandoned_and_reopened(
    network: Network, sqlite_url: str
) -> None:
    settings = consumer_settings(network, sqlite_url, receive_timeout_s=0.3)
    reader = IndexReader(sqlite_url)
    async with running(settings) as consumer:
        await eventually(
            lambda: _metric_at_least(consumer, "firehose_reconnects_total", 1, reason="stall"),
            "a stall to be detected",
        )
        keys, last = await _publish_checkins(network, 2)
        await eventually(lambda: _cursor_is(reader, network, last), "events after the stall")
        assert set(await reader.checkins()) == set(keys)
    await reader.close()


async def _metric_at_least(consumer: object, name: str, floor: float, **labels: str) -> bool:
    return await metric(consumer, name, **labels) >= floor  # type: ignore[arg-type]


async def test_future_cursor_stops_the_source_and_keeps_the_cursor(
    network: Network, sqlite_url: str
) -> None:
    await _publish_checkins(network, 2)
    engine = create_index_engine(sqlite_url)
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO source_cursor VALUES (:s, 1000, 0)"), {"s": network.host.ws_url}
        )
    await engine.dispose()
    settings = consumer_settings(network, sqlite_url)
    async with running(settings) as consumer:
        code = await asyncio.wait_for(consumer.task, WAIT_S)
        assert code == 2
        registry = consumer.consumer.metrics.registry
        gauge = registry.get_sample_value("firehose_future_cursor", {"source": network.host.ws_url})
        assert gauge == 1
    reader = IndexReader(sqlite_url)
    assert await reader.cursor(network.host.ws_url) == 1000  # never silently reset
    assert await reader.checkins() == {}
    await reader.close()


async def test_outdated_cursor_backfills_the_host(network: Network, sqlite_url: str) -> None:
    keys, last = await _publish_checkins(network, 3)
    more, last = await _publish_checkins(network, 2)
    network.host.oldest_seq = last + 1  # every event has left the replay window
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)):
        await eventually(lambda: _count_is(reader, 5), "the backfilled check-ins")
        assert set(await reader.checkins()) == set(keys + more)
        for did in {did for did, _ in keys + more}:
            state = await reader.repo(did)
            assert state is not None
            assert state["sync_status"] == SYNCHRONIZED
            assert state["rev"] == network.host.repos[did].rev
    await reader.close()


async def _count_is(reader: IndexReader, n: int) -> bool:
    return len(await reader.checkins()) == n


async def test_reader_pauses_while_the_database_is_blocked(
    network: Network, sqlite_url: str, tmp_path: Path
) -> None:
    settings = consumer_settings(
        network, sqlite_url, queue_max_frames=8, max_inflight=8, pause_grace_s=0.2,
        batch_max_events=4,
    )  # fmt: skip
    reader = IndexReader(sqlite_url)
    async with running(settings) as consumer:
        await eventually(reader.has_tables, "the schema")
        blocker = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None, timeout=30)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        keys, last = await _publish_checkins(network, 60)
        await eventually(
            lambda: _metric_at_least(consumer, "firehose_reconnects_total", 1, reason="paused"),
            "the reader to pause",
        )
        blocker.execute("ROLLBACK")
        blocker.close()
        await eventually(lambda: _cursor_is(reader, network, last), "everything after the block")
        assert set(await reader.checkins()) == set(keys)
    await reader.close()


async def test_backfill_command_queues_every_repo_for_resync(
    network: Network, sqlite_url: str
) -> None:
    keys, last = await _publish_checkins(network, 3)
    network.host.oldest_seq = last + 1  # the consumer could not replay these
    env = {
        **os.environ,
        "FIREHOSE_SERVICES": network.host.ws_url,
        "DATABASE_URL": sqlite_url,
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firehose_consumer", "backfill", network.host.url,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    reader = IndexReader(sqlite_url)
    state = await reader.repo(keys[0][0])
    assert state is not None
    assert state["sync_status"] == DESYNCHRONIZED
    settings = consumer_settings(network, sqlite_url, backfill_on_outdated=False)
    async with running(settings):
        await eventually(lambda: _count_is(reader, 3), "the queued repo to be resynced")
        assert set(await reader.checkins()) == set(keys)
    await reader.close()
