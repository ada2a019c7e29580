"""An account migrates between two of our PDSes while the consumer indexes both directly.

Two live PDSes share one PLC directory (tests/pds/migration_support.py); the consumer subscribes
to both as PDS sources (`CONSUMER_PDS_SOURCES`). The account checks in on A, moves to B with the
official steps (tests/pds/test_account_migration.py's `migrate`), then checks in on B. B
announces the account only once the DID names it; A's last word, "deactivated", comes after
B's activation and must not hide anything: A no longer hosts the DID.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from atproto import Client

from firehose_consumer.settings import ConsumerSettings, parse_source, with_pds_endpoints
from skyspot_client import PhotoInput, post_checkin
from tests.firehose_consumer.conftest import IndexReader, eventually, running
from tests.firehose_consumer.test_consumer_loopback import metric
from tests.pds.migration_support import TwoPds, start_two_pds
from tests.pds.stack import account_events, create_account
from tests.pds.test_account_migration import migrate, sdk_client
from tests.pds.test_blobs_api import make_png
from tests.pds.xrpc_client import Xrpc


@pytest.fixture(scope="module")
def two_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPds]:
    with start_two_pds(tmp_path_factory.mktemp("consumer-migration")) as stacks:
        yield stacks


def settings_for(two_pds: TwoPds, url: str) -> ConsumerSettings:
    a, b = two_pds.a.pds_url, two_pds.b.pds_url
    sources = with_pds_endpoints((parse_source(a), parse_source(b)), f"{a},{b}")
    return ConsumerSettings(
        sources=sources,
        database_url=url,
        did_plc_url=two_pds.plc_url,
        start_cursor=0,
        metrics_port=0,
        dev_mode=True,
        reconnect_base_s=0.05,
        reconnect_max_s=0.5,
        batch_max_delay_s=0.01,
    )


async def test_checkins_survive_a_migration_between_two_indexed_pdses(
    two_pds: TwoPds, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="pds.mailer")
    a, b = two_pds.a, two_pds.b
    account = create_account(a, "nomad")
    clients: list[Client] = []
    url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    reader = IndexReader(url)
    try:
        old = sdk_client(a, account.handle, account.password)
        clients.append(old)
        photo = PhotoInput(make_png(32, 24, seed=3), alt="The view")  # the blob that moves too
        lisbon = await asyncio.to_thread(
            post_checkin, old, lat=38.713909, lon=-9.133476, place="Miradouro da Graça",
            photos=[photo],
        )  # fmt: skip
        async with running(settings_for(two_pds, url)) as consumer:
            await eventually(
                lambda: _visible(reader, account.did, {lisbon.rkey}), "the check-in made on A"
            )
            async with aiohttp.ClientSession() as http:
                new = await migrate(old, account, a, b, Xrpc(http, a), Xrpc(http, b), caplog)
            clients.append(new)
            tokyo = await asyncio.to_thread(
                post_checkin, new, lat=35.658581, lon=139.745433, place="Tokyo Tower"
            )
            await eventually(
                lambda: _visible(reader, account.did, {lisbon.rkey, tokyo.rkey}),
                "both check-ins, visible, after the move to B",
            )
            # A's last event for the account is its "deactivated": once the consumer is past
            # it, the check-ins must still be visible, and the event counted as ignored.
            a_last = (await account_events(a, account.did))[-1]
            assert a_last[0] == "account"
            assert a_last[1]["active"] is False
            a_source = parse_source(a.pds_url).name
            await eventually(
                lambda: _cursor_at_least(reader, a_source, a_last[1]["seq"]),
                "the consumer to pass A's last event",
            )
            assert await _visible(reader, account.did, {lisbon.rkey, tokyo.rkey})
            assert await metric(consumer, "firehose_skipped_total", reason="wrong_host") >= 1
            repo = await reader.repo(account.did)
            assert repo is not None
            assert repo["status"] == "active"
    finally:
        for client in clients:
            client.request.close()
        await reader.close()


async def _visible(reader: IndexReader, did: str, rkeys: set[str]) -> bool:
    rows = await reader.checkins()
    mine = {rkey: row for (author, rkey), row in rows.items() if author == did}
    return set(mine) == rkeys and all(row["visible"] for row in mine.values())


async def _cursor_at_least(reader: IndexReader, source: str, seq: int) -> bool:
    return (await reader.cursor(source) or 0) >= seq
