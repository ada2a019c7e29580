"""Service proxying: relaying an XRPC call to another service with a service-auth JWT.

The PDS forwards `app.bsky.*` and `chat.bsky.*` calls (and any call carrying an `atproto-proxy`
header) to another service, as the reference PDS does:

- Target: the `atproto-proxy: <did>#<service id>` header names it; the DID document's service
  entry with that id gives the endpoint (the configured AppView's own reference is answered from
  configuration, without a lookup). Without the header the configured AppView serves; without
  one, the call fails with `InvalidRequest` "No service configured for <nsid>".
- Authorization: the caller's handler mints a service JWT (`iss` = account DID, `aud` = the
  target's bare DID, `lxm` = the method) and passes it in; the caller's own token never leaves.
- Request: method, path and raw query go unchanged; of the headers only `accept-language`,
  `atproto-accept-labelers`, `x-bsky-topics`, `accept-encoding` (limited to encodings we can
  read, so upstream errors stay parseable) and, for procedures, the body's `content-*`. The body
  streams through with a size limit.
- Response: status and body stream back unchanged, with the content headers and
  `atproto-repo-rev`, `atproto-content-labelers`, `retry-after`. Upstream XRPC errors are relayed
  as `UpstreamError` with the upstream's name and message (a 500 becomes 502 `UpstreamFailure`).
  No connection → 502 `UpstreamFailure`; no response headers in time → 504 `UpstreamTimeout`.

Endpoints found through DID documents are untrusted: outside dev mode they must be `https` and
resolve to public addresses (no loopback, private or link-local hosts), checked on every
connection by the resolver of their own HTTP session. The configured AppView is trusted.

Errors are `atcore.xrpc` errors (`InvalidRequest`, `PayloadTooLarge`, `UpstreamFailure`,
`UpstreamTimeout`) and `UpstreamError` (an `XrpcError` keeping the upstream's status).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from atcore.identity import APPVIEW_SERVICE, IdentityError
from atcore.identity.resolver import DidResolver
from atcore.syntax import is_valid_did
from atcore.xrpc import (
    InvalidRequest,
    PayloadTooLarge,
    UpstreamFailure,
    UpstreamTimeout,
    XrpcError,
    error_for_status,
    json_error_response,
)

log = logging.getLogger(__name__)

PROXY_HEADER: Final = "atproto-proxy"
FORWARDED_REQUEST_HEADERS: Final = ("accept-language", "atproto-accept-labelers", "x-bsky-topics")
FORWARDED_BODY_HEADERS: Final = ("content-type", "content-encoding")
RELAYED_HEADERS: Final = ("atproto-repo-rev", "atproto-content-labelers", "retry-after")
CONTENT_HEADERS: Final = ("content-type", "content-encoding", "content-language", "content-length")
READABLE_ENCODINGS: Final = frozenset({"gzip", "deflate", "identity"})
MAX_ERROR_BODY: Final = 64 * 1024
_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """Where a call goes: the service's DID, its service id and its base URL."""

    did: str
    service_id: str
    url: str
    trusted: bool = False
    """True for configured services; False for endpoints read from a DID document."""

    @property
    def reference(self) -> str:
        return f"{self.did}#{self.service_id}"


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    appview: ServiceTarget | None = None
    headers_timeout: float = 10.0
    """Seconds to wait for the upstream's response headers."""
    body_timeout: float = 30.0
    """Seconds the upstream may stay silent while sending its body."""
    max_response_size: int = 10 * 1024 * 1024
    max_request_size: int = 100 * 1024 * 1024
    allow_private_targets: bool = False
    """Dev mode: DID-document endpoints may be plain http and loopback/private hosts."""

    @staticmethod
    def appview_target(url: str | None, did: str | None) -> ServiceTarget | None:
        """The configured AppView (`PDS_BSKY_APP_VIEW_URL` / `_DID`), or None when unset."""
        if not url or not did:
            return None
        return ServiceTarget(did, APPVIEW_SERVICE.fragment, url.rstrip("/"), trusted=True)


class UpstreamError(XrpcError):
    """An upstream service's XRPC error, relayed with its status (500 is reported as 502)."""

    def __init__(
        self, upstream_status: int, error: str, message: str, headers: Mapping[str, str]
    ) -> None:
        super().__init__(message, error=error, headers=headers)
        self.upstream_status = upstream_status
        self.relayed_status = 502 if upstream_status == 500 else upstream_status

    def to_response(self) -> web.Response:
        return json_error_response(self.relayed_status, self.error, self.message, self.headers)


def parse_proxy_header(value: str) -> tuple[str, str]:
    """Split an `atproto-proxy` value into (DID, service id), rejecting malformed ones."""
    did, sep, service_id = value.partition("#")
    if not did:
        raise InvalidRequest("no did specified in proxy header")
    if not sep or not service_id:
        raise InvalidRequest("no service id specified in proxy header")
    if "#" in service_id:
        raise InvalidRequest("invalid proxy header format")
    if " " in value:
        raise InvalidRequest("proxy header cannot contain spaces")
    if not is_valid_did(did):
        raise InvalidRequest("invalid proxy header format")
    return did, service_id


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


def _is_public_address(host: str) -> bool:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    return address.is_global and not address.is_multicast


class PublicAddressResolver(AbstractResolver):
    """A DNS resolver that refuses names resolving to loopback, private or reserved addresses."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [entry for entry in found if _is_public_address(entry["host"])]
        if not public:
            raise OSError(f"{host} does not resolve to a public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


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
        self._check_untrusted_url(endpoint)
        return ServiceTarget(did, service_id, endpoint)

    def _check_untrusted_url(self, endpoint: str) -> None:
        if self.config.allow_private_targets:
            return
        url = URL(endpoint)
        if url.scheme != "https":
            raise InvalidRequest("proxy service url must use https")
        try:
            literal_public = _is_public_address(url.host or "")
        except ValueError:
            return  # a host name: the resolver checks its addresses on connect
        if not literal_public:
            raise InvalidRequest("proxy service url must be a public address")

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
        try:
            body = await upstream.content.read(limit + 1)
        except TimeoutError:
            raise UpstreamTimeout("Upstream service timed out") from None
        except aiohttp.ClientError:
            raise UpstreamFailure("Upstream response failed") from None
        if len(body) > limit:
            raise UpstreamFailure("Upstream response too large")
        return body

    async def query_json(
        self, target: ServiceTarget, nsid: str, params: Mapping[str, str]
    ) -> object:
        """Call an XRPC query of `target` on our own behalf (no auth) and decode its JSON.

        Upstream XRPC errors raise `UpstreamError`; transport problems as for `forward`.
        """
        if not target.trusted:
            self._check_untrusted_url(target.url)
        url = URL(target.url).origin().with_path(f"/xrpc/{nsid}").with_query(dict(params))
        headers: CIMultiDict[str] = CIMultiDict(
            {"accept": "application/json", "accept-encoding": "identity"}
        )
        upstream = await self._send(target, "GET", url, headers)
        try:
            if upstream.status >= 400:
                raise await upstream_error(upstream)
            body = await self.read_body(upstream)
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


async def upstream_error(upstream: aiohttp.ClientResponse) -> UpstreamError:
    """The relayed form of an upstream error answer (reads at most `MAX_ERROR_BODY` bytes)."""
    error, message = await _error_payload(upstream)
    status = upstream.status
    default = error_for_status(502 if status == 500 else status, "")
    relayed = {name: upstream.headers[name] for name in RELAYED_HEADERS if name in upstream.headers}
    return UpstreamError(
        status,
        error or default.error,
        message or f"Upstream service answered HTTP {status}",
        relayed,
    )


async def _error_payload(upstream: aiohttp.ClientResponse) -> tuple[str | None, str | None]:
    if "json" not in upstream.headers.get("content-type", "").lower():
        return None, None
    try:
        raw = await upstream.content.read(MAX_ERROR_BODY)
        text = _decode(raw, upstream.headers.get("content-encoding", "identity"))
        payload = json.loads(text)
    except (aiohttp.ClientError, TimeoutError, ValueError, zlib.error):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    error, message = payload.get("error"), payload.get("message")
    return (
        error if isinstance(error, str) else None,
        message if isinstance(message, str) else None,
    )


def _decode(raw: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, MAX_ERROR_BODY)
    if encoding == "deflate":
        try:
            return zlib.decompressobj().decompress(raw, MAX_ERROR_BODY)
        except zlib.error:  # some servers send raw deflate without the zlib wrapper
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, MAX_ERROR_BODY)
    raise ValueError(f"unreadable content-encoding {encoding!r}")
