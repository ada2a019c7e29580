"""Plain HTTP routes: the service DID document, handle resolution by host name, health, robots.

- `/.well-known/did.json`: the document of our `did:web` service DID, naming this PDS as the
  `#atproto_pds` service (404 when the service DID is not a did:web of our host name).
- `/.well-known/atproto-did`: the DID of the account whose handle is the request's host name
  (the HTTPS handle-resolution method), for handles under our service domains.
- `/xrpc/_health`: `{"version": ...}`, or 503 when the database does not answer.
- `/robots.txt`: crawling the public API is allowed.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web
from sqlalchemy import text

from atcore.identity import PDS_SERVICE, service_did_document
from atcore.syntax import InvalidSyntax, normalize_handle
from pds.context import context_of
from pds.db import accounts as q
from pds.handles import is_service_handle

log = logging.getLogger(__name__)

VERSION: Final = "0.1.0"
ROBOTS_TXT: Final = "# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /\n"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/.well-known/did.json", service_did_json)
    app.router.add_get("/.well-known/atproto-did", atproto_did)
    app.router.add_get("/xrpc/_health", health)
    app.router.add_get("/robots.txt", robots)


async def service_did_json(request: web.Request) -> web.Response:
    settings = context_of(request).settings
    if not settings.service_did.startswith("did:web:"):
        raise web.HTTPNotFound(text="not found")
    document = service_did_document(
        settings.service_did, services={PDS_SERVICE: settings.public_url}
    )
    return web.json_response(document.to_json())


async def atproto_did(request: web.Request) -> web.Response:
    ctx = context_of(request)
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    try:
        handle = normalize_handle(host)
    except InvalidSyntax:
        return web.Response(status=404, text="User not found")
    if not is_service_handle(handle, ctx.settings.service_handle_domains):
        return web.Response(status=404, text="User not found")
    async with ctx.db.read() as conn:
        did = await q.handle_owner(conn, handle)
    if did is None:
        return web.Response(status=404, text="User not found")
    return web.Response(text=did, content_type="text/plain")


async def health(request: web.Request) -> web.Response:
    ctx = context_of(request)
    try:
        async with ctx.db.read() as conn:
            await conn.execute(text("select 1"))
    except Exception:
        log.exception("health check failed")
        return web.json_response({"version": VERSION, "error": "Service Unavailable"}, status=503)
    return web.json_response({"version": VERSION})


async def robots(request: web.Request) -> web.Response:
    return web.Response(text=ROBOTS_TXT, content_type="text/plain")
