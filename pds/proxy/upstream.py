"""Upstream XRPC errors, relayed to the caller as the upstream gave them.

`upstream_error` reads an error answer (JSON `{"error", "message"}`, gzip or deflate encoded or
plain, at most `MAX_ERROR_BODY` bytes) into an `UpstreamError`, which keeps the upstream's status
(a 500 is reported as 502 `UpstreamFailure`: our caller's request was fine) and the headers worth
relaying (`retry-after`, ...). Unparseable bodies give the status's default error name.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import web

from atcore.xrpc import XrpcError, error_for_status, json_error_response

RELAYED_HEADERS: Final = ("atproto-repo-rev", "atproto-content-labelers", "retry-after")
MAX_ERROR_BODY: Final = 64 * 1024


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
