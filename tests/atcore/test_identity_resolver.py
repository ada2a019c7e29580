"""atcore.identity resolvers against real HTTP servers on loopback.

A small aiohttp app plays the outside world: it serves did:web documents (for whatever host it
is reached as) and `/.well-known/atproto-did` handle files, counts requests, and can be told to
fail or to hold replies. A test DNS resolver plugged into aiohttp maps handle hostnames to it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from atcore.crypto import K256Keypair
from atcore.identity import (
    DidNotFound,
    HandleMismatch,
    HandleNotFound,
    InvalidDidDocument,
    ResolutionUnavailable,
    UnsupportedDidMethod,
    atproto_account_document,
)
from atcore.identity.handles import HandleResolver, IdentityResolver
from atcore.identity.resolver import MAX_DOCUMENT_BYTES, DidResolver
from tests.atcore.identity_support import FakeMonotonic

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
SIGNING_KEY = K256Keypair.generate().public_key
HANDLE_HOSTS = ("alice.test", "bob.test", "old.test", "localhost")


@dataclass
class Authority:
    """What the fake outside world answers; tests mutate it between calls."""

    doc_status: int = 200
    doc_body: bytes | None = None
    handles: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    handle_status: int = 200
    doc_hits: int = 0
    handle_hits: int = 0
    gate: asyncio.Event | None = None
    doc_requested: asyncio.Event = field(default_factory=asyncio.Event)

    def document(self, did: str) -> dict[str, Any]:
        doc = atproto_account_document(
            did, handle=None, signing_key=SIGNING_KEY, pds_endpoint="https://pds.example.com"
        ).to_json()
        doc["alsoKnownAs"] = self.aliases.get(did, [])
        return doc


def _app(authority: Authority) -> web.Application:
    async def did_json(request: web.Request) -> web.StreamResponse:
        authority.doc_hits += 1
        authority.doc_requested.set()
        if authority.gate is not None:
            await authority.gate.wait()
        if authority.doc_status != 200:
            return web.Response(status=authority.doc_status, headers={"Location": "/elsewhere"})
        if authority.doc_body is not None:
            return web.Response(body=authority.doc_body, content_type="application/json")
        return web.json_response(authority.document("did:web:" + quote(request.host, safe="")))

    async def atproto_did(request: web.Request) -> web.StreamResponse:
        authority.handle_hits += 1
        host = request.host.partition(":")[0]
        if host in authority.redirects:
            raise web.HTTPFound(authority.redirects[host])
        if authority.handle_status != 200:
            return web.Response(status=authority.handle_status)
        if host not in authority.handles:
            return web.Response(status=404)
        return web.Response(text=authority.handles[host])

    app = web.Application()
    app.router.add_get("/.well-known/did.json", did_json)
    app.router.add_get("/.well-known/atproto-did", atproto_did)
    return app


class LoopbackNames(AbstractResolver):
    """Resolves a few test hostnames to the test server; everything else does not exist."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in HANDLE_HOSTS:
            raise OSError(socket.EAI_NONAME, f"unknown test host {host}")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
def authority() -> Authority:
    return Authority()


@pytest.fixture
async def server(aiohttp_server: ServerFactory, authority: Authority) -> TestServer:
    return await aiohttp_server(_app(authority))


@pytest.fixture
async def session(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(resolver=LoopbackNames(server.port or 0))
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


def web_did(server: TestServer, host: str = "127.0.0.1") -> str:
    return f"did:web:{host}%3A{server.port}"


def _dids(session: aiohttp.ClientSession, **options: Any) -> DidResolver:
    return DidResolver(session=session, allow_http_loopback=True, **options)


# -- did:web and error mapping --------------------------------------------------------------------
async def test_resolves_did_web_on_loopback(server: TestServer, session: Any) -> None:
    did = web_did(server)
    doc = await _dids(session).resolve(did)
    assert doc.id == did
    assert doc.atproto_key == SIGNING_KEY
    assert await _dids(session).resolve_atproto_key(did) == SIGNING_KEY


async def test_loopback_did_web_needs_the_test_option(
    server: TestServer, session: Any, authority: Authority
) -> None:
    with pytest.raises(DidNotFound):
        await DidResolver(session=session).resolve(web_did(server))
    assert authority.doc_hits == 0


@pytest.mark.parametrize(
    ("did", "error"),
    [
        ("did:web:example.com:user:alice", UnsupportedDidMethod),
        ("did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF", UnsupportedDidMethod),
        ("not-a-did", DidNotFound),
        ("did:plc:UPPERCASE0000000000000000", DidNotFound),
        ("did:web:example.com%3A8443", DidNotFound),
        ("did:web:printer.local", DidNotFound),
    ],
)
async def test_unresolvable_dids_fail_without_a_request(
    session: Any, authority: Authority, did: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await _dids(session).resolve(did)
    assert authority.doc_hits == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, DidNotFound),
        (410, DidNotFound),
        (302, DidNotFound),
        (429, ResolutionUnavailable),
        (500, ResolutionUnavailable),
        (503, ResolutionUnavailable),
    ],
)
async def test_status_mapping(
    server: TestServer, session: Any, authority: Authority, status: int, error: type[Exception]
) -> None:
    authority.doc_status = status
    with pytest.raises(error):
        await _dids(session).resolve(web_did(server))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"id": "did:web:someone.else.example"}', id="other-did"),
        pytest.param(b" " * (MAX_DOCUMENT_BYTES + 1), id="too-large"),
    ],
)
async def test_unusable_documents(
    server: TestServer, session: Any, authority: Authority, body: bytes
) -> None:
    authority.doc_body = body
    with pytest.raises(InvalidDidDocument):
        await _dids(session).resolve(web_did(server))


async def test_document_without_key(server: TestServer, session: Any, authority: Authority) -> None:
    did = web_did(server)
    authority.doc_body = f'{{"id": "{did}"}}'.encode()
    with pytest.raises(InvalidDidDocument):
        await _dids(session).resolve_atproto_key(did)


async def test_unreachable_host_is_unavailable_not_missing(session: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ResolutionUnavailable):
        await _dids(session).resolve(f"did:web:127.0.0.1%3A{port}")


async def test_timeout_is_unavailable(
    server: TestServer, session: Any, authority: Authority
) -> None:
    authority.gate = asyncio.Event()
    try:
        with pytest.raises(ResolutionUnavailable):
            await _dids(session, timeout=0.2).resolve(web_did(server))
    finally:
        authority.gate.set()


# -- caching --------------------------------------------------------------------------------------
async def test_cache_hit_refresh_and_expiry(
    server: TestServer, session: Any, authority: Authority
) -> None:
    clock = FakeMonotonic()
    resolver = _dids(session, cache_ttl=60, clock=clock)
    did = web_did(server)
    first = await resolver.resolve(did)
    assert await resolver.resolve(did) is first
    assert authority.doc_hits == 1

    authority.aliases[did] = ["at://alice.test"]
    assert (await resolver.resolve(did)).handle is None  # still the cached document
    refreshed = await resolver.resolve(did, force_refresh=True)
    assert refreshed.handle == "alice.test"
    assert authority.doc_hits == 2

    authority.aliases[did] = ["at://bob.test"]
    clock.advance(59)
    assert (await resolver.resolve(did)).handle == "alice.test"
    clock.advance(2)
    assert (await resolver.resolve(did)).handle == "bob.test"
    assert authority.doc_hits == 3


async def test_cache_is_bounded(server: TestServer, session: Any, authority: Authority) -> None:
    resolver = _dids(session, cache_size=1)
    by_ip, by_name = web_did(server), web_did(server, "localhost")
    await resolver.resolve(by_ip)
    await resolver.resolve(by_name)
    await resolver.resolve(by_name)
    assert authority.doc_hits == 2
    await resolver.resolve(by_ip)  # evicted by the other DID
    assert authority.doc_hits == 3


async def test_not_found_is_not_cached(
    server: TestServer, session: Any, authority: Authority
) -> None:
    resolver = _dids(session)
    authority.doc_status = 404
    with pytest.raises(DidNotFound):
        await resolver.resolve(web_did(server))
    authority.doc_status = 200
    assert (await resolver.resolve(web_did(server))).id == web_did(server)


async def test_invalid_refresh_drops_the_cached_document(
    server: TestServer, session: Any, authority: Authority
) -> None:
    resolver = _dids(session)
    did = web_did(server)
    await resolver.resolve(did)
    authority.doc_body = b"{broken"
    with pytest.raises(InvalidDidDocument):
        await resolver.resolve(did, force_refresh=True)
    with pytest.raises(InvalidDidDocument):
        await resolver.resolve(did)
    assert authority.doc_hits == 3


async def test_concurrent_resolutions_share_one_fetch(
    server: TestServer, session: Any, authority: Authority
) -> None:
    resolver = _dids(session)
    authority.gate = asyncio.Event()
    waiters = [asyncio.create_task(resolver.resolve(web_did(server))) for _ in range(5)]
    await asyncio.wait_for(authority.doc_requested.wait(), timeout=5)
    await asyncio.sleep(0.02)  # give the other four a chance to (wrongly) start their own fetch
    authority.gate.set()
    docs = await asyncio.gather(*waiters)
    assert authority.doc_hits == 1
    assert all(doc is docs[0] for doc in docs)


async def test_owned_session_is_created_and_closed(server: TestServer) -> None:
    async with DidResolver(allow_http_loopback=True) as resolver:
        assert (await resolver.resolve(web_did(server))).id == web_did(server)


# -- handles --------------------------------------------------------------------------------------
def _handles(session: aiohttp.ClientSession, **options: Any) -> HandleResolver:
    return HandleResolver(session=session, allow_plain_http=True, **options)


async def test_resolves_a_handle(session: Any, authority: Authority) -> None:
    authority.handles["alice.test"] = "\n did:plc:ewvi7nxzyoun6zhxrhs64oiz \n"
    resolver = _handles(session)
    assert await resolver.resolve("Alice.Test") == "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
    assert await resolver.resolve("alice.test") == "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
    assert authority.handle_hits == 1


async def test_handle_redirects_are_followed(session: Any, authority: Authority) -> None:
    authority.handles["alice.test"] = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
    authority.redirects["old.test"] = "http://alice.test/.well-known/atproto-did"
    assert await _handles(session).resolve("old.test") == "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


@pytest.mark.parametrize(
    ("handle", "published", "status", "error"),
    [
        ("alice.test", None, 200, HandleNotFound),
        ("alice.test", "not a did", 200, HandleNotFound),
        ("alice.test", "did:plc:ewvi7nxzyoun6zhxrhs64oiz", 500, ResolutionUnavailable),
        ("nowhere.test", None, 200, HandleNotFound),
        ("not_a_handle", None, 200, HandleNotFound),
        ("printer.local", None, 200, HandleNotFound),
    ],
)
async def test_handle_failures(
    session: Any,
    authority: Authority,
    handle: str,
    published: str | None,
    status: int,
    error: type[Exception],
) -> None:
    if published is not None:
        authority.handles["alice.test"] = published
    authority.handle_status = status
    with pytest.raises(error):
        await _handles(session).resolve(handle)


# -- bidirectional verification -------------------------------------------------------------------
async def test_handle_verified_both_ways(
    server: TestServer, session: Any, authority: Authority
) -> None:
    did = web_did(server)
    authority.handles["alice.test"] = did
    authority.aliases[did] = ["at://alice.test"]
    identities = IdentityResolver(_dids(session), _handles(session))
    by_handle = await identities.resolve_handle("alice.test")
    assert (by_handle.did, by_handle.handle) == (did, "alice.test")
    by_did = await identities.resolve_did(did)
    assert by_did.handle == "alice.test"


async def test_handle_not_claimed_back(
    server: TestServer, session: Any, authority: Authority
) -> None:
    did = web_did(server)
    authority.handles["bob.test"] = did
    authority.aliases[did] = ["at://alice.test"]
    identities = IdentityResolver(_dids(session), _handles(session))
    with pytest.raises(HandleMismatch):
        await identities.resolve_handle("bob.test")


@pytest.mark.parametrize("published", ["did:plc:ewvi7nxzyoun6zhxrhs64oiz", None])
async def test_claimed_handle_not_pointing_back_is_dropped(
    server: TestServer, session: Any, authority: Authority, published: str | None
) -> None:
    did = web_did(server)
    authority.aliases[did] = ["at://alice.test"]
    if published is not None:
        authority.handles["alice.test"] = published
    identity = await IdentityResolver(_dids(session), _handles(session)).resolve_did(did)
    assert identity.handle is None
    assert identity.document.handle == "alice.test"
