"""Wiring the firehose into the PDS application (`pds.app` calls `setup_firehose`).

The firehose starts after the application context (cleanup contexts run in order, and the
context's is registered first), closes every open subscription when the server shuts down
(close code 1001, so the long-lived handlers return before aiohttp's shutdown timeout), and
serves `com.atproto.sync.subscribeRepos` and `/metrics`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from atcore.xrpc import require_bearer_token
from pds.api import subscribe
from pds.context import CONTEXT
from pds.firehose.metrics import CONTENT_TYPE_LATEST
from pds.firehose.service import FIREHOSE, Firehose


def setup_firehose(app: web.Application) -> None:
    """Run the firehose with `app` and add its routes (call after the context's cleanup_ctx)."""
    app.cleanup_ctx.append(_firehose_lifecycle)
    app.on_shutdown.append(_close_subscribers)
    subscribe.add_routes(app)
    app.router.add_get("/metrics", _metrics, allow_head=False)


async def _firehose_lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CONTEXT]
    firehose = Firehose(ctx, Firehose.config_for(app, ctx.settings))
    await firehose.start()
    app[FIREHOSE] = firehose
    try:
        yield
    finally:
        await firehose.close()


async def _close_subscribers(app: web.Application) -> None:
    firehose = app.get(FIREHOSE)
    if firehose is not None:
        await firehose.close_connections()


async def _metrics(request: web.Request) -> web.Response:
    require_bearer_token(request, request.app[CONTEXT].settings.metrics_token, "/metrics")
    body = request.app[FIREHOSE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
