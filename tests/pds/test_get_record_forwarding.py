"""`com.atproto.repo.getRecord` for repos this PDS does not host: forwarded to the AppView.

A live PDS is configured with a fake AppView on loopback (`RecordAppView`, a `FakeService` that
answers getRecord for any repo and records each call with its raw query). The record key picks
how the fake answers, so each upstream failure is one request: a canned record, an XRPC error,
a 500, a body over the PDS's response limit (announced or streamed), HTML, a JSON array, a
redirect, or silence past the PDS's headers timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import pytest
from aiohttp import web
from atproto import Client
from atproto_client.exceptions import BadRequestError

from atcore import dagcbor, nsids
from atcore.cid import CID
from tests.pds.bsky_support import FakeService, Recorded, Reply, call
from tests.pds.stack import LiveAccount, Stack, create_account, post_json, start_stack

FOREIGN_DID: Final = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
FOREIGN_HANDLE: Final = "someone.elsewhere.example"
POST = nsids.BSKY_FEED_POST
FOREIGN_POST: Final = {
    "$type": POST,
    "text": "checked in somewhere else",
    "createdAt": "2024-05-01T12:00:00.000Z",
}
FOREIGN_CID: Final = str(CID.for_dag_cbor(dagcbor.encode(FOREIGN_POST)))
# The PDS's limits for upstream answers (PDS_PROXY_MAX_RESPONSE_SIZE, PDS_PROXY_HEADERS_TIMEOUT):
# small, so the oversized and silent fakes are quick, and far from what they send or wait.
MAX_RESPONSE: Final = 256 * 1024
HEADERS_TIMEOUT_MS: Final = 1500
SLOW_SECONDS: Final = 6.0
CONTENT_TYPE: Final = "application/json; charset=utf-8"

# Record keys that make the fake misbehave (any other key gets the canned record).
MISSING, BOOM, HTML, ARRAY, REDIRECT, SLOW = "missing", "boom", "html", "array", "redirect", "slow"
HUGE, HUGE_STREAMED, BIG_STREAMED = "huge", "hugestreamed", "bigstreamed"


def canned_answer(repo: str, collection: str, rkey: str, padding: int = 0) -> bytes:
    """The fake's record, in a spelling of its own (indented) so byte-for-byte relaying shows."""
    value = dict(FOREIGN_POST, text=FOREIGN_POST["text"] + " " * padding)
    answer = {"uri": f"at://{repo}/{collection}/{rkey}", "cid": FOREIGN_CID, "value": value}
    return json.dumps(answer, indent=1).encode()


@dataclass
class RecordAppView(FakeService):
    """A fake AppView whose getRecord serves every repo; `raw_queries` holds each raw query."""

    raw_queries: list[str] = field(default_factory=list)

    def record_calls(self) -> int:
        return len(self.requests_for(nsids.REPO_GET_RECORD))

    async def _xrpc(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["nsid"] != nsids.REPO_GET_RECORD:
            return await super()._xrpc(request)
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(
            Recorded(request.method, request.path, list(request.query.items()), headers, b"")
        )
        self.raw_queries.append(request.raw_path.partition("?")[2])
        query = request.query
        return await self._answer(request, query["repo"], query["collection"], query["rkey"])

    async def _answer(
        self, request: web.Request, repo: str, collection: str, rkey: str
    ) -> web.StreamResponse:
        if rkey == MISSING:
            error = {"error": "RecordNotFound", "message": "Could not locate record"}
            return web.json_response(error, status=400)
        if rkey == BOOM:
            error = {"error": "InternalServerError", "message": "the fake fell over"}
            return web.json_response(error, status=500)
        if rkey == HTML:
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if rkey == ARRAY:
            return web.json_response([canned_answer(repo, collection, rkey).decode()])
        if rkey == REDIRECT:
            return web.Response(status=302, headers={"location": "http://127.0.0.1:9/"})
        if rkey == SLOW:
            await asyncio.sleep(self.slow_seconds)
        if rkey == HUGE:
            body = canned_answer(repo, collection, rkey, padding=MAX_RESPONSE)
            return web.Response(body=body, headers={"content-type": CONTENT_TYPE})
        if rkey in (HUGE_STREAMED, BIG_STREAMED):
            padding = MAX_RESPONSE if rkey == HUGE_STREAMED else MAX_RESPONSE // 2
            return await _streamed(request, canned_answer(repo, collection, rkey, padding))
        body = canned_answer(repo, collection, rkey)
        headers = {"content-type": CONTENT_TYPE, "atproto-content-labelers": "did:plc:labeler"}
        return web.Response(body=body, headers=headers)


async def _streamed(request: web.Request, body: bytes) -> web.StreamResponse:
    """`body` chunked (no content-length), in pieces with pauses, so it arrives in parts."""
    response = web.StreamResponse(headers={"content-type": CONTENT_TYPE})
    await response.prepare(request)
    piece = 32 * 1024
    for start in range(0, len(body), piece):
        await response.write(body[start : start + piece])
        await asyncio.sleep(0.02)
    await response.write_eof()
    return response


@pytest.fixture(scope="module")
def appview() -> Iterator[RecordAppView]:
    service = RecordAppView(slow_seconds=SLOW_SECONDS)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, appview: RecordAppView) -> Iterator[Stack]:
    env = {
        "PDS_BSKY_APP_VIEW_URL": appview.url,
        "PDS_BSKY_APP_VIEW_DID": appview.did,
        "PDS_PROXY_HEADERS_TIMEOUT": str(HEADERS_TIMEOUT_MS),
        "PDS_PROXY_MAX_RESPONSE_SIZE": str(MAX_RESPONSE),
    }
    with start_stack(tmp_path_factory.mktemp("get-record-stack"), **env) as running:
        yield running


@dataclass(frozen=True)
class LocalRecord:
    account: LiveAccount
    rkey: str
    cid: str


@pytest.fixture(scope="module")
def local(stack: Stack) -> LocalRecord:
    """An account on the stack with one post."""
    account = create_account(stack, "getrec")
    record = {"$type": POST, "text": "hosted here", "createdAt": "2024-05-01T12:00:00.000Z"}
    body = {"repo": account.did, "collection": POST, "record": record}
    status, created = post_json(stack.xrpc(nsids.REPO_CREATE_RECORD), body, account.bearer)
    assert status == 200, created
    return LocalRecord(account, created["uri"].rsplit("/", 1)[1], created["cid"])


def get_record(stack: Stack, query: str, **headers: str) -> Reply:
    return call(f"{stack.xrpc(nsids.REPO_GET_RECORD)}?{query}", headers=headers)


def record_query(repo: str, rkey: str, **extra: str) -> str:
    return urlencode({"repo": repo, "collection": POST, "rkey": rkey, **extra})


def assert_error(reply: Reply, status: int, error: str, message: str | None = None) -> None:
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json"), reply
    body: dict[str, Any] = reply.json()
    assert body["error"] == error, body
    if message is not None:
        assert message in body["message"], body


# -- repos hosted here: answered here, never forwarded --------------------------------------
@pytest.mark.parametrize("by", ["did", "handle"])
def test_local_record_is_served_here(
    stack: Stack, appview: RecordAppView, local: LocalRecord, by: str
) -> None:
    before = appview.record_calls()
    repo = local.account.did if by == "did" else local.account.handle.upper()
    reply = get_record(stack, record_query(repo, local.rkey))
    assert reply.status == 200, reply
    body = reply.json()
    assert body["uri"] == f"at://{local.account.did}/{POST}/{local.rkey}"
    assert body["cid"] == local.cid
    assert body["value"]["text"] == "hosted here"
    assert appview.record_calls() == before


def test_local_cid_must_match(stack: Stack, appview: RecordAppView, local: LocalRecord) -> None:
    before = appview.record_calls()
    matching = get_record(stack, record_query(local.account.did, local.rkey, cid=local.cid))
    assert matching.status == 200, matching
    other = get_record(stack, record_query(local.account.did, local.rkey, cid=FOREIGN_CID))
    assert_error(other, 400, "RecordNotFound", local.rkey)
    assert appview.record_calls() == before


def test_missing_local_record_is_not_forwarded(
    stack: Stack, appview: RecordAppView, local: LocalRecord
) -> None:
    before = appview.record_calls()
    reply = get_record(stack, record_query(local.account.handle, "3kaaaaaaaaaa2"))
    uri = f"at://{local.account.did}/{POST}/3kaaaaaaaaaa2"
    assert_error(reply, 400, "RecordNotFound", f"Could not locate record: {uri}")
    assert appview.record_calls() == before


def test_deactivated_local_repo_is_not_forwarded(stack: Stack, appview: RecordAppView) -> None:
    account = create_account(stack, "gone")
    status, body = post_json(stack.xrpc(nsids.SERVER_DEACTIVATE_ACCOUNT), {}, account.bearer)
    assert status == 200, body
    before = appview.record_calls()
    reply = get_record(stack, record_query(account.did, "3kaaaaaaaaaa2"))
    assert_error(reply, 400, "InvalidRequest", "Could not locate record")
    assert appview.record_calls() == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (record_query("not a did!", "self"), "Params/repo"),
        (urlencode({"repo": FOREIGN_DID, "collection": "notnsid", "rkey": "self"}), "collection"),
        (record_query(FOREIGN_DID, ".."), "Params/rkey"),
        (record_query(FOREIGN_DID, "self", cid="bafynotacid"), "Params/cid"),
        (urlencode({"repo": FOREIGN_DID, "collection": POST}), '"rkey"'),
        (record_query(FOREIGN_DID, "self") + f"&repo={FOREIGN_HANDLE}", "Params/repo"),
    ],
)
def test_invalid_params_are_refused_here(
    stack: Stack, appview: RecordAppView, query: str, message: str
) -> None:
    before = appview.record_calls()
    assert_error(get_record(stack, query), 400, "InvalidRequest", message)
    assert appview.record_calls() == before


# -- other repos: the AppView's answer -------------------------------------------------------
@pytest.mark.parametrize("repo", [FOREIGN_DID, FOREIGN_HANDLE])
def test_foreign_record_is_relayed_from_the_appview(
    stack: Stack, appview: RecordAppView, local: LocalRecord, repo: str
) -> None:
    query = record_query(repo, "3kabcdefghij2", cid=FOREIGN_CID, extra="a b/c")
    reply = get_record(stack, query, **local.account.bearer, **{"accept-language": "pt"})
    assert reply.status == 200, reply
    assert reply.body == canned_answer(repo, POST, "3kabcdefghij2")
    assert reply.headers["content-type"] == CONTENT_TYPE
    assert reply.headers["atproto-content-labelers"] == "did:plc:labeler"

    assert appview.raw_queries[-1] == query
    seen = appview.last(nsids.REPO_GET_RECORD)
    assert seen.method == "GET"
    assert seen.headers["accept-language"] == "pt"
    # A public read: no service auth, and the caller's own token never leaves the PDS.
    assert "authorization" not in seen.headers


def test_record_streamed_in_parts_is_read_whole(stack: Stack, appview: RecordAppView) -> None:
    reply = get_record(stack, record_query(FOREIGN_DID, BIG_STREAMED))
    assert reply.status == 200, reply
    padded = canned_answer(FOREIGN_DID, POST, BIG_STREAMED, padding=MAX_RESPONSE // 2)
    assert reply.body == padded


def test_appview_xrpc_error_is_relayed(stack: Stack, appview: RecordAppView) -> None:
    reply = get_record(stack, record_query(FOREIGN_DID, MISSING))
    assert_error(reply, 400, "RecordNotFound", "Could not locate record")


@pytest.mark.parametrize(
    ("rkey", "status", "error"),
    [
        (BOOM, 502, "InternalServerError"),  # the upstream's name, as every relayed error
        (HTML, 502, "UpstreamFailure"),
        (ARRAY, 502, "UpstreamFailure"),
        (REDIRECT, 502, "UpstreamFailure"),
        (HUGE, 502, "UpstreamFailure"),
        (HUGE_STREAMED, 502, "UpstreamFailure"),
        (SLOW, 504, "UpstreamTimeout"),
    ],
)
def test_bad_appview_answers_are_clear_errors(
    stack: Stack, appview: RecordAppView, rkey: str, status: int, error: str
) -> None:
    before = appview.record_calls()
    assert_error(get_record(stack, record_query(FOREIGN_DID, rkey)), status, error)
    assert appview.record_calls() == before + 1


def test_unreachable_appview_is_upstream_failure(
    tmp_path_factory: pytest.TempPathFactory, appview: RecordAppView
) -> None:
    env = {
        "PDS_BSKY_APP_VIEW_URL": f"http://127.0.0.1:{appview.dead_port}",
        "PDS_BSKY_APP_VIEW_DID": appview.did,
    }
    with start_stack(tmp_path_factory.mktemp("dead-appview"), **env) as dead:
        reply = get_record(dead, record_query(FOREIGN_DID, "self"))
    assert_error(reply, 502, "UpstreamFailure")


def test_without_an_appview_a_foreign_record_is_not_found(pds_stack: Stack) -> None:
    assert pds_stack.settings.bsky_app_view_url is None
    reply = get_record(pds_stack, record_query(FOREIGN_DID, "self"))
    assert_error(reply, 400, "InvalidRequest", "Could not locate record")


# -- the real atproto SDK -------------------------------------------------------------------
def test_sdk_reads_a_foreign_record_through_our_pds(stack: Stack, appview: RecordAppView) -> None:
    client = Client(base_url=stack.pds_url)
    try:
        params = {"repo": FOREIGN_DID, "collection": POST, "rkey": "3kabcdefghij2"}
        record = client.com.atproto.repo.get_record(params)
        assert record.uri == f"at://{FOREIGN_DID}/{POST}/3kabcdefghij2"
        assert record.cid == FOREIGN_CID
        assert record.value.text == FOREIGN_POST["text"]
        assert dict(appview.last(nsids.REPO_GET_RECORD).query) == params

        with pytest.raises(BadRequestError) as missing:
            client.com.atproto.repo.get_record({**params, "rkey": MISSING})
        assert missing.value.response is not None
        assert missing.value.response.content.error == "RecordNotFound"
    finally:
        client.request.close()
