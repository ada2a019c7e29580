"""End to end against our real PDS: check-ins written through the atproto SDK reach the index.

A live PLC + PDS (tests/pds/stack.py) runs in a background thread; the consumer runs in-process
on a SQLite index, subscribed to the PDS's `subscribeRepos`. Writes go through the `atproto` SDK
(`skyspot_client.post_checkin`: one applyWrites with the check-in and its companion post; plain
`put_record` / `delete_record` for updates and deletes); account status changes through the PDS's
own endpoints. Blocking SDK calls run in worker threads so the consumer keeps consuming.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h3
import pytest
from atproto import Client

from atcore import nsids
from atcore.checkin import checkin_to_json
from atcore.index.schema import SYNCHRONIZED
from firehose_consumer.settings import ConsumerSettings, parse_source
from skyspot_client import post_checkin
from skyspot_client.compose import build_checkin_writes, compose_checkin
from tests.firehose_consumer.conftest import IndexReader, eventually, running
from tests.firehose_consumer.test_consumer_loopback import metric
from tests.pds.stack import SHARED_STACK_ENV, Stack, create_account, post_json, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("pds-e2e"), **SHARED_STACK_ENV) as live:
        yield live


def settings_for(stack: Stack, url: str) -> ConsumerSettings:
    return ConsumerSettings(
        sources=(parse_source(stack.pds_url),),
        database_url=url,
        did_plc_url=stack.plc_url,
        start_cursor=0,
        metrics_port=0,
        dev_mode=True,
        reconnect_base_s=0.05,
        reconnect_max_s=0.5,
        batch_max_delay_s=0.01,
    )


@pytest.fixture
def sdk_clients() -> Iterator[list[Client]]:
    """SDK clients made by a test, closed after it (their sockets would outlive it)."""
    clients: list[Client] = []
    yield clients
    for client in clients:
        client.request.close()


def login(stack: Stack, clients: list[Client]) -> tuple[Client, Any]:
    account = create_account(stack, "chk")
    client = Client(base_url=stack.pds_url)
    clients.append(client)
    client.login(account.handle, account.password)
    return client, account


def cell(lat: float, lon: float, resolution: int) -> int:
    return int(h3.str_to_int(h3.latlng_to_cell(lat, lon, resolution)))


async def _rows_for(reader: IndexReader, did: str) -> dict[str, dict[str, Any]]:
    return {rkey: row for (author, rkey), row in (await reader.checkins()).items() if author == did}


async def test_checkins_through_the_sdk_are_indexed_and_follow_the_account(
    stack: Stack, tmp_path: Path, sdk_clients: list[Client]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    reader = IndexReader(url)
    async with running(settings_for(stack, url)) as consumer:
        client, account = await asyncio.to_thread(login, stack, sdk_clients)
        paris = await asyncio.to_thread(
            post_checkin, client, lat="48.8566", lon="2.3522", place="Café de Flore",
            category="cafe",
        )  # fmt: skip
        tokyo = await asyncio.to_thread(
            post_checkin, client, lat="35.6762", lon="139.6503", place="Shibuya Crossing"
        )

        async def both() -> bool:
            return set(await _rows_for(reader, account.did)) == {paris.rkey, tokyo.rkey}

        await eventually(both, "both check-ins in the index")
        rows = await _rows_for(reader, account.did)
        row = rows[paris.rkey]
        assert (row["lat_e6"], row["lon_e6"]) == (48_856_600, 2_352_200)
        assert row["h3_r7"] == cell(48.8566, 2.3522, 7)
        assert row["h3_r5"] == cell(48.8566, 2.3522, 5)
        assert row["h3_r3"] == cell(48.8566, 2.3522, 3)
        assert row["post_uri"] == str(paris.post_uri)
        assert row["post_cid"] == str(paris.post_cid)
        assert row["cid"] == str(paris.checkin_cid)
        assert row["post_exists"] is True
        assert row["visible"] is True
        assert row["place_category"] == "cafe"
        assert (rows[tokyo.rkey]["lat_e6"], rows[tokyo.rkey]["lon_e6"]) == (35_676_200, 139_650_300)

        # An update moves the check-in; a delete removes the other one.
        moved = compose_checkin(lat="48.8606", lon="2.3376", place="Louvre", category="museum")
        updated = dataclasses.replace(paris.checkin, place=moved.place, locations=moved.locations)
        await asyncio.to_thread(
            client.com.atproto.repo.put_record,
            {"repo": account.did, "collection": nsids.SKYSPOT_CHECKIN, "rkey": paris.rkey,
             "record": checkin_to_json(updated)},
        )  # fmt: skip
        await asyncio.to_thread(
            client.com.atproto.repo.delete_record,
            {"repo": account.did, "collection": nsids.SKYSPOT_CHECKIN, "rkey": tokyo.rkey},
        )

        async def edited() -> bool:
            rows = await _rows_for(reader, account.did)
            return set(rows) == {paris.rkey} and rows[paris.rkey]["place_name"] == "Louvre"

        await eventually(edited, "the update and the delete")
        row = (await _rows_for(reader, account.did))[paris.rkey]
        assert (row["lat_e6"], row["lon_e6"]) == (48_860_600, 2_337_600)
        assert row["h3_r7"] == cell(48.8606, 2.3376, 7)
        assert row["post_exists"] is True  # the companion post is untouched

        # Deactivation hides, reactivation shows again, deletion purges.
        await asyncio.to_thread(_call, stack, nsids.SERVER_DEACTIVATE_ACCOUNT, account)
        await eventually(lambda: _visible(reader, account.did, paris.rkey, False), "hidden")
        await asyncio.to_thread(_call, stack, nsids.SERVER_ACTIVATE_ACCOUNT, account)
        await eventually(lambda: _visible(reader, account.did, paris.rkey, True), "shown again")
        status, _ = await asyncio.to_thread(
            post_json, stack.xrpc(nsids.ADMIN_DELETE_ACCOUNT), {"did": account.did},
            {"Authorization": stack.admin_authorization},
        )  # fmt: skip
        assert status == 200

        async def purged() -> bool:
            return await _rows_for(reader, account.did) == {}

        await eventually(purged, "the purge after deletion")
        state = await reader.repo(account.did)
        assert state is not None
        assert state["status"] == "deleted"
        assert await metric(consumer, "firehose_verification_failures_total") == 0
        assert await metric(consumer, "firehose_invalid_total") == 0


def _create(client: Client, did: str, collection: str, rkey: str, record: Any) -> None:
    client.com.atproto.repo.create_record(
        {"repo": did, "collection": collection, "rkey": rkey, "record": record}
    )


async def test_companion_posts_written_in_separate_commits_are_found(
    stack: Stack, tmp_path: Path, sdk_clients: list[Client]
) -> None:
    # Clients other than skyspot_client may write the post and the check-in one by one, in
    # either order; the index must link them whichever comes first and however far apart.
    url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    reader = IndexReader(url)
    async with running(settings_for(stack, url)):
        client, account = await asyncio.to_thread(login, stack, sdk_clients)
        first = await asyncio.to_thread(post_checkin, client, lat="1", lon="2", place="First")
        await eventually(
            lambda: _has(reader, account.did, first.rkey), "the account's first check-in"
        )
        post_first = build_checkin_writes(
            account.did, compose_checkin(lat="52.52", lon="13.405", place="Berlin")
        )
        await asyncio.to_thread(
            _create, client, account.did, nsids.BSKY_FEED_POST, post_first.rkey,
            post_first.post_record,
        )  # fmt: skip
        await asyncio.sleep(0.3)  # the post's commit is indexed in a batch of its own
        await asyncio.to_thread(
            _create, client, account.did, nsids.SKYSPOT_CHECKIN, post_first.rkey,
            post_first.checkin_record,
        )  # fmt: skip
        checkin_first = build_checkin_writes(
            account.did, compose_checkin(lat="48.2082", lon="16.3738", place="Vienna")
        )
        await asyncio.to_thread(
            _create, client, account.did, nsids.SKYSPOT_CHECKIN, checkin_first.rkey,
            checkin_first.checkin_record,
        )  # fmt: skip
        await eventually(
            lambda: _has(reader, account.did, checkin_first.rkey), "the check-in without its post"
        )
        assert (await _rows_for(reader, account.did))[checkin_first.rkey]["post_exists"] is False
        await asyncio.to_thread(
            _create, client, account.did, nsids.BSKY_FEED_POST, checkin_first.rkey,
            checkin_first.post_record,
        )  # fmt: skip

        async def both_linked() -> bool:
            rows = await _rows_for(reader, account.did)
            return all(
                key in rows and rows[key]["post_exists"] is True
                for key in (post_first.rkey, checkin_first.rkey)
            )

        await eventually(both_linked, "both check-ins linked to their posts")


async def _has(reader: IndexReader, did: str, rkey: str) -> bool:
    return rkey in await _rows_for(reader, did)


def _call(stack: Stack, nsid: str, account: Any) -> None:
    status, body = post_json(stack.xrpc(nsid), {}, account.bearer)
    assert status == 200, body


async def _visible(reader: IndexReader, did: str, rkey: str, expected: bool) -> bool:
    rows = await _rows_for(reader, did)
    return rkey in rows and rows[rkey]["visible"] is expected


async def test_a_fresh_index_backfills_existing_accounts_from_cursor_zero(
    stack: Stack, tmp_path: Path, sdk_clients: list[Client]
) -> None:
    client, account = await asyncio.to_thread(login, stack, sdk_clients)
    posted = [
        await asyncio.to_thread(post_checkin, client, lat=lat, lon=lon, place=name)
        for lat, lon, name in (("38.7223", "-9.1393", "Lisbon"), ("41.3874", "2.1686", "Barcelona"))
    ]
    url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    reader = IndexReader(url)
    async with running(settings_for(stack, url)):

        async def indexed() -> bool:
            return set(await _rows_for(reader, account.did)) == {p.rkey for p in posted}

        await eventually(indexed, "the replayed check-ins")
        state = await reader.repo(account.did)
        assert state is not None
        assert state["sync_status"] == SYNCHRONIZED
        assert state["rev"] == posted[-1].rev
