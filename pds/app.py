"""The PDS's aiohttp application: middlewares, response headers, routes, and the context's life.

Middlewares, outermost first:

1. CORS preflight (answered before routing, for any path);
2. the XRPC error middleware (`atcore.xrpc`): every failure under `/xrpc/` becomes JSON;
3. the global per-IP rate limit (when limits are enabled).

Just before any response's headers go out (`on_response_prepare`, so error responses and
streamed bodies included): CORS headers, the rate-limit headers of the tightest limit the request
spent from, and `Cache-Control: private` + `Vary: Authorization` on authenticated responses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from atcore.xrpc import xrpc_error_middleware
from pds.api import add_routes
from pds.api import blobs as blob_api
from pds.api import sync as sync_api
from pds.auth.verifier import AUTHENTICATED
from pds.blobs import blob_gc_context
from pds.context import CONTEXT, build_context, close_context
from pds.cors import add_cors_headers, cors_middleware
from pds.firehose.app import setup_firehose
from pds.firehose.pruner import sequence_pruner_context
from pds.ratelimit import RateLimiter, apply_headers, global_limit_middleware
from pds.settings import PdsSettings


def create_app(settings: PdsSettings) -> web.Application:
    limiter = RateLimiter(enabled=settings.rate_limits_enabled)
    app = web.Application(
        middlewares=[cors_middleware, xrpc_error_middleware, global_limit_middleware(limiter)]
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ctx = await build_context(settings, limiter)
        app[CONTEXT] = ctx
        try:
            yield
        finally:
            await close_context(ctx)

    app.cleanup_ctx.append(lifecycle)
    setup_firehose(app)
    app.cleanup_ctx.append(blob_gc_context())  # after `lifecycle`: it reads the context
    app.cleanup_ctx.append(sequence_pruner_context())  # after the firehose: prunes its window
    app.on_response_prepare.append(_response_headers)
    add_routes(app)
    sync_api.add_routes(app)
    blob_api.add_routes(app)
    return app


async def _response_headers(request: web.Request, response: web.StreamResponse) -> None:
    add_cors_headers(response)
    apply_headers(request, response)
    if request.get(AUTHENTICATED):
        response.headers.setdefault("Cache-Control", "private")
        vary = response.headers.get("Vary")
        if vary is None:
            response.headers["Vary"] = "Authorization"
        elif "authorization" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Authorization"
