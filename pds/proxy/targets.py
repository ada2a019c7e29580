"""Where proxied calls go: service targets, the `atproto-proxy` header, and SSRF guards.

Endpoints found through DID documents are untrusted: outside dev mode they must be `https` and
resolve to public addresses (no loopback, private or link-local hosts). `check_untrusted_url`
checks the URL, and `PublicAddressResolver` checks every address a host name resolves to on each
connection (so DNS cannot be used to point a public-looking name at an internal host).

Errors: `atcore.xrpc.InvalidRequest` for bad headers and refused endpoints; `OSError` from the
resolver (reported by the relay as `UpstreamFailure`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from atcore.identity import APPVIEW_SERVICE
from atcore.syntax import is_valid_did
from atcore.xrpc import InvalidRequest
from pds.settings import PdsSettings

PROXY_HEADER: Final = "atproto-proxy"


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


def proxy_config(settings: PdsSettings) -> ProxyConfig:
    """The proxy's configuration from the PDS settings (`PDS_BSKY_APP_VIEW_*`, `PDS_PROXY_*`)."""
    return ProxyConfig(
        appview=ProxyConfig.appview_target(settings.bsky_app_view_url, settings.bsky_app_view_did),
        headers_timeout=settings.proxy_headers_timeout_ms / 1000,
        body_timeout=settings.proxy_body_timeout_ms / 1000,
        max_response_size=settings.proxy_max_response_size,
        max_request_size=settings.blob_upload_limit,
        # Local stacks run every service on loopback over plain HTTP.
        allow_private_targets=settings.dev_mode,
    )


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


def is_public_address(host: str) -> bool:
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
        public = [entry for entry in found if is_public_address(entry["host"])]
        if not public:
            raise OSError(f"{host} does not resolve to a public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def check_untrusted_url(endpoint: str, allow_private: bool) -> None:
    """Refuse an endpoint read from a DID document unless it is https on a public host.

    Host names are checked when connecting, by `PublicAddressResolver`.
    """
    if allow_private:
        return
    url = URL(endpoint)
    if url.scheme != "https":
        raise InvalidRequest("proxy service url must use https")
    try:
        literal_public = is_public_address(url.host or "")
    except ValueError:
        return  # a host name, not an IP literal
    if not literal_public:
        raise InvalidRequest("proxy service url must be a public address")
