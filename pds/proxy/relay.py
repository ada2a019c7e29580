"""Relaying one XRPC call to a service target and streaming the answer back.

See the package docstring for what is forwarded. Upstream sessions are opened lazily inside the
event loop, one for trusted (configured) targets and one for untrusted ones (with the public-only
resolver unless dev mode), both without response decompression so bodies pass through as sent.

`forward` streams an answer through as it arrives; `fetch_json` reads a relayed call's answer
whole (bounded, identity-encoded) and checks it is a JSON object before the handler passes it on
as a `JsonAnswer`; `query_json` calls a query on the PDS's own behalf.

Errors: `InvalidRequest`, `PayloadTooLarge`, `UpstreamFailure`, `UpstreamTimeout` (from
`atcore.xrpc`) and `UpstreamError` (from `pds.proxy.upstream`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from atcore.identity import IdentityError
from atcore.identity.resolver import DidResolver
from atcore.xrpc import InvalidRequest, PayloadTooLarge, UpstreamFailure, UpstreamTimeout
from pds.proxy.targets import (
    PROXY_HEADER,
    ProxyConfig,
    PublicAddressResolver,
    ServiceTarget,
    check_untrusted_url,
    parse_proxy_header,
)
from pds.proxy.upstream import RELAYED_HEADERS, upstream_error

log = logging.getLogger(__name__)

FORWARDED_REQUEST_HEADERS: Final = ("accept-language", "atproto-accept-labelers", "x-bsky-topics")
FORWARDED_BODY_HEADERS: Final = ("content-type", "content-encoding")
CONTENT_HEADERS: Final = ("content-type", "content-encoding", "content-language", "content-length")
READABLE_ENCODINGS: Final = frozenset({"gzip", "deflate", "identity"})
_ANSWER_CONTENT_HEADERS: Final = ("content-type", "content-language")
_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """A successful upstream answer read whole: its status, the headers to relay, the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    """The JSON object exactly as the upstream sent it (identity encoding)."""

    def to_response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=self.headers)


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False


def readable_accept_encoding(header: str | None) -> str:
    """The client's `accept-encoding` reduced to encodings we can decode (default `identity`)."""
    if not header:
        return "identity"
    kept = [
        item.strip()
        for item in header.split(",")
        if item.split(";", 1)[0].strip().lower() in READABLE_ENCODINGS
    ]
    return ", ".join(kept) or "identity"


class ServiceProxy:
    """Resolves proxy targets and relays calls to them. `close()` it on shutdown."""

    def __init__(self, config: ProxyConfig, resolver: DidResolver) -> None:
        self.config = config
        self._resolver = resolver
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def _session(self, trusted: bool) -> aiohttp.ClientSession:
        """The HTTP session for trusted or untrusted targets, opened on first use (in the loop)."""
        session = self._sessions.get(trusted)
        if session is None or session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.config.headers_timeout,
                sock_read=self.config.body_timeout,
            )
            public_only = not trusted and not self.config.allow_private_targets
            connector = aiohttp.TCPConnector(
                resolver=PublicAddressResolver() if public_only else None
            )
            # Bodies pass through still encoded: no decompression on the way.
            session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=False
            )
            self._sessions[trusted] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    # -- targets ----------------------------------------------------------------------------------
    async def target_for(self, request: web.Request, lxm: str) -> ServiceTarget:
        """The `atproto-proxy` header's service, else the configured AppView."""
        header = request.headers.get(PROXY_HEADER)
        if header is not None:
            return await self.target_from_header(header)
        if self.config.appview is None:
            raise InvalidRequest(f"No service configured for {lxm}")
        return self.config.appview

    async def target_from_header(self, header: str) -> ServiceTarget:
        did, service_id = parse_proxy_header(header)
        appview = self.config.appview
        if appview is not None and header == appview.reference:
            return appview
        try:
            document = await self._resolver.resolve(did)
        except IdentityError as exc:
            raise InvalidRequest("could not resolve proxy did") from exc
        endpoint = next((s.endpoint for s in document.services if s.fragment == service_id), None)
        if endpoint is None:
            raise InvalidRequest("could not resolve proxy did service url")
        check_untrusted_url(endpoint, self.config.allow_private_targets)
        return ServiceTarget(did, service_id, endpoint)

    # -- relaying ---------------------------------------------------------------------------------
    async def forward(
        self, request: web.Request, target: ServiceTarget, *, authorization: str | None
    ) -> web.StreamResponse:
        """Relay `request` to `target` and stream the answer back (errors raise)."""
        upstream = await self.open(request, target, authorization=authorization)
        try:
            if upstream.status >= 400:
                raise await upstream_error(upstream)
            return await self._relay(request, upstream)
        finally:
            upstream.release()

    async def open(
        self,
        request: web.Request,
        target: ServiceTarget,
        *,
        authorization: str | None,
        accept_encoding: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send `request` to `target`; the caller reads and releases the response.

        `accept_encoding="identity"` asks for a body the caller can parse as is.
        """
        if request.method not in ("GET", "HEAD", "POST"):
            raise InvalidRequest("XRPC requests only supports GET and POST")
        headers = self._upstream_headers(request, authorization)
        if accept_encoding is not None:
            headers["accept-encoding"] = accept_encoding
        body = (
            _LimitedBody(request, self.config.max_request_size) if request.can_read_body else None
        )
        url = URL(str(URL(target.url).origin()) + request.raw_path, encoded=True)
        return await self._send(target, request.method, url, headers, body)

    async def _send(
        self,
        target: ServiceTarget,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: _LimitedBody | None = None,
    ) -> aiohttp.ClientResponse:
        session = self._session(target.trusted)
        data = body.chunks() if body is not None else None
        try:
            async with asyncio.timeout(self.config.headers_timeout):
                return await session.request(
                    method, url, headers=headers, data=data, allow_redirects=False
                )
        except TimeoutError:
            raise UpstreamTimeout("Upstream service timed out") from None
        except (aiohttp.ClientError, OSError, PayloadTooLarge) as exc:
            if body is not None and body.exceeded:
                raise PayloadTooLarge("request entity too large") from None
            log.warning("request to %s failed: %r", target.reference, exc)
            raise UpstreamFailure("Upstream service unreachable") from None

    async def read_body(self, upstream: aiohttp.ClientResponse) -> bytes:
        """The whole (unencoded) body of a response, at most `max_response_size` bytes."""
        if upstream.headers.get("content-encoding", "identity").lower() != "identity":
            raise UpstreamFailure("Upstream ignored the requested identity encoding")
        limit = self.config.max_response_size
        if upstream.content_length is not None and upstream.content_length > limit:
            raise UpstreamFailure("Upstream response too large")
        chunks: list[bytes] = []
        total = 0
        try:
            # Chunk by chunk to the end: a single `read(n)` returns only what is buffered.
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise UpstreamFailure("Upstream response too large")
                chunks.append(chunk)
        except TimeoutError:
            raise UpstreamTimeout("Upstream service timed out") from None
        except aiohttp.ClientError:
            raise UpstreamFailure("Upstream response failed") from None
        return b"".join(chunks)

    async def fetch_json(
        self, request: web.Request, target: ServiceTarget, *, authorization: str | None
    ) -> JsonAnswer:
        """Relay `request` to `target` and read its whole answer, which must be a JSON object.

        For answers the PDS checks before passing them on, unlike `forward`'s stream: the body
        is bounded by `max_response_size` and asked for without content encoding. Upstream XRPC
        errors raise `UpstreamError`; a redirect or an answer that is not a JSON object,
        `UpstreamFailure`.
        """
        upstream = await self.open(
            request, target, authorization=authorization, accept_encoding="identity"
        )
        try:
            body = await self._success_body(upstream)
        finally:
            upstream.release()
        if upstream.content_type != "application/json" or not _is_json_object(body):
            log.warning("%s answered %s with no JSON object", target.reference, request.path)
            raise UpstreamFailure("Upstream sent a response that is not a JSON object")
        kept = (*_ANSWER_CONTENT_HEADERS, *RELAYED_HEADERS)
        headers = {name: upstream.headers[name] for name in kept if name in upstream.headers}
        return JsonAnswer(upstream.status, headers, body)

    async def _success_body(self, upstream: aiohttp.ClientResponse) -> bytes:
        """The body of a 2xx answer; upstream errors and redirects raise."""
        if upstream.status >= 400:
            raise await upstream_error(upstream)
        if not 200 <= upstream.status < 300:
            raise UpstreamFailure(f"Upstream service answered HTTP {upstream.status}")
        return await self.read_body(upstream)

    async def query_json(
        self, target: ServiceTarget, nsid: str, params: Mapping[str, str]
    ) -> object:
        """Call an XRPC query of `target` on our own behalf (no auth) and decode its JSON.

        Upstream XRPC errors raise `UpstreamError`; transport problems as for `forward`.
        """
        if not target.trusted:
            check_untrusted_url(target.url, self.config.allow_private_targets)
        url = URL(target.url).origin().with_path(f"/xrpc/{nsid}").with_query(dict(params))
        headers: CIMultiDict[str] = CIMultiDict(
            {"accept": "application/json", "accept-encoding": "identity"}
        )
        upstream = await self._send(target, "GET", url, headers)
        try:
            body = await self._success_body(upstream)
        finally:
            upstream.release()
        try:
            return json.loads(body)
        except ValueError:
            raise UpstreamFailure("Upstream sent invalid JSON") from None

    def _upstream_headers(
        self, request: web.Request, authorization: str | None
    ) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        headers["accept-encoding"] = readable_accept_encoding(
            request.headers.get("accept-encoding")
        )
        for name in FORWARDED_REQUEST_HEADERS:
            if name in request.headers:
                headers[name] = request.headers[name]
        if request.can_read_body:
            if request.content_length is not None:
                if request.content_length > self.config.max_request_size:
                    raise PayloadTooLarge("request entity too large")
                headers["content-length"] = str(request.content_length)
            for name in FORWARDED_BODY_HEADERS:
                if name in request.headers:
                    headers[name] = request.headers[name]
        if authorization is not None:
            headers["authorization"] = authorization
        return headers

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        limit = self.config.max_response_size
        if upstream.content_length is not None and upstream.content_length > limit:
            raise UpstreamFailure("Upstream response too large")
        response = web.StreamResponse(status=upstream.status)
        for name in (*CONTENT_HEADERS, *RELAYED_HEADERS):
            value = upstream.headers.get(name)
            if value is not None:
                response.headers[name] = value
        await response.prepare(request)
        sent = 0
        try:
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                sent += len(chunk)
                if sent > limit:
                    raise UpstreamFailure("Upstream response too large")
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError, UpstreamFailure) as exc:
            # Headers are gone already: the only honest signal left is to cut the connection.
            log.warning("proxied response from %s cut short: %r", upstream.url, exc)
            raise ConnectionResetError("upstream response failed mid-stream") from exc
        await response.write_eof()
        return response


class _LimitedBody:
    """The request body as an async iterator that stops past `limit` bytes."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.exceeded = False

    async def chunks(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._request.content.iter_chunked(_CHUNK):
            total += len(chunk)
            if total > self._limit:
                self.exceeded = True
                raise PayloadTooLarge("request entity too large")
            yield chunk
