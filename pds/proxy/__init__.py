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

Modules: `targets` (targets, the header, SSRF guards for endpoints from DID documents; the
configured AppView is trusted), `relay` (`ServiceProxy`), `upstream` (relayed errors).

Errors are `atcore.xrpc` errors (`InvalidRequest`, `PayloadTooLarge`, `UpstreamFailure`,
`UpstreamTimeout`) and `UpstreamError` (an `XrpcError` keeping the upstream's status).
"""

from pds.proxy.relay import JsonAnswer, ServiceProxy, readable_accept_encoding
from pds.proxy.targets import (
    PROXY_HEADER,
    ProxyConfig,
    PublicAddressResolver,
    ServiceTarget,
    check_untrusted_url,
    parse_proxy_header,
    proxy_config,
)
from pds.proxy.upstream import UpstreamError, upstream_error

__all__ = [
    "PROXY_HEADER",
    "JsonAnswer",
    "ProxyConfig",
    "PublicAddressResolver",
    "ServiceProxy",
    "ServiceTarget",
    "UpstreamError",
    "check_untrusted_url",
    "parse_proxy_header",
    "proxy_config",
    "readable_accept_encoding",
    "upstream_error",
]
