"""The feed generator's HTTP API on a real app, a seeded SQLite index and a local PLC directory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from atcore import nsids
from atcore.crypto import K256Keypair
from atcore.identity import DidDocument
from atcore.identity.plc import create_genesis_op, did_for_genesis, op_to_json
from atcore.lexicon import Catalog
from feedgen.app import create_app
from feedgen.settings import FeedgenSettings
from pds.auth.service_jwt import create_service_jwt
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings
from tests.feedgen.support import Checkin, Index, open_index

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"
SERVICE_DID = "did:web:feed.example.com"
PUBLISHER = "did:plc:publisherpublisherpublis"
NEARBY = f"at://{PUBLISHER}/app.bsky.feed.generator/nearby"
PARIS_FEED = f"at://{PUBLISHER}/app.bsky.feed.generator/paris"
SKELETON = nsids.xrpc_path(nsids.BSKY_FEED_GET_FEED_SKELETON)
DESCRIBE = nsids.xrpc_path(nsids.BSKY_FEED_DESCRIBE_FEED_GENERATOR)
PARIS = (48_856_600, 2_352_200)
TOKYO = (35_676_200, 139_650_300)

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_directory(LEXICONS)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[Index]:
    opened = await open_index(tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def plc_url(aiohttp_server: Any, tmp_path: Path) -> str:
    server: TestServer = await aiohttp_server(
        create_plc_app(PlcSettings(data_directory=tmp_path / "plc"))
    )
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def make_client(aiohttp_client: Any, index: Index, plc_url: str) -> MakeClient:
    async def make(**env: str) -> Client:
        settings = FeedgenSettings.from_env(
            {
                "FEEDGEN_HOSTNAME": "feed.example.com",
                "FEEDGEN_SERVICE_DID": SERVICE_DID,
                "FEEDGEN_PUBLISHER_DID": PUBLISHER,
                "DATABASE_URL": index.url,
                "FEEDGEN_DID_PLC_URL": plc_url,
                "FEEDGEN_REGION_FEEDS": "paris=48.8566,2.3522",
                **env,
            }
        )
        client: Client = await aiohttp_client(create_app(settings))
        return client

    return make


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def around(
    point: tuple[int, int],
    count: int,
    *,
    did: str = "did:plc:author",
    prefix: str = "r",
    step_ms: int = 1000,
) -> list[Checkin]:
    start = now_ms() - 60_000
    return [
        Checkin(
            did=did,
            rkey=f"{prefix}{i:04d}",
            lat_e6=point[0] + i * 10,
            lon_e6=point[1],
            sort_at=start - i * step_ms,
        )
        for i in range(count)
    ]


async def skeleton(
    client: Client, status: int = 200, headers: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        SKELETON, params={k: str(v) for k, v in params.items()}, headers=headers
    )
    body: dict[str, Any] = await response.json()
    assert response.status == status, body
    return body


# -- describeFeedGenerator, did.json, health, metrics ---------------------------------------------
async def test_describe_lists_every_feed_exactly_per_lexicon(
    make_client: MakeClient, catalog: Catalog
) -> None:
    client = await make_client()
    response = await client.get(DESCRIBE)
    body = await response.json()
    assert response.status == 200
    assert body == {"did": SERVICE_DID, "feeds": [{"uri": NEARBY}, {"uri": PARIS_FEED}]}
    catalog.validate_output(nsids.BSKY_FEED_DESCRIBE_FEED_GENERATOR, body)


async def test_describe_carries_policy_links_when_configured(
    make_client: MakeClient, catalog: Catalog
) -> None:
    client = await make_client(
        FEEDGEN_PRIVACY_POLICY_URL="https://feed.example.com/privacy",
        FEEDGEN_TERMS_OF_SERVICE_URL="https://feed.example.com/terms",
    )
    body = await (await client.get(DESCRIBE)).json()
    assert body["links"] == {
        "privacyPolicy": "https://feed.example.com/privacy",
        "termsOfService": "https://feed.example.com/terms",
    }
    catalog.validate_output(nsids.BSKY_FEED_DESCRIBE_FEED_GENERATOR, body)


async def test_did_web_document_names_the_feed_generator_service(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/.well-known/did.json")
    assert response.status == 200
    document = DidDocument.parse(await response.read())
    assert document.id == SERVICE_DID
    assert document.feed_generator_endpoint == "https://feed.example.com"
    raw = await response.json()
    assert raw["service"] == [
        {
            "id": "#bsky_fg",
            "type": "BskyFeedGenerator",
            "serviceEndpoint": "https://feed.example.com",
        }
    ]


async def test_a_did_plc_identity_serves_no_did_web_document(make_client: MakeClient) -> None:
    client = await make_client(FEEDGEN_SERVICE_DID="did:plc:ewvi7nxzyoun6zhxrhs64oiz")
    assert (await client.get("/.well-known/did.json")).status == 404
    body = await (await client.get(DESCRIBE)).json()
    assert body["did"] == "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


async def test_health_reports_the_index(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client()
    response = await client.get("/xrpc/_health")
    assert response.status == 200
    assert "version" in await response.json()
    broken = await make_client(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite'}")
    response = await broken.get("/xrpc/_health")
    assert response.status == 503
    assert (await response.json())["error"] == "NotEnoughResources"


async def test_metrics_count_requests_and_cache_use(make_client: MakeClient, index: Index) -> None:
    await index.insert(around(PARIS, 3))
    client = await make_client(FEEDGEN_PAGE_CACHE_SECONDS="300")
    await skeleton(client, feed=NEARBY, limit=1)
    await skeleton(client, feed=NEARBY, limit=1)
    await skeleton(client, 400, feed=NEARBY + "x")
    text = await (await client.get("/metrics")).text()
    assert 'feedgen_requests_total{method="app.bsky.feed.getFeedSkeleton",status="200"} 2.0' in text
    assert 'feedgen_requests_total{method="app.bsky.feed.getFeedSkeleton",status="400"} 1.0' in text
    assert 'feedgen_first_page_cache_total{result="hit"} 1.0' in text
    assert 'feedgen_viewers_total{kind="anonymous"} 3.0' in text


async def test_metrics_want_the_operator_token_when_one_is_set(make_client: MakeClient) -> None:
    client = await make_client(FEEDGEN_METRICS_TOKEN="s3cret-token")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "AuthenticationRequired"
    response = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert response.status == 200
    assert "feedgen_requests_total" in await response.text()
    assert (await client.get("/xrpc/_health")).status == 200  # only /metrics is guarded


async def test_unknown_xrpc_methods_are_not_labelled_by_path(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/xrpc/com.example.nothing")
    assert response.status == 501
    assert (await response.json())["error"] == "MethodNotImplemented"
    text = await (await client.get("/metrics")).text()
    assert "com.example.nothing" not in text
    assert 'method="unknown",status="501"' in text


# -- getFeedSkeleton ------------------------------------------------------------------------------
async def test_anonymous_feed_is_global_newest_first(
    make_client: MakeClient, index: Index, catalog: Catalog
) -> None:
    checkins = around(PARIS, 4, prefix="p") + around(TOKYO, 4, prefix="t", step_ms=700)
    await index.insert(checkins)
    client = await make_client()
    body = await skeleton(client, feed=NEARBY)
    catalog.validate_output(nsids.BSKY_FEED_GET_FEED_SKELETON, body)
    newest_first = sorted(checkins, key=lambda c: (c.sort_at, c.key), reverse=True)
    assert [item["post"] for item in body["feed"]] == [c.post_uri for c in newest_first]
    assert {item["feedContext"] for item in body["feed"]} == {"band=global"}
    assert set(body) == {"feed", "reqId"}  # a short page has no cursor: the feed ends here


async def test_every_response_has_its_own_request_id(make_client: MakeClient, index: Index) -> None:
    await index.insert(around(PARIS, 2))
    client = await make_client(FEEDGEN_PAGE_CACHE_SECONDS="300")
    first = await skeleton(client, feed=NEARBY, limit=1)
    second = await skeleton(client, feed=NEARBY, limit=1)  # served from the first-page cache
    assert first["feed"] == second["feed"]
    assert first["reqId"] != second["reqId"]
    assert 0 < len(first["reqId"]) <= 100


@pytest.mark.parametrize(
    ("asked", "served"),
    [
        (None, 50),
        ("0", 1),
        ("-7", 1),
        ("1", 1),
        ("30", 30),
        ("100", 100),
        ("1000", 100),
        ("99999999999", 100),
    ],
)
async def test_limit_defaults_to_50_and_is_clamped(
    make_client: MakeClient, index: Index, asked: str | None, served: int
) -> None:
    await index.insert(around(PARIS, 130))
    client = await make_client()
    params: dict[str, Any] = {"feed": NEARBY}
    if asked is not None:
        params["limit"] = asked
    body = await skeleton(client, **params)
    assert len(body["feed"]) == served
    assert "cursor" in body


@pytest.mark.parametrize("limit", ["abc", "1.5", "0x10", "1_0", " 5", "+5", "1e3"])
async def test_non_integer_limit_is_invalid(make_client: MakeClient, limit: str) -> None:
    body = await skeleton(await make_client(), 400, feed=NEARBY, limit=limit)
    assert body["error"] == "InvalidRequest"


async def test_pages_never_exceed_the_limit_and_an_empty_page_ends_the_feed(
    make_client: MakeClient, index: Index
) -> None:
    checkins = around(PARIS, 6)
    await index.insert(checkins)
    client = await make_client()
    first = await skeleton(client, feed=NEARBY, limit=3)
    second = await skeleton(client, feed=NEARBY, limit=3, cursor=first["cursor"])
    last = await skeleton(client, feed=NEARBY, limit=3, cursor=second["cursor"])
    assert [len(p["feed"]) for p in (first, second, last)] == [3, 3, 0]
    assert "cursor" not in last
    served = [item["post"] for page in (first, second) for item in page["feed"]]
    assert served == [c.post_uri for c in checkins]


@pytest.mark.parametrize(
    "feed",
    [
        f"at://{PUBLISHER}/app.bsky.feed.generator/unknown",
        "at://did:plc:someoneelse/app.bsky.feed.generator/nearby",
        f"at://{PUBLISHER}/app.bsky.feed.post/nearby",
        f"at://{PUBLISHER}",
    ],
)
async def test_unknown_feed(make_client: MakeClient, feed: str) -> None:
    body = await skeleton(await make_client(), 400, feed=feed)
    assert body["error"] == "UnknownFeed"


@pytest.mark.parametrize("params", [{}, {"feed": ""}, {"feed": "https://example.com/feed"}])
async def test_missing_or_malformed_feed_parameter(
    make_client: MakeClient, params: dict[str, Any]
) -> None:
    body = await skeleton(await make_client(), 400, **params)
    assert body["error"] == "InvalidRequest"


async def test_garbage_or_foreign_cursor_is_bad_cursor(
    make_client: MakeClient, index: Index
) -> None:
    await index.insert(around(PARIS, 4))
    client = await make_client()
    for cursor in ("garbage", "AAAA", "bm90IGEgY3Vyc29y", "%%%"):
        body = await skeleton(client, 400, feed=NEARBY, cursor=cursor)
        assert body["error"] == "BadCursor"
    paris_cursor = (await skeleton(client, feed=PARIS_FEED, limit=2))["cursor"]
    body = await skeleton(client, 400, feed=NEARBY, cursor=paris_cursor)
    assert body["error"] == "BadCursor"


async def test_region_feed_ranks_around_its_city(make_client: MakeClient, index: Index) -> None:
    tokyo = around(TOKYO, 3, prefix="t")  # newer
    paris = around(PARIS, 3, prefix="p", step_ms=5_000)
    paris = [Checkin(**{**c.__dict__, "sort_at": c.sort_at - 100_000}) for c in paris]  # older
    await index.insert(tokyo + paris)
    body = await skeleton(await make_client(), feed=PARIS_FEED)
    assert [item["post"] for item in body["feed"]] == [c.post_uri for c in paris + tokyo]
    assert [item["feedContext"].split(";")[0] for item in body["feed"]] == ["band=near"] * 3 + [
        "band=world"
    ] * 3
    assert body["feed"][-1]["feedContext"].startswith("band=world;km=97")  # Paris-Tokyo ~9,700 km


# -- viewers --------------------------------------------------------------------------------------
async def viewer_did(plc_url: str, key: K256Keypair) -> str:
    genesis = create_genesis_op(
        signer=key, rotation_keys=[key.did()], signing_key=key.did(), handle="viewer.test"
    )
    did = did_for_genesis(genesis)
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{plc_url}/{did}", json=op_to_json(genesis))
        assert response.status == 200
    return did


async def test_a_verified_viewer_gets_their_city_first(
    make_client: MakeClient, index: Index, plc_url: str
) -> None:
    key = K256Keypair.generate()
    viewer = await viewer_did(plc_url, key)
    paris = around(PARIS, 3, prefix="p")  # newer
    tokyo = around(TOKYO, 3, prefix="t", step_ms=5_000)
    tokyo = [Checkin(**{**c.__dict__, "sort_at": c.sort_at - 100_000}) for c in tokyo]  # older
    in_tokyo = Checkin(
        did=viewer, rkey="b", lat_e6=TOKYO[0] + 500, lon_e6=TOKYO[1], sort_at=now_ms() - 120_000
    )
    earlier_in_paris = Checkin(
        did=viewer, rkey="a", lat_e6=PARIS[0], lon_e6=PARIS[1], sort_at=now_ms() - 9_000_000
    )
    await index.insert([*paris, *tokyo, in_tokyo, earlier_in_paris])
    client = await make_client()
    anonymous = await skeleton(client, feed=NEARBY)
    everyone = [*paris, in_tokyo, *tokyo, earlier_in_paris]  # newest first
    assert [i["post"] for i in anonymous["feed"]] == [c.post_uri for c in everyone]
    token = create_service_jwt(
        keypair=key, iss=viewer, aud=SERVICE_DID, lxm=nsids.BSKY_FEED_GET_FEED_SKELETON
    )
    authorization = {"Authorization": f"Bearer {token}"}
    body = await skeleton(client, headers=authorization, feed=NEARBY)
    near_tokyo_first = [in_tokyo, *tokyo, *paris, earlier_in_paris]
    assert [i["post"] for i in body["feed"]] == [c.post_uri for c in near_tokyo_first]
    assert [i["feedContext"].split(";")[0] for i in body["feed"]] == ["band=near"] * 4 + [
        "band=world"
    ] * 4
    # A newer check-in in Paris moves the anchor (a fresh app: no cached anchor).
    back_in_paris = Checkin(
        did=viewer, rkey="c", lat_e6=PARIS[0], lon_e6=PARIS[1], sort_at=now_ms() - 1_000
    )
    await index.insert([back_in_paris])
    body = await skeleton(await make_client(), headers=authorization, feed=NEARBY)
    near_paris_first = [back_in_paris, *paris, earlier_in_paris, in_tokyo, *tokyo]
    assert [i["post"] for i in body["feed"]] == [c.post_uri for c in near_paris_first]


async def test_an_invalid_token_is_401_never_the_anonymous_feed(
    make_client: MakeClient, plc_url: str
) -> None:
    key = K256Keypair.generate()
    viewer = await viewer_did(plc_url, key)
    client = await make_client()
    wrong_aud = create_service_jwt(
        keypair=key,
        iss=viewer,
        aud="did:web:elsewhere.example",
        lxm=nsids.BSKY_FEED_GET_FEED_SKELETON,
    )
    body = await skeleton(
        client, 401, headers={"Authorization": f"Bearer {wrong_aud}"}, feed=NEARBY
    )
    assert body["error"] == "BadJwtAudience"
    body = await skeleton(client, 401, headers={"Authorization": "Bearer not.a.jwt"}, feed=NEARBY)
    assert body["error"] == "BadJwt"


async def test_a_full_near_page_never_asks_the_farther_bands(
    make_client: MakeClient, index: Index
) -> None:
    await index.insert(around(PARIS, 40, prefix="p") + around(TOKYO, 5, prefix="t"))
    client = await make_client()
    body = await skeleton(client, feed=PARIS_FEED, limit=30)
    assert {item["feedContext"].split(";")[0] for item in body["feed"]} == {"band=near"}
    text = await (await client.get("/metrics")).text()
    assert 'feedgen_band_queries_total{band="near"} 1.0' in text
    assert 'band="world"' not in text
    assert 'band="city"' not in text
    last = await skeleton(client, feed=PARIS_FEED, limit=30, cursor=body["cursor"])
    assert len(last["feed"]) == 15  # the last 10 near, then the 5 in Tokyo
    text = await (await client.get("/metrics")).text()
    assert 'feedgen_band_queries_total{band="world"} 1.0' in text
