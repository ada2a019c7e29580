"""DID resolution: did:plc through a PLC directory, did:web through `/.well-known/did.json`.

`DidResolver.resolve` returns a validated `DidDocument` whose `id` is the DID asked for. Results
are kept in a bounded TTL cache, and concurrent resolutions of the same DID share one fetch. A
caller that finds a cached document stale for its purpose (say, a commit signature no longer
verifies because the account rotated its key) calls again with `force_refresh=True`.

did:web follows the atproto rules: hostname-level DIDs only (no paths), fetched over HTTPS with
no redirects. A port (`did:web:localhost%3A2583`) and plain HTTP are accepted only for loopback
hosts, and only when the resolver is built with `allow_http_loopback=True` (tests, local stacks).

Outcomes: a document; `DidNotFound` (the authority says there is no such DID, or it is
deactivated, or the host name does not exist); `InvalidDidDocument` (the authority answered with
something unusable); `UnsupportedDidMethod`; `ResolutionUnavailable` (network failure, timeout,
5xx / 429: try again later).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Final
from urllib.parse import unquote

import aiohttp

from atcore.crypto import PublicKey
from atcore.identity._http import (
    DEFAULT_TIMEOUT,
    AsyncClosing,
    HttpClient,
    NameNotResolved,
    is_unavailable_status,
)
from atcore.identity.cache import Clock, SingleFlight, TtlCache
from atcore.identity.diddoc import DidDocument
from atcore.identity.errors import (
    DidNotFound,
    InvalidDidDocument,
    ResolutionUnavailable,
    UnsupportedDidMethod,
)
from atcore.identity.plc import is_plc_did
from atcore.syntax import Did, is_disallowed_handle_tld, is_valid_did, is_valid_handle

DEFAULT_PLC_URL: Final = "https://plc.directory"
DID_WEB_PATH: Final = "/.well-known/did.json"
MAX_DOCUMENT_BYTES: Final = 64 * 1024
_DOC_ACCEPT: Final = "application/did+ld+json, application/json"


class DidResolver(AsyncClosing):
    """Resolve did:plc and did:web DIDs to documents, with a TTL cache."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        plc_url: str = DEFAULT_PLC_URL,
        timeout: float = DEFAULT_TIMEOUT,
        cache_size: int = 10_000,
        cache_ttl: float = 3600.0,
        clock: Clock | None = None,
        allow_http_loopback: bool = False,
    ) -> None:
        self._http = HttpClient(session, timeout)
        self._plc_url = plc_url.rstrip("/")
        self._allow_http_loopback = allow_http_loopback
        self._cache: TtlCache[str, DidDocument] = TtlCache(
            max_size=cache_size, ttl=cache_ttl, clock=clock or time.monotonic
        )
        self._flights: SingleFlight[str, DidDocument] = SingleFlight()

    async def resolve(self, did: str, *, force_refresh: bool = False) -> DidDocument:
        """The DID's current document (cached unless `force_refresh`)."""
        if not force_refresh:
            cached = self._cache.get(did)
            if cached is not None:
                return cached
        return await self._flights.run(did, lambda: self._fetch_and_cache(did))

    async def resolve_atproto_key(self, did: str, *, force_refresh: bool = False) -> PublicKey:
        """The DID's atproto signing key; `InvalidDidDocument` when it has none."""
        document = await self.resolve(did, force_refresh=force_refresh)
        return document.require_atproto_key()

    def invalidate(self, did: str) -> None:
        """Forget a cached document (e.g. after an `#identity` event on the firehose)."""
        self._cache.discard(did)

    async def _fetch_and_cache(self, did: str) -> DidDocument:
        try:
            document = await self.fetch(did)
        except (DidNotFound, InvalidDidDocument):
            self._cache.discard(did)  # the authority has spoken: never serve the old answer again
            raise
        self._cache.put(did, document)
        return document

    async def fetch(self, did: str) -> DidDocument:
        """Resolve without the cache."""
        url = self.document_url(did)
        try:
            reply = await self._http.get(url, accept=_DOC_ACCEPT, max_bytes=MAX_DOCUMENT_BYTES)
        except NameNotResolved as exc:
            raise DidNotFound(f"{did}: host does not resolve ({exc})") from exc
        if is_unavailable_status(reply.status):
            raise ResolutionUnavailable(f"{did}: {url} answered HTTP {reply.status}")
        if reply.status != 200:
            raise DidNotFound(f"{did}: {url} answered HTTP {reply.status}")
        if reply.too_large:
            raise InvalidDidDocument(f"{did}: document exceeds {MAX_DOCUMENT_BYTES} bytes")
        document = DidDocument.parse(reply.body)
        if document.id != did:
            raise InvalidDidDocument(f"document for {did} names {document.id} instead")
        return document

    def document_url(self, did: str) -> str:
        """Where the DID's document lives; raises for DIDs this resolver cannot look up."""
        if not is_valid_did(did):
            raise DidNotFound(f"not a valid DID: {did[:80]!r}")
        if did.startswith("did:plc:"):
            if not is_plc_did(did):
                raise DidNotFound(f"not a valid did:plc: {did!r}")
            return f"{self._plc_url}/{did}"
        if did.startswith("did:web:"):
            return self._did_web_url(Did(did))
        raise UnsupportedDidMethod(f"unsupported DID method: {did[:80]!r}")

    def _did_web_url(self, did: Did) -> str:
        identifier = did.identifier
        if ":" in identifier:
            raise UnsupportedDidMethod(f"path-based did:web is not supported in atproto: {did}")
        authority = unquote(identifier)
        host, _, port = authority.partition(":")
        loopback = is_loopback_host(host)
        if port and not (loopback and port.isdigit() and self._allow_http_loopback):
            raise DidNotFound(f"did:web ports are only allowed for loopback test hosts: {did}")
        if loopback:
            if not self._allow_http_loopback:
                raise DidNotFound(f"loopback did:web is disabled outside tests: {did}")
            return f"http://{authority}{DID_WEB_PATH}"
        if not is_valid_handle(host) or is_disallowed_handle_tld(host):
            raise DidNotFound(f"did:web host is not a valid public hostname: {did}")
        return f"https://{host}{DID_WEB_PATH}"

    async def aclose(self) -> None:
        """Close the HTTP session if this resolver created it."""
        await self._http.aclose()


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback IP address (the only hosts where plain HTTP may be allowed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
