"""The feed generator's aiohttp application.

Middlewares, outermost first: request metrics (method and final status of every `/xrpc/` call),
then the XRPC error middleware (`atcore.xrpc`), which renders every failure under `/xrpc/` as
JSON. The context (`feedgen.context`) is built and closed around the application's life.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from atcore.xrpc import Handler, is_xrpc_path, xrpc_error_middleware
from feedgen.api import add_routes
from feedgen.context import CONTEXT, build_context, close_context
from feedgen.metrics import Metrics
from feedgen.settings import FeedgenSettings


def create_app(settings: FeedgenSettings) -> web.Application:
    metrics = Metrics()
    app = web.Application(middlewares=[_metrics_middleware(metrics), xrpc_error_middleware])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ctx = await build_context(settings, metrics)
        app[CONTEXT] = ctx
        try:
            yield
        finally:
            await close_context(ctx)

    app.cleanup_ctx.append(lifecycle)
    add_routes(app)
    return app


def _metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_xrpc_path(request.path):
            return await handler(request)
        method = request.path.removeprefix("/xrpc/")
        if request.match_info.route.resource is None:
            method = "unknown"  # never label by arbitrary client-chosen paths
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            metrics.requests.labels(method=method, status=str(status)).inc()
            metrics.latency.labels(method=method).observe(time.perf_counter() - started)

    return middleware
