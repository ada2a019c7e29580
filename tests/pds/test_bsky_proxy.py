"""Service proxying through a real PDS to fake services on loopback.

Every service JWT the fakes receive is checked with atcore alone against the account's `#atproto`
key in the local PLC directory (`check_service_jwt`).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from atcore import nsids
from tests.pds.bsky_support import (
    FAKE_BLOCKED,
    FAKE_BOOM,
    FAKE_ECHO,
    FAKE_GZIP,
    FAKE_SLOW,
    REPO_REV,
    TIMELINE,
    FakeService,
    Reply,
    call,
    check_service_jwt,
)
from tests.pds.stack import LiveAccount, Stack, create_account, start_stack

FEEDGEN_DID = "did:web:feeds.skyspot.example"
# The stack waits this long for an upstream's headers (PDS_PROXY_HEADERS_TIMEOUT, in ms), well
# below how long the slow fake stays silent, so the 504 test is quick and unambiguous.
HEADERS_TIMEOUT_MS = 3000
SLOW_SECONDS = 8.0


@pytest.fixture(scope="module")
def appview() -> Iterator[FakeService]:
    service = FakeService().start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[FakeService]:
    """A second service with its own did:web, reached only through `atproto-proxy`."""
    service = FakeService(slow_seconds=SLOW_SECONDS).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, appview: FakeService) -> Iterator[Stack]:
    env = {
        "PDS_BSKY_APP_VIEW_URL": appview.url,
        "PDS_BSKY_APP_VIEW_DID": appview.did,
        "PDS_PROXY_HEADERS_TIMEOUT": str(HEADERS_TIMEOUT_MS),
    }
    with start_stack(tmp_path_factory.mktemp("appview-stack"), **env) as running:
        yield running


@pytest.fixture
def account(stack: Stack) -> LiveAccount:
    return create_account(stack, "proxy")


def get(
    stack: Stack, nsid: str, account: LiveAccount | None, query: str = "", **headers: str
) -> Reply:
    auth = account.bearer if account is not None else {}
    url = stack.xrpc(nsid) + (f"?{query}" if query else "")
    return call(url, headers={**auth, **headers})


def assert_error(reply: Reply, status: int, error: str, message: str | None = None) -> None:
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["error"] == error, body
    if message is not None:
        assert message in body["message"], body


# -- relaying to the configured AppView ------------------------------------------------------------
def test_query_is_relayed_with_a_service_jwt(
    stack: Stack, appview: FakeService, account: LiveAccount
) -> None:
    reply = get(
        stack,
        TIMELINE,
        account,
        "limit=5&cursor=a%2Fb",
        **{"Accept-Language": "pt-BR", "atproto-accept-labelers": "did:plc:labeler"},
    )
    assert reply.status == 200, reply
    assert reply.json() == {"feed": [], "cursor": "next-page"}
    assert reply.headers["atproto-repo-rev"] == REPO_REV
    assert reply.headers["content-language"] == "en"

    seen = appview.last(TIMELINE)
    assert seen.method == "GET"
    assert seen.query == [("limit", "5"), ("cursor", "a/b")]
    assert seen.headers["accept-language"] == "pt-BR"
    assert seen.headers["atproto-accept-labelers"] == "did:plc:labeler"
    assert seen.bearer != account.access_jwt
    check_service_jwt(
        seen.bearer, plc_url=stack.plc_url, iss=account.did, aud=appview.did, lxm=TIMELINE
    )


def test_procedure_body_is_relayed(
    stack: Stack, appview: FakeService, account: LiveAccount
) -> None:
    message = {"convoId": "c1", "message": {"text": "olá"}}
    reply = call(stack.xrpc(FAKE_ECHO), method="POST", headers=account.bearer, body=message)
    assert reply.status == 200, reply
    assert reply.json() == {"echo": message}
    seen = appview.last(FAKE_ECHO)
    assert seen.method == "POST"
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == message
    check_service_jwt(
        seen.bearer, plc_url=stack.plc_url, iss=account.did, aud=appview.did, lxm=FAKE_ECHO
    )


def test_compressed_answers_pass_through_unchanged(stack: Stack, account: LiveAccount) -> None:
    reply = get(stack, FAKE_GZIP, account, **{"Accept-Encoding": "gzip, br"})
    assert reply.status == 200, reply
    assert reply.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(reply.body)) == {"compressed": True}


def test_accept_encoding_is_limited_to_what_the_pds_can_read(
    stack: Stack, appview: FakeService, account: LiveAccount
) -> None:
    get(stack, TIMELINE, account, **{"Accept-Encoding": "br, gzip;q=0.5, zstd"})
    assert appview.last(TIMELINE).headers["accept-encoding"] == "gzip;q=0.5"


# -- atproto-proxy ---------------------------------------------------------------------------------
def test_proxy_header_picks_the_service_from_its_did_document(
    stack: Stack, appview: FakeService, elsewhere: FakeService, account: LiveAccount
) -> None:
    before = len(appview.requests_for(TIMELINE))
    reply = get(stack, TIMELINE, account, **{"atproto-proxy": f"{elsewhere.did}#bsky_appview"})
    assert reply.status == 200, reply
    assert len(appview.requests_for(TIMELINE)) == before
    seen = elsewhere.last(TIMELINE)
    check_service_jwt(
        seen.bearer, plc_url=stack.plc_url, iss=account.did, aud=elsewhere.did, lxm=TIMELINE
    )


def test_proxy_header_reaches_methods_outside_app_bsky(
    stack: Stack, elsewhere: FakeService, account: LiveAccount
) -> None:
    nsid = "com.atproto.moderation.createReport"
    reply = call(
        stack.xrpc(nsid),
        method="POST",
        headers={**account.bearer, "atproto-proxy": f"{elsewhere.did}#bsky_chat"},
        body={"reasonType": "com.atproto.moderation.defs#reasonSpam"},
    )
    assert_error(reply, 501, "MethodNotImplemented")  # relayed from the fake, which lacks it
    seen = elsewhere.last(nsid)
    check_service_jwt(
        seen.bearer, plc_url=stack.plc_url, iss=account.did, aud=elsewhere.did, lxm=nsid
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("#bsky_appview", "no did specified"),
        ("did:web:example.com", "no service id specified"),
        ("did:web:example.com#", "no service id specified"),
        ("did:web:example.com#a#b", "invalid proxy header format"),
        ("not-a-did#bsky_appview", "invalid proxy header format"),
    ],
)
def test_malformed_proxy_headers(
    stack: Stack, account: LiveAccount, header: str, message: str
) -> None:
    assert_error(
        get(stack, TIMELINE, account, **{"atproto-proxy": header}), 400, "InvalidRequest", message
    )


def test_proxy_header_with_unknown_service_id(
    stack: Stack, elsewhere: FakeService, account: LiveAccount
) -> None:
    reply = get(stack, TIMELINE, account, **{"atproto-proxy": f"{elsewhere.did}#nope"})
    assert_error(reply, 400, "InvalidRequest", "could not resolve proxy did service url")


def test_proxy_header_with_unresolvable_did(stack: Stack, account: LiveAccount) -> None:
    reply = get(stack, TIMELINE, account, **{"atproto-proxy": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#x"})
    assert_error(reply, 400, "InvalidRequest", "could not resolve proxy did")


@pytest.mark.parametrize(
    ("nsid", "error", "message"),
    [
        # Not served here: the catch-all refuses to relay account management.
        (nsids.ADMIN_SEND_EMAIL, "InvalidToken", "Bad token method"),
        # Served here (account migration): answered locally, whatever the header names.
        (nsids.IDENTITY_SIGN_PLC_OPERATION, "InvalidRequest", None),
    ],
)
def test_account_management_is_never_proxied(
    stack: Stack,
    elsewhere: FakeService,
    account: LiveAccount,
    nsid: str,
    error: str,
    message: str | None,
) -> None:
    reply = call(
        stack.xrpc(nsid),
        method="POST",
        headers={**account.bearer, "atproto-proxy": f"{elsewhere.did}#bsky_appview"},
        body={},
    )
    assert_error(reply, 400, error, message)
    assert elsewhere.requests_for(nsid) == []


def test_preferences_stay_local_unless_another_appview_is_named(
    stack: Stack, appview: FakeService, elsewhere: FakeService, account: LiveAccount
) -> None:
    prefs = [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": False}]
    own = {**account.bearer, "atproto-proxy": f"{appview.did}#bsky_appview"}
    put = call(
        stack.xrpc(nsids.BSKY_ACTOR_PUT_PREFERENCES),
        method="POST",
        headers=own,
        body={"preferences": prefs},
    )
    assert put.status == 200, put
    read = call(stack.xrpc(nsids.BSKY_ACTOR_GET_PREFERENCES), headers=own)
    assert read.json() == {"preferences": prefs}
    assert appview.requests_for(nsids.BSKY_ACTOR_GET_PREFERENCES) == []

    other = {**account.bearer, "atproto-proxy": f"{elsewhere.did}#bsky_appview"}
    relayed = call(stack.xrpc(nsids.BSKY_ACTOR_GET_PREFERENCES), headers=other)
    assert_error(relayed, 501, "MethodNotImplemented")  # the fake does not serve preferences
    check_service_jwt(
        elsewhere.last(nsids.BSKY_ACTOR_GET_PREFERENCES).bearer,
        plc_url=stack.plc_url,
        iss=account.did,
        aud=elsewhere.did,
        lxm=nsids.BSKY_ACTOR_GET_PREFERENCES,
    )


# -- upstream failures -----------------------------------------------------------------------------
def test_upstream_500_becomes_502(stack: Stack, account: LiveAccount) -> None:
    assert_error(get(stack, FAKE_BOOM, account), 502, "InternalServerError", "the fake fell over")


def test_upstream_errors_keep_their_status_name_and_headers(
    stack: Stack, account: LiveAccount
) -> None:
    reply = get(stack, FAKE_BLOCKED, account)
    assert_error(reply, 400, "BlockedActor", "blocked by the fake")
    assert reply.headers["retry-after"] == "7"


def test_unreachable_upstream_is_502(
    stack: Stack, elsewhere: FakeService, account: LiveAccount
) -> None:
    reply = get(stack, TIMELINE, account, **{"atproto-proxy": f"{elsewhere.did}#dead"})
    assert_error(reply, 502, "UpstreamFailure")


def test_silent_upstream_is_504(stack: Stack, elsewhere: FakeService, account: LiveAccount) -> None:
    started = time.monotonic()
    reply = get(stack, FAKE_SLOW, account, **{"atproto-proxy": f"{elsewhere.did}#bsky_appview"})
    assert_error(reply, 504, "UpstreamTimeout")
    assert HEADERS_TIMEOUT_MS / 1000 <= time.monotonic() - started < SLOW_SECONDS


# -- authentication --------------------------------------------------------------------------------
def test_proxying_needs_a_session(stack: Stack, appview: FakeService) -> None:
    before = len(appview.requests_for(TIMELINE))
    assert_error(get(stack, TIMELINE, None), 401, "AuthMissing")
    assert len(appview.requests_for(TIMELINE)) == before


def _app_password_session(
    stack: Stack, account: LiveAccount, *, privileged: bool
) -> dict[str, str]:
    created = call(
        stack.xrpc(nsids.SERVER_CREATE_APP_PASSWORD),
        method="POST",
        headers=account.bearer,
        body={"name": f"app-{privileged}", "privileged": privileged},
    )
    assert created.status == 200, created
    session = call(
        stack.xrpc(nsids.SERVER_CREATE_SESSION),
        method="POST",
        body={"identifier": account.handle, "password": created.json()["password"]},
    )
    assert session.status == 200, session
    return {"Authorization": f"Bearer {session.json()['accessJwt']}"}


def test_chat_needs_more_than_a_plain_app_password(
    stack: Stack, appview: FakeService, account: LiveAccount
) -> None:
    plain = _app_password_session(stack, account, privileged=False)
    reply = call(stack.xrpc(FAKE_ECHO), method="POST", headers=plain, body={})
    assert_error(reply, 400, "InvalidToken", "Bad token method")
    assert call(stack.xrpc(TIMELINE), headers=plain).status == 200

    privileged = _app_password_session(stack, account, privileged=True)
    reply = call(stack.xrpc(FAKE_ECHO), method="POST", headers=privileged, body={"n": 1})
    assert reply.status == 200, reply
    assert appview.last(FAKE_ECHO).body == b'{"n": 1}'


def test_privileged_namespace_is_matched_whatever_its_case(
    stack: Stack, elsewhere: FakeService, account: LiveAccount
) -> None:
    """NSID authorities are case-insensitive: `Chat.Bsky.*` is still chat, and a plain app
    password may not reach it through `atproto-proxy` either."""
    nsid = "Chat.Bsky.convo.sendMessage"
    plain = _app_password_session(stack, account, privileged=False)
    headers = {**plain, "atproto-proxy": f"{elsewhere.did}#bsky_chat"}
    reply = call(stack.xrpc(nsid), method="POST", headers=headers, body={})
    assert_error(reply, 400, "InvalidToken", "Bad token method")
    assert elsewhere.requests_for(nsid) == []


# -- getFeed ---------------------------------------------------------------------------------------
def _create_generator(stack: Stack, account: LiveAccount, rkey: str, did: str) -> str:
    record = {
        "$type": nsids.BSKY_FEED_GENERATOR,
        "did": did,
        "displayName": "Nearby",
        "createdAt": "2024-05-01T12:00:00.000Z",
    }
    reply = call(
        stack.xrpc(nsids.REPO_CREATE_RECORD),
        method="POST",
        headers=account.bearer,
        body={
            "repo": account.did,
            "collection": nsids.BSKY_FEED_GENERATOR,
            "rkey": rkey,
            "record": record,
        },
    )
    assert reply.status == 200, reply
    return str(reply.json()["uri"])


def test_get_feed_mints_a_token_for_the_feed_generator(
    stack: Stack, appview: FakeService, account: LiveAccount
) -> None:
    feed = _create_generator(stack, account, "nearby", FEEDGEN_DID)
    reply = get(stack, nsids.BSKY_FEED_GET_FEED, account, f"feed={quote(feed)}&limit=10")
    assert reply.status == 200, reply
    assert reply.json() == {"feed": [], "cursor": "feed-cursor"}
    seen = appview.last(nsids.BSKY_FEED_GET_FEED)
    assert seen.query == [("feed", feed), ("limit", "10")]
    check_service_jwt(
        seen.bearer,
        plc_url=stack.plc_url,
        iss=account.did,
        aud=FEEDGEN_DID,
        lxm=nsids.BSKY_FEED_GET_FEED_SKELETON,
    )


def test_get_feed_accepts_a_handle_in_the_feed_uri(
    stack: Stack, appview: FakeService, account: LiveAccount
) -> None:
    _create_generator(stack, account, "byhandle", FEEDGEN_DID)
    feed = f"at://{account.handle}/{nsids.BSKY_FEED_GENERATOR}/byhandle"
    assert get(stack, nsids.BSKY_FEED_GET_FEED, account, f"feed={quote(feed)}").status == 200
    claims = check_service_jwt(
        appview.last(nsids.BSKY_FEED_GET_FEED).bearer,
        plc_url=stack.plc_url,
        iss=account.did,
        aud=FEEDGEN_DID,
        lxm=nsids.BSKY_FEED_GET_FEED_SKELETON,
    )
    assert claims["iss"] == account.did


def test_get_feed_reads_a_remote_generator_record_from_its_pds(
    stack: Stack, appview: FakeService, elsewhere: FakeService, account: LiveAccount
) -> None:
    remote_feedgen = "did:web:remote-feeds.example"
    elsewhere.generator_records["remote"] = {
        "$type": nsids.BSKY_FEED_GENERATOR,
        "did": remote_feedgen,
        "displayName": "Far away",
        "createdAt": "2024-05-01T12:00:00.000Z",
    }
    feed = f"at://{elsewhere.did}/{nsids.BSKY_FEED_GENERATOR}/remote"
    reply = get(stack, nsids.BSKY_FEED_GET_FEED, account, f"feed={quote(feed)}")
    assert reply.status == 200, reply
    assert elsewhere.last(nsids.REPO_GET_RECORD).query == [
        ("repo", elsewhere.did),
        ("collection", nsids.BSKY_FEED_GENERATOR),
        ("rkey", "remote"),
    ]
    check_service_jwt(
        appview.last(nsids.BSKY_FEED_GET_FEED).bearer,
        plc_url=stack.plc_url,
        iss=account.did,
        aud=remote_feedgen,
        lxm=nsids.BSKY_FEED_GET_FEED_SKELETON,
    )


@pytest.mark.parametrize(
    "feed",
    [
        pytest.param("at://{did}/app.bsky.feed.generator/missing", id="no-such-record"),
        pytest.param("at://{did}/app.bsky.feed.post/3jwdwj2ctlk26", id="not-a-generator"),
        pytest.param("at://{remote}/app.bsky.feed.generator/missing", id="remote-missing"),
    ],
)
def test_get_feed_unknown_feeds(
    stack: Stack, elsewhere: FakeService, account: LiveAccount, feed: str
) -> None:
    uri = feed.format(did=account.did, remote=elsewhere.did)
    reply = get(stack, nsids.BSKY_FEED_GET_FEED, account, f"feed={quote(uri)}")
    assert_error(reply, 400, "UnknownFeed")


def test_get_feed_checks_its_parameters(stack: Stack, account: LiveAccount) -> None:
    reply = get(stack, nsids.BSKY_FEED_GET_FEED, account, "feed=https%3A%2F%2Fexample.com")
    assert_error(reply, 400, "InvalidRequest", "feed")


# -- no AppView ------------------------------------------------------------------------------------
@pytest.mark.parametrize("nsid", [TIMELINE, FAKE_ECHO, nsids.BSKY_FEED_GET_FEED])
def test_without_an_appview_bsky_calls_fail_clearly(
    pds_stack: Stack, new_account: Callable[..., LiveAccount], nsid: str
) -> None:
    account = new_account("noview")
    feed = f"at://{account.did}/{nsids.BSKY_FEED_GENERATOR}/x"
    reply = get(pds_stack, nsid, account, f"feed={quote(feed)}")
    assert_error(reply, 400, "InvalidRequest", f"No service configured for {nsid}")


def test_unknown_methods_are_not_implemented(pds_stack: Stack) -> None:
    assert_error(call(pds_stack.xrpc("com.atproto.unknown.method")), 501, "MethodNotImplemented")
    assert_error(call(pds_stack.xrpc("not..an.nsid")), 501, "MethodNotImplemented")


def test_wrong_http_method_on_a_local_endpoint(pds_stack: Stack) -> None:
    reply = call(pds_stack.xrpc(nsids.BSKY_ACTOR_PUT_PREFERENCES))
    assert reply.status == 405, reply
    assert reply.json()["error"] == "InvalidRequest"


# -- request size ----------------------------------------------------------------------------------
async def test_oversized_request_bodies_are_refused(tmp_path: Path, appview: FakeService) -> None:
    env = {
        "PDS_BSKY_APP_VIEW_URL": appview.url,
        "PDS_BSKY_APP_VIEW_DID": appview.did,
        "PDS_BLOB_UPLOAD_LIMIT": "1000",
    }

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 400

    with start_stack(tmp_path, **env) as small:
        account = await asyncio.to_thread(create_account, small, "big")
        headers = {**account.bearer, "Content-Type": "application/json"}
        before = len(appview.requests_for(FAKE_ECHO))
        async with aiohttp.ClientSession() as http:
            for data in (b"x" * 1001, chunked()):
                async with http.post(small.xrpc(FAKE_ECHO), data=data, headers=headers) as reply:
                    assert reply.status == 413
                    assert (await reply.json())["error"] == "PayloadTooLarge"
            within = json.dumps({"text": "x" * 900}).encode()
            async with http.post(small.xrpc(FAKE_ECHO), data=within, headers=headers) as reply:
                assert reply.status == 200
        assert len(appview.requests_for(FAKE_ECHO)) == before + 1
