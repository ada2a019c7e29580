"""Partitioned consumers against one loopback stream and one index.

Several `Consumer`s with `CONSUMER_PARTITION` i/n run in this process, concurrently, on the same
SQLite (or PostgreSQL) index, reading the same `FakeHost` stream: together they must build
exactly the index one consumer builds, which is the ground truth derived from the repositories.
Changing n between restarts must lose nothing: a lost event would break a repository's chain,
so every phase also checks that no commit failed the chain check.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from atcore.index.engine import create_index_engine, migrate
from atcore.index.schema import DESYNCHRONIZED, SYNCHRONIZED, repo_state
from firehose_consumer.backfill import schedule_backfill
from firehose_consumer.partition import Partition, partition_of
from tests.firehose_consumer.conftest import (
    WAIT_S,
    IndexReader,
    RunningConsumer,
    consumer_settings,
    eventually,
    running,
)
from tests.firehose_consumer.fakenet import Network, SimRepo
from tests.firehose_consumer.scenario import (
    Scenario,
    expected_index,
    index_view,
    publish_events,
)
from tests.firehose_consumer.test_crash_recovery import consumer_env as base_env
from tests.firehose_consumer.test_crash_recovery import consumer_process
from tests.pg import PgCluster, pg_cluster  # noqa: F401 - fixture

CITY = (38_713_909, -9_133_476)
SPREAD = 6  # every residue mod 6 has a repo: each partition of 2 and of 3 has at least two


async def spread_scenario(network: Network, bystanders: int = 3) -> Scenario:
    """Repos until each partition of 2 and of 3 holds some (DIDs are random), each opened with a
    check-in, so every consumer follows every repo from its first commit: no `getRepo` is ever
    needed, and a lost event could only show as a broken chain."""
    repos: list[SimRepo] = []
    while len({partition_of(r.did, SPREAD) for r in repos}) < SPREAD or len(repos) < 10:
        assert len(repos) < 80, "the DID hash is not spreading repos over partitions"
        repos.append(await network.new_repo())
    others = [await network.new_repo() for _ in range(bystanders)]
    scenario = Scenario(repos, others, {r.did: True for r in repos})
    for repo in repos:
        _, body = repo.checkin_with_post(*CITY, "First")
        scenario.last_seq = await network.commit(repo, body)
    return scenario


@dataclass
class Phase:
    """Consumers of one partitioning, running together; their metrics outlive them."""

    network: Network
    url: str
    count: int
    stopped: list[RunningConsumer] = field(default_factory=list)

    def settings(self, index: int) -> Any:
        part = Partition(index, self.count)
        return consumer_settings(self.network, self.url, partition=part)

    def key(self, index: int) -> str:
        return Partition(index, self.count).cursor_key(self.network.host.ws_url)


@contextlib.asynccontextmanager
async def all_partitions(phase: Phase) -> AsyncIterator[list[RunningConsumer]]:
    async with contextlib.AsyncExitStack() as stack:
        handles = [
            await stack.enter_async_context(running(phase.settings(i))) for i in range(phase.count)
        ]
        yield handles
    phase.stopped.extend(handles)


def consumer_env(network: Network, url: str, partition: str) -> dict[str, str]:
    return {**base_env(network, url), "CONSUMER_PARTITION": partition}


def sample(handle: RunningConsumer, name: str, **labels: str) -> float:
    total = 0.0
    for family in handle.consumer.metrics.registry.collect():
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


def chain_failures(handles: Iterable[RunningConsumer]) -> float:
    """Verification failures and resyncs: with every repo followed from its first commit, none
    happen unless an event went missing."""
    return sum(
        sample(h, "firehose_verification_failures_total") + sample(h, "firehose_resyncs_total")
        for h in handles
    )


async def cursors_at(reader: IndexReader, keys: Iterable[str], seq: int) -> bool:
    return all([await reader.cursor(key) == seq for key in keys])


async def repo_states(url: str) -> dict[str, tuple[Any, ...]]:
    engine = create_index_engine(url, read_only=True)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(repo_state))
            return {
                r.did: (r.rev, r.data_cid, r.status, r.sync_status, r.resync_after) for r in rows
            }
    finally:
        await engine.dispose()


async def run_together(network: Network, url: str, scenario: Scenario, count: int) -> Phase:
    """`count` partitions from cursor 0, with half of the events published while they run."""
    phase = Phase(network, url, count)
    reader = IndexReader(url)
    async with all_partitions(phase) as handles:
        await publish_events(network, scenario, 120, seed=2)
        last = scenario.last_seq
        keys = [phase.key(i) for i in range(count)]
        await eventually(lambda: cursors_at(reader, keys, last), "every partition's cursor")
        for index, handle in enumerate(handles):
            assert sample(handle, "firehose_partition_info", partition=f"{index}/{count}") == 1
            assert sample(handle, "firehose_cursor", source=phase.key(index)) == last
            assert sample(handle, "firehose_skipped_total", reason="filtered") > 0
    return phase


async def test_partitions_together_build_what_one_consumer_builds(
    network: Network, tmp_path: Path
) -> None:
    scenario = await spread_scenario(network)
    await publish_events(network, scenario, 120, seed=1)
    parts_url = f"sqlite+aiosqlite:///{tmp_path}/partitions.sqlite"
    phase = await run_together(network, parts_url, scenario, 3)
    assert chain_failures(phase.stopped) == 0
    single_url = f"sqlite+aiosqlite:///{tmp_path}/single.sqlite"
    single_reader = IndexReader(single_url)
    async with running(consumer_settings(network, single_url)) as single:
        source, last = network.host.ws_url, scenario.last_seq
        await eventually(lambda: cursors_at(single_reader, [source], last), "the single cursor")
    assert chain_failures([single]) == 0
    truth = expected_index(scenario)
    assert truth
    assert index_view(await IndexReader(parts_url).checkins()) == truth
    assert index_view(await single_reader.checkins()) == truth
    assert await repo_states(parts_url) == await repo_states(single_url)


@pytest.mark.slow
async def test_partition_processes_together_on_postgresql(
    network: Network,
    tmp_path: Path,
    pg_cluster: PgCluster,  # noqa: F811
) -> None:
    """Two `python -m firehose_consumer` processes started at once on a fresh database: they
    also race to migrate it."""
    url = pg_cluster.url(pg_cluster.create_database())
    scenario = await spread_scenario(network)
    await publish_events(network, scenario, 120, seed=1)
    reader = IndexReader(url)
    keys = [Partition(i, 2).cursor_key(network.host.ws_url) for i in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        processes = [
            await stack.enter_async_context(
                consumer_process(consumer_env(network, url, f"{i}/2"), tmp_path / f"{i}.log")
            )
            for i in range(2)
        ]
        await publish_events(network, scenario, 120, seed=2)
        last = scenario.last_seq
        await eventually(lambda: cursors_at(reader, keys, last), "both partitions' cursors")
        for process in processes:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
    assert index_view(await reader.checkins()) == expected_index(scenario)
    logs = "".join((tmp_path / f"{i}.log").read_text() for i in range(2))
    assert "chain broken" not in logs
    assert "resync" not in logs


async def test_changing_the_partition_count_mid_stream_loses_and_duplicates_nothing(
    network: Network, sqlite_url: str
) -> None:
    scenario = await spread_scenario(network)
    host, source = network.host, network.host.ws_url
    reader = IndexReader(sqlite_url)
    await publish_events(network, scenario, 80, seed=1)
    one = Phase(network, sqlite_url, 1)
    async with all_partitions(one):  # one consumer, stopped mid-stream
        await eventually(lambda: _cursor_beyond(reader, source, 40), "some progress")
        await publish_events(network, scenario, 40, seed=2)
    single_row = await reader.cursor(source)
    assert single_row is not None

    # 1 -> 2: both halves start where the single consumer stopped; 1/2 stops before 0/2.
    halves = Phase(network, sqlite_url, 2)
    asked = len(host.cursors_asked)
    async with running(halves.settings(0)) as first:
        async with running(halves.settings(1)) as second:
            await eventually(lambda: _asked(host, asked + 2), "both halves to connect")
            assert host.cursors_asked[asked:] == [str(single_row)] * 2
            await publish_events(network, scenario, 40, seed=3)
        await publish_events(network, scenario, 40, seed=4)
        await eventually(
            lambda: cursors_at(reader, [halves.key(0)], scenario.last_seq), "0/2 to finish"
        )
    halves.stopped += [first, second]
    behind, ahead = await reader.cursor(halves.key(1)), await reader.cursor(halves.key(0))
    assert behind is not None
    assert ahead is not None
    assert single_row <= behind < ahead

    # 2 -> 3: from the lower half - the complete older partitioning - not from the stale row.
    thirds = Phase(network, sqlite_url, 3)
    asked = len(host.cursors_asked)
    async with all_partitions(thirds):
        await eventually(lambda: _asked(host, asked + 3), "the thirds to connect")
        assert host.cursors_asked[asked:] == [str(behind)] * 3
        await publish_events(network, scenario, 60, seed=5)
        keys = [thirds.key(i) for i in range(3)]
        await eventually(lambda: cursors_at(reader, keys, scenario.last_seq), "the thirds")
    caught_up = scenario.last_seq

    # 3 -> 1: the old single row is behind the complete thirds, which it resumes from.
    back = Phase(network, sqlite_url, 1)
    asked = len(host.cursors_asked)
    async with all_partitions(back):
        await eventually(lambda: _asked(host, asked + 1), "the single consumer to connect")
        assert host.cursors_asked[asked:] == [str(caught_up)]
        await publish_events(network, scenario, 30, seed=6)
        await eventually(lambda: cursors_at(reader, [source], scenario.last_seq), "the end")

    for phase in (one, halves, thirds, back):
        assert chain_failures(phase.stopped) == 0  # no commit of any repo went missing
    assert index_view(await reader.checkins()) == expected_index(scenario)
    states = await repo_states(sqlite_url)
    for repo in scenario.repos:
        if repo.did in states and repo.did not in scenario.deleted:
            assert states[repo.did][0] == repo.rev
            assert states[repo.did][3] == SYNCHRONIZED


async def _cursor_beyond(reader: IndexReader, key: str, seq: int) -> bool:
    return (await reader.cursor(key) or 0) > seq


async def _asked(host: Any, connections: int) -> bool:
    return len(host.cursors_asked) >= connections


async def test_one_partition_alone_backfills_only_its_share(
    network: Network, sqlite_url: str
) -> None:
    """`#info OutdatedCursor`: the partition lists the host but queues only its own repos."""
    scenario = await spread_scenario(network, bystanders=0)
    await publish_checkins(network, scenario)
    network.host.oldest_seq = scenario.last_seq + 1  # every event has left the replay window
    half = Partition(0, 2)
    reader = IndexReader(sqlite_url)
    truth = {k: v for k, v in expected_index(scenario).items() if half.owns(k[0])}
    async with running(consumer_settings(network, sqlite_url, partition=half)) as consumer:
        await eventually(lambda: _index_is(reader, truth), "the partition's share")
        assert truth
        assert sample(consumer, "firehose_resyncs_total", outcome="ok") > 0
    states = await repo_states(sqlite_url)
    assert states
    assert all(half.owns(did) for did in states)


async def test_partitions_take_only_their_share_of_a_queued_backfill(
    network: Network, sqlite_url: str
) -> None:
    """`backfill HOST` queues every repo; each partition's scheduler resyncs only its own."""
    scenario = await spread_scenario(network, bystanders=0)
    await publish_checkins(network, scenario)
    network.host.oldest_seq = scenario.last_seq + 1
    engine = create_index_engine(sqlite_url)
    await migrate(engine)
    async with aiohttp.ClientSession() as session:
        queued = await schedule_backfill(engine, session, network.host.url)
    await engine.dispose()
    assert set(queued) == {r.did for r in scenario.repos}
    reader = IndexReader(sqlite_url)
    truth = expected_index(scenario)
    for index in range(2):
        part = Partition(index, 2)
        share = {k: v for k, v in truth.items() if partition_of(k[0], 2) <= index}
        settings = consumer_settings(network, sqlite_url, partition=part,
                                     backfill_on_outdated=False)  # fmt: skip
        async with running(settings):
            await eventually(partial(_index_is, reader, share), f"partition {part}'s share")
        states = await repo_states(sqlite_url)
        for did, state in states.items():
            done = partition_of(did, 2) <= index
            assert state[3] == (SYNCHRONIZED if done else DESYNCHRONIZED), (part, did)
    assert index_view(await reader.checkins()) == truth


async def publish_checkins(network: Network, scenario: Scenario) -> None:
    """Two check-ins per repo, every account active (a backfill fetches active repos only)."""
    for round_ in range(2):
        for repo in scenario.repos:
            _, body = repo.checkin_with_post(*CITY, f"Spot {round_}")
            scenario.last_seq = await network.commit(repo, body)


async def _index_is(reader: IndexReader, truth: dict[Any, Any]) -> bool:
    return index_view(await reader.checkins()) == truth
