"""The whole consumer against a loopback host speaking real, signed Sync 1.1 frames.

Each test starts a real PLC directory and a `FakeHost` (see fakenet), runs `Consumer` in-process
on a SQLite index, and checks the index and the metrics.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import h3
from sqlalchemy.exc import OperationalError

from atcore.index.schema import SYNCHRONIZED
from tests.firehose_consumer.conftest import (
    IndexReader,
    RunningConsumer,
    consumer_settings,
    eventually,
    running,
)
from tests.firehose_consumer.fakenet import CHECKIN, POST, Network, checkin_record

PARIS = (48_856_600, 2_352_200)
LYON = (45_764_000, 4_835_700)


async def metric(consumer: RunningConsumer, name: str, **labels: str) -> float:
    """Sum of the consumer's samples called `name` whose labels include `labels`."""
    total = 0.0
    for family in consumer.consumer.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def scrape(consumer: RunningConsumer) -> str:
    port = consumer.consumer.metrics_port
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_checkins_appear_with_coordinates_cells_and_post(
    network: Network, sqlite_url: str
) -> None:
    repo = await network.new_repo()
    rkey, body = repo.checkin_with_post(*PARIS, "Café de Flore")
    seq = await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _cursor_at(reader, network, seq), "the cursor to reach the commit")
        rows = await reader.checkins()
        row = rows[(repo.did, rkey)]
        assert (row["lat_e6"], row["lon_e6"]) == PARIS
        assert row["h3_r7"] == h3.str_to_int(h3.latlng_to_cell(48.8566, 2.3522, 7))
        assert row["h3_r5"] == h3.str_to_int(h3.latlng_to_cell(48.8566, 2.3522, 5))
        assert row["h3_r3"] == h3.str_to_int(h3.latlng_to_cell(48.8566, 2.3522, 3))
        assert row["post_uri"] == f"at://{repo.did}/{POST}/{rkey}"
        assert row["post_exists"] is True
        assert row["visible"] is True
        assert row["place_name"] == "Café de Flore"
        assert row["rev"] == repo.rev
        assert row["cid"] == str(repo.records[f"{CHECKIN}/{rkey}"])
        state = await reader.repo(repo.did)
        assert state is not None
        assert state["rev"] == repo.rev
        assert state["data_cid"] == str(repo.head.data if repo.head else None)
        assert state["sync_status"] == SYNCHRONIZED
        assert await metric(consumer, "firehose_verification_failures_total") == 0
        exposed = await scrape(consumer)
        for name in ("firehose_lag_seconds", "firehose_events_total", "firehose_cursor",
                     "firehose_queue_depth", "index_batch_seconds_bucket",
                     "firehose_events_per_second"):  # fmt: skip
            assert name in exposed
        assert f'firehose_cursor{{source="{network.host.ws_url}"}} {float(seq)}' in exposed
    await reader.close()


async def _cursor_at(reader: IndexReader, network: Network, seq: int) -> bool:
    return (await reader.cursor(network.host.ws_url)) == seq


async def test_updates_and_deletes_apply(network: Network, sqlite_url: str) -> None:
    repo = await network.new_repo()
    rkey, body = repo.checkin_with_post(*PARIS, "First")
    await network.commit(repo, body)
    other, body = repo.checkin_with_post(*PARIS, "Second")
    await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)):
        await eventually(lambda: _count(reader, 2), "two check-ins")
        post_cid = repo.records[f"{POST}/{rkey}"]
        moved: dict[str, Any] = checkin_record(
            *LYON, "First, moved", did=repo.did, rkey=rkey, post_cid=post_cid
        )
        await network.commit(repo, repo.commit([("update", f"{CHECKIN}/{rkey}", moved)]))
        seq = await network.commit(repo, repo.commit([("delete", f"{CHECKIN}/{other}", None)]))
        await eventually(lambda: _cursor_at(reader, network, seq), "the delete")
        rows = await reader.checkins()
        assert set(rows) == {(repo.did, rkey)}
        assert (rows[(repo.did, rkey)]["lat_e6"], rows[(repo.did, rkey)]["lon_e6"]) == LYON
        assert rows[(repo.did, rkey)]["place_name"] == "First, moved"
        assert rows[(repo.did, rkey)]["post_exists"] is True  # the post was never deleted
        seq = await network.commit(repo, repo.commit([("delete", f"{POST}/{rkey}", None)]))
        await eventually(lambda: _cursor_at(reader, network, seq), "the post delete")
        assert (await reader.checkins())[(repo.did, rkey)]["post_exists"] is False
    await reader.close()


async def _count(reader: IndexReader, n: int) -> bool:
    return len(await reader.checkins()) == n


async def test_account_status_hides_shows_and_purges(network: Network, sqlite_url: str) -> None:
    alice, bob = await network.new_repo(), await network.new_repo()
    a_key, body = alice.checkin_with_post(*PARIS, "A")
    await network.commit(alice, body)
    b_key, body = bob.checkin_with_post(*LYON, "B")
    await network.commit(bob, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)):
        await eventually(lambda: _count(reader, 2), "both check-ins")
        seq = await network.host.account(alice.did, False, "deactivated")
        await eventually(lambda: _cursor_at(reader, network, seq), "deactivation")
        rows = await reader.checkins()
        assert rows[(alice.did, a_key)]["visible"] is False
        assert rows[(bob.did, b_key)]["visible"] is True
        seq = await network.host.account(alice.did, True)
        await eventually(lambda: _cursor_at(reader, network, seq), "reactivation")
        assert (await reader.checkins())[(alice.did, a_key)]["visible"] is True
        seq = await network.host.account(bob.did, False, "takendown")
        await eventually(lambda: _cursor_at(reader, network, seq), "takedown")
        assert (await reader.checkins())[(bob.did, b_key)]["visible"] is False
        seq = await network.host.account(alice.did, False, "deleted")
        await eventually(lambda: _cursor_at(reader, network, seq), "deletion")
        assert set(await reader.checkins()) == {(bob.did, b_key)}
        state = await reader.repo(alice.did)
        assert state is not None
        assert state["status"] == "deleted"
    await reader.close()


async def test_a_repo_first_met_while_taken_down_is_fetched_on_reactivation(
    network: Network, sqlite_url: str
) -> None:
    repo = await network.new_repo()
    first, body = repo.checkin_with_post(*PARIS, "Before the consumer started")
    start = await network.commit(repo, body)
    network.host.status[repo.did] = (False, "takendown")  # getRepo refuses it for now
    second, body = repo.checkin_with_post(*LYON, "Seen, with history behind it")
    await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url, start_cursor=start)):
        # The first commit seen has `since` set: the resync meets the takedown.
        await eventually(lambda: _status(reader, repo.did, "takendown"), "the failed resync")
        assert await reader.checkins() == {}
        seq = await network.host.account(repo.did, True)
        await eventually(lambda: _count(reader, 2), "the whole repo after reactivation")
        assert await _cursor_at(reader, network, seq)
        assert set(await reader.checkins()) == {(repo.did, first), (repo.did, second)}
    await reader.close()


async def _status(reader: IndexReader, did: str, status: str) -> bool:
    try:
        state = await reader.repo(did)
    except OperationalError:  # the consumer has not created the schema yet
        return False
    return state is not None and state["status"] == status


async def test_broken_chain_is_resynced_from_get_repo(network: Network, sqlite_url: str) -> None:
    repo = await network.new_repo()
    first, body = repo.checkin_with_post(*PARIS, "Seen")
    await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _count(reader, 1), "the first check-in")
        missed, _ = repo.checkin_with_post(*LYON, "Never on the firehose")  # not published
        last, body = repo.checkin_with_post(*PARIS, "After the gap")
        seq = await network.commit(repo, body)
        await eventually(lambda: _cursor_at(reader, network, seq), "the commit after the gap")
        rows = await reader.checkins()
        assert set(rows) == {(repo.did, first), (repo.did, missed), (repo.did, last)}
        state = await reader.repo(repo.did)
        assert state is not None
        assert state["rev"] == repo.rev
        assert state["sync_status"] == SYNCHRONIZED
        assert (
            await metric(consumer, "firehose_verification_failures_total", reason="broken_chain")
            == 1
        )
        assert await metric(consumer, "firehose_resyncs_total", outcome="ok") == 1
    await reader.close()


async def test_sync_event_resyncs_when_the_root_differs(network: Network, sqlite_url: str) -> None:
    repo = await network.new_repo()
    first, body = repo.checkin_with_post(*PARIS, "Before the reset")
    seq = await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _cursor_at(reader, network, seq), "the first check-in")
        # Same root: a #sync only confirms the state, no fetch.
        seq = await network.host.publish("#sync", repo.sync_body())
        await eventually(lambda: _cursor_at(reader, network, seq), "the confirming #sync")
        assert await metric(consumer, "firehose_resyncs_total") == 0
        # The repo moves on without #commit events, then announces its new state.
        later, _ = repo.checkin_with_post(*LYON, "Only in the new state")
        seq = await network.host.publish("#sync", repo.sync_body())
        await eventually(lambda: _cursor_at(reader, network, seq), "the resetting #sync")
        assert set(await reader.checkins()) == {(repo.did, first), (repo.did, later)}
        assert await metric(consumer, "firehose_resyncs_total", outcome="ok") == 1
        state = await reader.repo(repo.did)
        assert state is not None
        assert state["rev"] == repo.rev
    await reader.close()
