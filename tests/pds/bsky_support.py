"""Test doubles for the services a PDS talks to, and an independent service-JWT checker.

`FakeService` is a small aiohttp application on loopback, in its own thread, that plays an
AppView, a chat service, a feed owner's PDS and a did:web identity at once: it serves its DID
document at `/.well-known/did.json` (`did:web:localhost%3A<port>`), answers a few XRPC methods
with canned data and records every request it gets (method, path, query, headers, body).

`check_service_jwt` verifies a service JWT with atcore only (the signer's `#atproto` key from
its DID document in the PLC directory), never with the PDS code under test.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from atcore import nsids
from atcore.identity import DidDocument

FAKE_BOOM: Final = "app.bsky.unspecced.fakeBoom"  # answers 500 with an XRPC error body
FAKE_BLOCKED: Final = "app.bsky.unspecced.fakeBlocked"  # answers 400 BlockedActor + retry-after
FAKE_SLOW: Final = "app.bsky.unspecced.fakeSlow"  # answers after `slow_seconds`
FAKE_GZIP: Final = "app.bsky.unspecced.fakeGzip"  # answers gzip-encoded JSON
FAKE_ECHO: Final = "chat.bsky.convo.sendMessage"  # echoes the JSON body it was sent
TIMELINE: Final = "app.bsky.feed.getTimeline"
REPO_REV: Final = "3kfakerev22aa"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    @property
    def nsid(self) -> str:
        return self.path.removeprefix("/xrpc/")

    @property
    def bearer(self) -> str:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        assert scheme == "Bearer", self.headers
        return token


@dataclass
class FakeService:
    """Start with `start()`, stop with `stop()`; `requests` fills as calls arrive."""

    slow_seconds: float = 15.0
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Profiles the fake AppView knows, by DID (and by handle)."""
    generator_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Feed generator records this fake PDS hosts, by rkey (for `com.atproto.repo.getRecord`)."""
    dead_port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.port}"

    def requests_for(self, nsid: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.nsid == nsid]

    def last(self, nsid: str) -> Recorded:
        found = self.requests_for(nsid)
        assert found, f"the fake service got no {nsid} call"
        return found[-1]

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeService:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        # A port nothing listens on, for "upstream unreachable".
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            self.dead_port = probe.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake service did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/.well-known/did.json", self._did_document)
        app.router.add_route("*", "/xrpc/{nsid}", self._xrpc)
        # Stopping does not wait for a handler still sleeping (the slow method's).
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        assert self._sock is not None
        await web.SockSite(runner, self._sock).start()
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # -- handlers ---------------------------------------------------------------------------------
    async def _did_document(self, _request: web.Request) -> web.Response:
        def service(fragment: str, kind: str, endpoint: str) -> dict[str, str]:
            return {"id": f"#{fragment}", "type": kind, "serviceEndpoint": endpoint}

        return web.json_response(
            {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": self.did,
                "service": [
                    service("bsky_appview", "BskyAppView", self.url),
                    service("bsky_chat", "BskyChatService", self.url),
                    service("atproto_pds", "AtprotoPersonalDataServer", self.url),
                    service("dead", "BskyAppView", f"http://localhost:{self.dead_port}"),
                ],
            }
        )

    async def _xrpc(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        nsid = request.match_info["nsid"]
        if nsid == TIMELINE:
            return web.json_response(
                {"feed": [], "cursor": "next-page"},
                headers={"atproto-repo-rev": REPO_REV, "content-language": "en"},
            )
        if nsid == FAKE_ECHO:
            return web.json_response({"echo": json.loads(body)})
        if nsid == FAKE_BOOM:
            return web.json_response(
                {"error": "InternalServerError", "message": "the fake fell over"}, status=500
            )
        if nsid == FAKE_BLOCKED:
            return web.json_response(
                {"error": "BlockedActor", "message": "blocked by the fake"},
                status=400,
                headers={"retry-after": "7"},
            )
        if nsid == FAKE_SLOW:
            await asyncio.sleep(self.slow_seconds)
            return web.json_response({})
        if nsid == FAKE_GZIP:
            raw = gzip.compress(json.dumps({"compressed": True}).encode())
            return web.Response(
                body=raw,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
        if nsid == nsids.BSKY_FEED_GET_FEED:
            return web.json_response({"feed": [], "cursor": "feed-cursor"})
        if nsid == nsids.BSKY_ACTOR_GET_PROFILE:
            known = self.profiles.get(request.query.get("actor", ""))
            if known is None:
                return _xrpc_error(400, "InvalidRequest", "Profile not found")
            return web.json_response(known)
        if nsid == nsids.BSKY_ACTOR_GET_PROFILES:
            actors = request.query.getall("actors", [])
            found = [self.profiles[a] for a in actors if a in self.profiles]
            return web.json_response({"profiles": found})
        if nsid == nsids.REPO_GET_RECORD:
            record = self.generator_records.get(request.query.get("rkey", ""))
            if record is None:
                return _xrpc_error(400, "RecordNotFound", "Could not locate record")
            uri = f"at://{self.did}/{nsids.BSKY_FEED_GENERATOR}/{request.query['rkey']}"
            return web.json_response({"uri": uri, "value": record})
        return _xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")


def _xrpc_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


# -- independent JWT checks ----------------------------------------------------------------------
def _b64url_json(part: str) -> dict[str, Any]:
    value = json.loads(_b64url(part))
    assert isinstance(value, dict)
    return value


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def check_service_jwt(token: str, *, plc_url: str, iss: str, aud: str, lxm: str) -> dict[str, Any]:
    """Assert `token` is a valid ES256K service JWT from `iss` for (`aud`, `lxm`); its claims."""
    header_part, payload_part, signature_part = token.split(".")
    header, claims = _b64url_json(header_part), _b64url_json(payload_part)
    assert header["alg"] == "ES256K"
    assert claims["iss"] == iss
    assert claims["aud"] == aud
    assert claims["lxm"] == lxm
    now = time.time()
    assert now < claims["exp"] <= now + 5 * 60, "service JWTs must be short-lived"
    with urllib.request.urlopen(f"{plc_url}/{iss}", timeout=10) as response:
        document = DidDocument.from_json(json.loads(response.read()))
    key = document.require_atproto_key()
    signed = f"{header_part}.{payload_part}".encode()
    assert key.verify(signed, _b64url(signature_part)), "signature does not match the #atproto key"
    return claims


# -- blocking HTTP --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 60,
) -> Reply:
    """One HTTP request with urllib (no decompression, errors returned, not raised)."""
    data = None
    all_headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, _lower(error.headers.items()), error.read())


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
