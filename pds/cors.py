"""CORS for browser clients (the Bluesky web app talks to PDSes straight from the browser).

Like the reference PDS (Express `cors()` with a one-day max age): every response carries
`Access-Control-Allow-Origin: *`; a preflight (`OPTIONS` with `Access-Control-Request-Method`)
on any path is answered 204 before routing, allowing the usual methods and the headers the
browser asks for (or our list of atproto headers when it asks for none). Scripts may read the
rate-limit and `Retry-After` headers, and `Content-Range` / `Accept-Ranges` (a ranged
`sync.getBlob` is useless to a browser that cannot see which bytes it got). No credentials
mode: tokens travel in `Authorization`, never in cookies.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from atcore.xrpc import Handler
from pds.ratelimit import EXPOSED_HEADERS

ALLOWED_METHODS: Final = "GET,HEAD,PUT,PATCH,POST,DELETE"
ALLOWED_HEADERS: Final = (
    "authorization",
    "content-type",
    "atproto-proxy",
    "atproto-accept-labelers",
    "atproto-content-labelers",
    "dpop",
)
MAX_AGE_SECONDS: Final = 86400
# Beyond the CORS-safelisted response headers, which browsers always expose.
EXPOSED_RESPONSE_HEADERS: Final = (*EXPOSED_HEADERS, "Content-Range", "Accept-Ranges")


def _is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def preflight_response(request: web.Request) -> web.Response:
    requested = request.headers.get("Access-Control-Request-Headers")
    headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": requested or ", ".join(ALLOWED_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
        "Vary": "Access-Control-Request-Headers",
    }
    return web.Response(status=204, headers=headers)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights for every path, whatever methods the route itself serves."""
    if _is_preflight(request):
        return preflight_response(request)
    return await handler(request)


def add_cors_headers(response: web.StreamResponse) -> None:
    """Run from `on_response_prepare`, so errors and streamed bodies get the headers too."""
    response.headers.setdefault("Access-Control-Allow-Origin", "*")
    response.headers.setdefault(
        "Access-Control-Expose-Headers", ", ".join(EXPOSED_RESPONSE_HEADERS)
    )
