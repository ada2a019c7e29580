"""Which host speaks for a DID: events from a PDS that no longer hosts an account are refused.

A relay re-broadcasts whatever the current host of each account says, so its stream is trusted
for every DID (the relay did the host check). A consumer subscribed *directly* to PDSes
(`CONSUMER_PDS_SOURCES`) must do that check itself, as the sync spec asks: an account that moved
from PDS A to PDS B keeps a repository on A for a while, and A may still emit `#commit`, `#sync`
or `#account` events for it (the user deactivates the old account last, say). Without the
check, A's late "deactivated" would hide check-ins that B serves as active, and A's commits would
race B's.

`HostGuard.check` compares the DID document's `#atproto_pds` endpoint with the public URL the
operator gave for the source. The document comes from the resolver's TTL cache; on a mismatch it
is fetched once more (the account may have moved moments ago), but at most once per DID per
`refresh_interval_s`, so a host emitting events for accounts it does not hold cannot make us
hammer the DID directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Protocol
from urllib.parse import urlsplit

from atcore.identity import DidDocument
from atcore.identity.cache import TtlCache

DEFAULT_REFRESH_INTERVAL_S: Final = 60.0
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


class DocumentSource(Protocol):
    """Where DID documents come from (`atcore.identity.DidResolver` is one)."""

    async def resolve(self, did: str, *, force_refresh: bool = False) -> DidDocument: ...


def canonical_endpoint(url: str) -> str | None:
    """`scheme://host[:port]`, lower-case, default port dropped; None when not an http(s) URL.

    DID documents write endpoints as the PDS's public URL; comparing them textually would let
    `https://PDS.example:443/` and `https://pds.example` disagree.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


class HostGuard:
    def __init__(
        self,
        documents: DocumentSource,
        *,
        refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._documents = documents
        # DIDs whose document was force-refreshed recently (bounded: at most this many tracked).
        self._refreshed: TtlCache[str, bool] = TtlCache(
            max_size=100_000, ttl=refresh_interval_s, clock=clock
        )

    async def elsewhere(self, did: str, host: str) -> str | None:
        """None when `host` (a canonical endpoint) is the DID's current PDS; otherwise where
        the DID's document says it is hosted (`"nowhere"` without an `#atproto_pds` service).

        Resolution errors pass through: the caller decides whether an unresolvable DID is a
        reason to refuse the event or to retry later.
        """
        document = await self._documents.resolve(did)
        if _hosted_at(document, host):
            return None
        if self._refreshed.get(did) is None:
            self._refreshed.put(did, True)
            document = await self._documents.resolve(did, force_refresh=True)
            if _hosted_at(document, host):
                return None
        return document.pds_endpoint or "nowhere"


def _hosted_at(document: DidDocument, host: str) -> bool:
    endpoint = document.pds_endpoint
    return endpoint is not None and canonical_endpoint(endpoint) == host
