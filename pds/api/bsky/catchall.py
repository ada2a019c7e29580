"""The catch-all XRPC route: every method this PDS does not serve itself.

- `app.bsky.*` and `chat.bsky.*` go to the configured AppView (the reference's default service);
- any method with an `atproto-proxy` header goes to the service it names;
- anything else is `MethodNotImplemented` (501), and a method served here but called with the
  wrong HTTP method is `MethodNotAllowed` (405) — aiohttp sends both cases here.

The caller must hold an access token (app passwords included). Methods of account management
are never proxied (`InvalidToken` "Bad token method", as the reference answers), and privileged
methods (`chat.bsky`) need more than a plain app password: both lists, compared without regard
to case, are `pds.auth.methods`, shared with service auth.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from atcore import nsids
from atcore.syntax import is_valid_nsid
from atcore.xrpc import InvalidRequest, MethodNotAllowed, MethodNotImplemented
from pds.api.bsky.common import LOCAL_ROUTES, namespace_of, relay
from pds.auth.methods import is_privileged_method, is_protected_method
from pds.auth.tokens import AuthScope
from pds.context import context_of
from pds.proxy import PROXY_HEADER

CATCHALL_PATH: Final = "/xrpc/{nsid}"
DEFAULT_PROXIED_NAMESPACES: Final = (nsids.BSKY_NAMESPACE, nsids.CHAT_NAMESPACE)


async def proxy_unserved(request: web.Request) -> web.StreamResponse:
    lxm = request.match_info["nsid"]
    if request.app[LOCAL_ROUTES].serves(request.app, request.path):
        raise MethodNotAllowed(f"Method {request.method} not allowed for this endpoint")
    if not is_valid_nsid(lxm):
        raise MethodNotImplemented("Method Not Implemented")
    proxied_by_default = namespace_of(lxm, DEFAULT_PROXIED_NAMESPACES)
    if not proxied_by_default and PROXY_HEADER not in request.headers:
        raise MethodNotImplemented("Method Not Implemented")
    if is_protected_method(lxm):
        raise InvalidRequest("Bad token method", error="InvalidToken")
    ctx = context_of(request)
    target = await ctx.proxy.target_for(request, lxm)
    credentials = await ctx.auth.access(request)
    if credentials.scope == AuthScope.APP_PASS and is_privileged_method(lxm):
        raise InvalidRequest("Bad token method", error="InvalidToken")
    return await relay(request, target, iss=credentials.did, lxm=lxm)
