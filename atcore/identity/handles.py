"""Handle resolution (handle -> DID) and bidirectional handle verification.

`HandleResolver` uses the HTTPS well-known method: `GET https://<handle>/.well-known/atproto-did`,
whose body is the DID (surrounding whitespace stripped; redirects followed, a few hops). The DNS
TXT method (`_atproto.<handle>` = `did=<did>`) is NOT implemented: no DNS library is installed
in this project and the standard library cannot query TXT records. Handles configured only via
DNS therefore resolve as `HandleNotFound` here; adding `dnspython` would be the way to support
them. Plain HTTP is used only when the resolver is built with `allow_plain_http=True` (tests).

A handle is only trustworthy once it is verified in both directions: handle -> DID, and the DID's
document claims the handle back (`IdentityResolver`). Results are cached like DIDs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import aiohttp

from atcore.identity._http import (
    DEFAULT_TIMEOUT,
    AsyncClosing,
    HttpClient,
    NameNotResolved,
    is_unavailable_status,
)
from atcore.identity.cache import Clock, SingleFlight, TtlCache
from atcore.identity.diddoc import DidDocument
from atcore.identity.errors import HandleMismatch, HandleNotFound, ResolutionUnavailable
from atcore.identity.resolver import DidResolver
from atcore.syntax import (
    Did,
    Handle,
    InvalidSyntax,
    is_disallowed_handle_tld,
    is_valid_did,
    normalize_handle,
)

WELL_KNOWN_PATH: Final = "/.well-known/atproto-did"
MAX_REPLY_BYTES: Final = 4096
MAX_REDIRECTS: Final = 3


class HandleResolver(AsyncClosing):
    """Resolve handles to DIDs over the HTTPS well-known method, with a TTL cache."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cache_size: int = 10_000,
        cache_ttl: float = 600.0,
        clock: Clock | None = None,
        allow_plain_http: bool = False,
    ) -> None:
        self._http = HttpClient(session, timeout)
        self._scheme = "http" if allow_plain_http else "https"
        self._cache: TtlCache[str, Did] = TtlCache(
            max_size=cache_size, ttl=cache_ttl, clock=clock or time.monotonic
        )
        self._flights: SingleFlight[str, Did] = SingleFlight()

    async def resolve(self, handle: str, *, force_refresh: bool = False) -> Did:
        """The DID the handle's domain names (not yet verified in the other direction)."""
        normalized = _checked_handle(handle)
        if not force_refresh:
            cached = self._cache.get(normalized)
            if cached is not None:
                return cached
        return await self._flights.run(normalized, lambda: self._fetch_and_cache(normalized))

    def invalidate(self, handle: str) -> None:
        self._cache.discard(handle.lower())

    async def _fetch_and_cache(self, handle: Handle) -> Did:
        did = await self.fetch(handle)
        self._cache.put(handle, did)
        return did

    async def fetch(self, handle: Handle) -> Did:
        """Resolve without the cache."""
        url = f"{self._scheme}://{handle}{WELL_KNOWN_PATH}"
        try:
            reply = await self._http.get(
                url, accept="text/plain", max_bytes=MAX_REPLY_BYTES, max_redirects=MAX_REDIRECTS
            )
        except NameNotResolved as exc:
            raise HandleNotFound(f"{handle}: domain does not resolve ({exc})") from exc
        if is_unavailable_status(reply.status):
            raise ResolutionUnavailable(f"{handle}: {url} answered HTTP {reply.status}")
        if not 200 <= reply.status < 300 or reply.too_large:
            raise HandleNotFound(f"{handle}: no DID published at {url} (HTTP {reply.status})")
        text = reply.body.decode("utf-8", errors="replace").strip()
        if not is_valid_did(text):
            raise HandleNotFound(f"{handle}: {url} does not hold a DID")
        return Did(text)

    async def aclose(self) -> None:
        await self._http.aclose()


def _checked_handle(handle: str) -> Handle:
    try:
        normalized = normalize_handle(handle)
    except InvalidSyntax as exc:
        raise HandleNotFound(f"not a valid handle: {handle[:80]!r}") from exc
    if is_disallowed_handle_tld(normalized):
        raise HandleNotFound(f"handles under .{normalized.tld} are never resolvable")
    return normalized


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """A DID, its document, and its handle when (and only when) verified both ways."""

    did: Did
    handle: Handle | None
    document: DidDocument


class IdentityResolver:
    """Bidirectional identity checks on top of a `DidResolver` and a `HandleResolver`."""

    def __init__(self, dids: DidResolver, handles: HandleResolver) -> None:
        self.dids = dids
        self.handles = handles

    async def resolve_handle(self, handle: str) -> VerifiedIdentity:
        """handle -> DID -> document, which must claim the handle (else `HandleMismatch`)."""
        did = await self.handles.resolve(handle)
        document = await self.dids.resolve(did)
        if not document.claims_handle(handle):
            raise HandleMismatch(f"{did} does not claim the handle {handle!r}")
        return VerifiedIdentity(did=did, handle=normalize_handle(handle), document=document)

    async def resolve_did(self, did: str) -> VerifiedIdentity:
        """DID -> document; its claimed handle is kept only if it resolves back to the DID.

        A handle that is absent or points elsewhere gives `handle=None` (show `handle.invalid`);
        `ResolutionUnavailable` while checking the handle propagates, since "could not check" is
        not "invalid".
        """
        document = await self.dids.resolve(did)
        claimed = document.handle
        if claimed is None:
            return VerifiedIdentity(did=document.id, handle=None, document=document)
        try:
            resolved = await self.handles.resolve(claimed)
        except HandleNotFound:
            resolved = None
        verified = normalize_handle(claimed) if resolved == document.id else None
        return VerifiedIdentity(did=document.id, handle=verified, document=document)
