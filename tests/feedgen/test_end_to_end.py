"""End to end on loopback: PDS -> firehose -> consumer -> index -> feed generator.

Authors post check-ins in Paris, New York and Tokyo through our PDS with the Skyspot client
(`post_checkin`: the check-in and its companion post in one commit); the real consumer indexes
them from the PDS's firehose; the feed generator serves them. A viewer whose latest check-in is in
Tokyo calls getFeedSkeleton with a token minted by their PDS (`com.atproto.server.getServiceAuth`,
exactly what a PDS or app sends) and gets Tokyo's check-ins first, although they are the oldest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from atproto import Client

from atcore import nsids
from feedgen.app import create_app
from feedgen.settings import FeedgenSettings
from firehose_consumer.settings import ConsumerSettings, parse_source
from skyspot_client import post_checkin
from tests.firehose_consumer.conftest import IndexReader, eventually, running
from tests.pds.stack import LiveAccount, Stack, create_account, start_stack

SERVICE_DID = "did:web:feed.example.com"
PUBLISHER = "did:plc:publisherpublisherpublis"
NEARBY = f"at://{PUBLISHER}/app.bsky.feed.generator/nearby"
CITIES = {
    "tokyo": ("35.6762", "139.6503"),
    "new-york": ("40.7128", "-74.0060"),
    "paris": ("48.8566", "2.3522"),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("e2e")) as started:
        yield started


def post_as(stack: Stack, account: LiveAccount, city: str, index: int) -> str:
    client = Client(base_url=stack.pds_url)
    try:
        client.login(account.handle, account.password)
        lat, lon = CITIES[city]
        jitter = f"{index:02d}"  # extra decimals: distinct points a few centimetres apart
        posted = post_checkin(
            client, lat=f"{lat}{jitter}", lon=f"{lon}{jitter}", place=f"{city} spot {index}"
        )
        return str(posted.post_uri)
    finally:
        client.request.close()


async def service_token(stack: Stack, viewer: LiveAccount) -> str:
    params = {"aud": SERVICE_DID, "lxm": nsids.BSKY_FEED_GET_FEED_SKELETON}
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            stack.xrpc("com.atproto.server.getServiceAuth"), params=params, headers=viewer.bearer
        ) as response,
    ):
        body = await response.json()
        assert response.status == 200, body
        token: str = body["token"]
        return token


async def test_viewer_in_tokyo_gets_tokyo_first(
    stack: Stack, aiohttp_client: Any, tmp_path: Path
) -> None:
    authors = [await asyncio.to_thread(create_account, stack, "author") for _ in range(3)]
    viewer = await asyncio.to_thread(create_account, stack, "viewer")
    posted: dict[str, list[str]] = {city: [] for city in CITIES}
    for city in CITIES:  # Tokyo first: its check-ins are the oldest
        for number, author in enumerate(authors):
            uri = await asyncio.to_thread(post_as, stack, author, city, number)
            posted[city].append(uri)
    own = await asyncio.to_thread(post_as, stack, viewer, "tokyo", 9)  # the viewer's latest
    everything = {uri for uris in posted.values() for uri in uris} | {own}

    database_url = f"sqlite+aiosqlite:///{tmp_path}/index.sqlite"
    consumer_settings = ConsumerSettings(
        sources=(parse_source(stack.pds_url),),
        database_url=database_url,
        did_plc_url=stack.plc_url,
        start_cursor=0,
        metrics_port=0,
        dev_mode=True,
        reconnect_base_s=0.05,
        reconnect_max_s=0.5,
        batch_max_delay_s=0.01,
    )
    reader = IndexReader(database_url)

    async def all_indexed() -> bool:
        rows = await reader.checkins()
        return {row["post_uri"] for row in rows.values() if row["post_exists"]} >= everything

    async with running(consumer_settings):
        await eventually(all_indexed, "every check-in to be indexed")
    await reader.close()

    settings = FeedgenSettings.from_env(
        {
            "FEEDGEN_HOSTNAME": "feed.example.com",
            "FEEDGEN_SERVICE_DID": SERVICE_DID,
            "FEEDGEN_PUBLISHER_DID": PUBLISHER,
            "DATABASE_URL": database_url,
            "FEEDGEN_DID_PLC_URL": stack.plc_url,
        }
    )
    client = await aiohttp_client(create_app(settings))
    path = nsids.xrpc_path(nsids.BSKY_FEED_GET_FEED_SKELETON)

    anonymous = await (await client.get(path, params={"feed": NEARBY})).json()
    anonymous_order = [item["post"] for item in anonymous["feed"]]
    assert set(anonymous_order) == everything
    assert anonymous_order[0] == own  # newest first
    assert set(anonymous_order[-3:]) == set(posted["tokyo"])  # Tokyo's are the oldest

    token = await service_token(stack, viewer)
    response = await client.get(
        path, params={"feed": NEARBY}, headers={"Authorization": f"Bearer {token}"}
    )
    body = await response.json()
    assert response.status == 200, body
    order = [item["post"] for item in body["feed"]]
    assert set(order) == everything
    assert set(order[:4]) == {own, *posted["tokyo"]}  # the viewer's city first
    contexts = [item["feedContext"].split(";")[0] for item in body["feed"]]
    assert contexts == ["band=near"] * 4 + ["band=world"] * 6
