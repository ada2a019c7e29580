"""The local PLC directory as an aiohttp application: `create_app(settings)`.

Serves the plc.directory HTTP API (see `routes`) from a SQLite log, so the embedded stack and
the tests create and resolve did:plc identities without the public directory. Every error is
JSON `{"message": ...}` as plc.directory writes them: 400 for bad input (malformed JSON, invalid
operations, broken chains), 404 for unknown DIDs and routes, 410 for tombstoned DIDs, 413 for
oversized bodies, and a 500 that never leaks internals.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from pds.plc.routes import CLOCK_KEY, STORE_KEY, Clock, Handler, PlcHttpError, add_routes
from pds.plc.settings import PlcSettings
from pds.plc.store import PlcStore

log = logging.getLogger(__name__)

__all__ = ["CLOCK_KEY", "STORE_KEY", "PlcSettings", "create_app", "utc_now"]

MAX_REQUEST_BYTES: Final = 64 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: PlcSettings, *, clock: Clock = utc_now) -> web.Application:
    """The directory application; its database opens on startup and closes on cleanup.

    `clock` is the directory's notion of "now" (operation timestamps, the recovery window);
    tests inject a controllable one.
    """
    app = web.Application(middlewares=[json_error_middleware], client_max_size=MAX_REQUEST_BYTES)
    app[CLOCK_KEY] = clock
    app.cleanup_ctx.append(_store_context(settings))
    add_routes(app.router)
    return app


def _store_context(
    settings: PlcSettings,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def store_lifecycle(app: web.Application) -> AsyncIterator[None]:
        if settings.uses_data_directory:
            settings.data_directory.mkdir(parents=True, exist_ok=True)
        store = PlcStore(settings.effective_database_url)
        try:
            await store.migrate()
            app[STORE_KEY] = store
            yield
        finally:
            await store.close()

    return store_lifecycle


@web.middleware
async def json_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PlcHttpError as exc:
        return _error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return _error(500, "Internal Server Error")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)
