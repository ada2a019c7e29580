"""Exactly-once in effect: the consumer is killed (SIGKILL) again and again mid-ingest, and the
database is crashed and restarted mid-ingest; the final index must equal the ground truth.

The consumer runs as a real `python -m firehose_consumer` subprocess against the loopback network
of this test process. Kill points are chosen by watching the committed cursor move (plus a random
delay); the assertions are only about the final state, never about timing.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest

from tests.firehose_consumer.conftest import WAIT_S, IndexReader, eventually
from tests.firehose_consumer.fakenet import Network
from tests.firehose_consumer.scenario import (
    expected_index,
    index_view,
    new_scenario,
    publish_events,
)
from tests.pg import PgCluster, pg_cluster, wait_until_accepting  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
INGEST_EVENTS = 10_000


def consumer_env(network: Network, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "FIREHOSE_SERVICES": network.host.ws_url,
        "DATABASE_URL": database_url,
        "DID_PLC_URL": network.plc.url,
        "CONSUMER_DEV_MODE": "true",
        "CONSUMER_START_CURSOR": "0",
        "CONSUMER_METRICS_PORT": "off",
        "CONSUMER_RECONNECT_MAX": "0.5",
        "CONSUMER_BATCH_DELAY": "0.01",
        "CONSUMER_BATCH_EVENTS": "200",  # many commits per second: many possible kill points
        "PYTHONPATH": str(ROOT),
    }


@asynccontextmanager
async def consumer_process(
    env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "firehose_consumer", cwd=ROOT, env=env,
            stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _cursor_beyond(reader: IndexReader, source: str, floor: int) -> bool:
    cursor = await reader.cursor(source)
    return cursor is not None and cursor > floor


async def kill_repeatedly(
    network: Network, url: str, log: Path, kills: int, rng: random.Random, *, more: int
) -> list[tuple[int, int]]:
    """Start, wait for progress, SIGKILL soon after; `kills` times, publishing `more` events
    along the way. Returns (committed cursor, events published) at each kill."""
    reader = IndexReader(url)
    env = consumer_env(network, url)
    source = network.host.ws_url
    scenario = network.scenario  # type: ignore[attr-defined]
    kill_points = []
    for done in range(kills):
        await publish_events(network, scenario, more // kills, seed=rng.randrange(1 << 30))
        # Let it commit a random share of the backlog left for this kill, so the kills spread
        # over the whole ingest and each lands with work committed and work still outstanding.
        committed = await reader.cursor(source) or 0
        share = (network.host.seq - committed) / (kills - done) * rng.uniform(0.2, 0.6)
        floor = committed + max(1, int(share))
        async with consumer_process(env, log) as process:
            await eventually(
                partial(_cursor_beyond, reader, source, floor), "progress before a kill"
            )
            await asyncio.sleep(rng.uniform(0.0, 0.02))  # somewhere inside the next batches
            process.send_signal(signal.SIGKILL)
            assert await process.wait() == -signal.SIGKILL
        kill_points.append((await reader.cursor(source) or 0, network.host.seq))
    await reader.close()
    return kill_points


async def finish_and_stop(network: Network, url: str, log: Path) -> None:
    reader = IndexReader(url)
    last = network.host.seq
    connected = _connections_logged(log)
    async with consumer_process(consumer_env(network, url), log) as process:
        # Running (signal handlers installed) and caught up: then SIGTERM.
        await eventually(partial(_more_connections, log, connected), "the consumer to connect")
        await eventually(lambda: _cursor_is(reader, network.host.ws_url, last), "the final cursor")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
    await reader.close()


async def _cursor_is(reader: IndexReader, source: str, seq: int) -> bool:
    return await reader.cursor(source) == seq


async def assert_index_is_truth(network: Network, url: str) -> None:
    reader = IndexReader(url)
    actual = index_view(await reader.checkins())
    truth = expected_index(network.scenario)  # type: ignore[attr-defined]
    assert len(truth) > 100
    assert actual == truth
    for repo in network.scenario.repos:  # type: ignore[attr-defined]
        state = await reader.repo(repo.did)
        if state is not None and repo.did not in network.scenario.deleted:  # type: ignore[attr-defined]
            assert state["rev"] == repo.rev
    await reader.close()


@pytest.mark.slow
async def test_sigkill_during_ingest_loses_and_duplicates_nothing(
    network: Network, tmp_path: Path
) -> None:
    rng = random.Random(7)
    scenario = await new_scenario(network, repos=40, bystanders=5)
    network.scenario = scenario  # type: ignore[attr-defined]
    await publish_events(network, scenario, 8400, seed=1)
    url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    log = tmp_path / "consumer.log"
    kill_points = await kill_repeatedly(network, url, log, kills=8, rng=rng, more=1600)
    assert network.host.seq >= INGEST_EVENTS
    # The kills landed mid-ingest: work was committed and work was still outstanding.
    inside = [cursor for cursor, published in kill_points if 0 < cursor < published]
    assert len(inside) >= len(kill_points) // 2, kill_points
    await finish_and_stop(network, url, log)
    await assert_index_is_truth(network, url)


@pytest.mark.slow
async def test_database_crash_and_restart_mid_ingest_postgresql(
    network: Network,
    tmp_path: Path,
    pg_cluster: PgCluster,  # noqa: F811
) -> None:
    url = pg_cluster.url(pg_cluster.create_database())
    scenario = await new_scenario(network, repos=30, bystanders=3)
    network.scenario = scenario  # type: ignore[attr-defined]
    await publish_events(network, scenario, 3000, seed=2)
    log = tmp_path / "consumer.log"
    reader = IndexReader(url)
    async with consumer_process(consumer_env(network, url), log) as process:
        source = network.host.ws_url
        await eventually(lambda: _cursor_beyond(reader, source, 0), "first batches")
        for round_ in range(2):
            before = await reader.cursor(source) or 0
            await reader.engine.dispose()  # no connection of ours across the crash
            seen = _outages_logged(log)
            pg_cluster.stop("immediate")  # a crash: no checkpoint, WAL recovery on start
            await publish_events(network, scenario, 1500, seed=10 + round_)
            await eventually(
                partial(_more_outages, log, seen), "the consumer to hit the stopped database"
            )
            pg_cluster.start()
            await asyncio.to_thread(wait_until_accepting, pg_cluster)
            await eventually(
                partial(_cursor_beyond, reader, source, before), "progress after the restart"
            )
        last = network.host.seq
        await eventually(lambda: _cursor_is(reader, network.host.ws_url, last), "the final cursor")
        assert process.returncode is None  # the consumer rode out both outages
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
    await reader.close()
    await assert_index_is_truth(network, url)


def _connections_logged(log: Path) -> int:
    return log.read_text().count(": connected (cursor") if log.exists() else 0


async def _more_connections(log: Path, seen: int) -> bool:
    return _connections_logged(log) > seen


def _outages_logged(log: Path) -> int:
    return log.read_text().count("index database unavailable")


async def _more_outages(log: Path, seen: int) -> bool:
    return _outages_logged(log) > seen
