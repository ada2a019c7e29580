"""com.atproto.identity: resolveHandle and updateHandle.

resolveHandle answers from our own accounts first; a handle under one of our service domains
that no account holds is `HandleNotFound`; any other handle is resolved on the network (HTTPS
well-known). updateHandle writes a PLC update operation, stores the handle and sequences an
`#identity` event; our cached copy of the DID document is dropped so the next session response
shows the new handle.
"""

from __future__ import annotations

from aiohttp import web

from atcore import nsids
from atcore.identity import IdentityError
from atcore.xrpc import InvalidRequest
from pds import ratelimit as rl
from pds.api.params import json_body, query_str
from pds.context import context_of
from pds.db import accounts as q
from pds.handles import is_service_handle, parse_handle_input


def add_routes(app: web.Application) -> None:
    app.router.add_get(nsids.xrpc_path(nsids.IDENTITY_RESOLVE_HANDLE), resolve_handle)
    app.router.add_post(nsids.xrpc_path(nsids.IDENTITY_UPDATE_HANDLE), update_handle)


async def resolve_handle(request: web.Request) -> web.Response:
    ctx = context_of(request)
    handle = parse_handle_input(query_str(request, "handle"))
    async with ctx.db.read() as conn:
        did = await q.handle_owner(conn, handle)
    if did is not None:
        return web.json_response({"did": did})
    if is_service_handle(handle, ctx.settings.service_handle_domains):
        raise InvalidRequest("Unable to resolve handle", error="HandleNotFound")
    try:
        resolved = await ctx.handle_resolver.resolve(handle)
    except IdentityError:
        raise InvalidRequest("Unable to resolve handle") from None
    return web.json_response({"did": resolved})


async def update_handle(request: web.Request) -> web.Response:
    ctx = context_of(request)
    credentials = await ctx.auth.access(request, check_takedown=True)
    body = await json_body(request)
    raw_handle = body.string("handle")
    await ctx.rate_limiter.consume(
        request,
        (rl.UPDATE_HANDLE_SHORT, credentials.did),
        (rl.UPDATE_HANDLE_DAY, credentials.did),
    )
    await ctx.accounts.update_handle(credentials.did, raw_handle)
    ctx.did_resolver.invalidate(credentials.did)
    return web.Response(status=200)
