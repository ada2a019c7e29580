"""The catch-all XRPC route: every method this PDS does not serve itself.

- `app.bsky.*` and `chat.bsky.*` go to the configured AppView (the reference's default service);
- any method with an `atproto-proxy` header goes to the service it names;
- anything else is `MethodNotImplemented` (501), and a method served here but called with the
  wrong HTTP method is `MethodNotAllowed` (405) — aiohttp sends both cases here.

The caller must hold an access token (app passwords included). Methods of account management
are never proxied (`InvalidToken` "Bad token method", as the reference answers), and `chat.bsky`
needs a privileged session (not a plain app password).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from atcore import nsids
from atcore.syntax import is_valid_nsid
from atcore.xrpc import InvalidRequest, MethodNotAllowed, MethodNotImplemented
from pds.api.bsky.common import namespace_of, relay, services_of
from pds.auth.tokens import AuthScope
from pds.context import context_of
from pds.proxy import PROXY_HEADER

CATCHALL_PATH: Final = "/xrpc/{nsid}"
DEFAULT_PROXIED_NAMESPACES: Final = (nsids.BSKY_NAMESPACE, nsids.CHAT_NAMESPACE)

# Account management: used directly with the PDS, never through it (as in the reference).
PROTECTED_METHODS: Final = frozenset(
    name.lower()
    for name in (
        nsids.ADMIN_SEND_EMAIL,
        nsids.IDENTITY_REQUEST_PLC_SIGNATURE,
        nsids.IDENTITY_SIGN_PLC_OPERATION,
        nsids.IDENTITY_UPDATE_HANDLE,
        nsids.SERVER_ACTIVATE_ACCOUNT,
        nsids.SERVER_CONFIRM_EMAIL,
        nsids.SERVER_CREATE_APP_PASSWORD,
        nsids.SERVER_DEACTIVATE_ACCOUNT,
        nsids.SERVER_GET_ACCOUNT_INVITE_CODES,
        nsids.SERVER_GET_SESSION,
        nsids.SERVER_LIST_APP_PASSWORDS,
        nsids.SERVER_REQUEST_ACCOUNT_DELETE,
        nsids.SERVER_REQUEST_EMAIL_CONFIRMATION,
        nsids.SERVER_REQUEST_EMAIL_UPDATE,
        nsids.SERVER_REVOKE_APP_PASSWORD,
        nsids.SERVER_UPDATE_EMAIL,
    )
)
PRIVILEGED_NAMESPACES: Final = (nsids.CHAT_NAMESPACE,)


async def proxy_unserved(request: web.Request) -> web.StreamResponse:
    lxm = request.match_info["nsid"]
    services = services_of(request)
    if services.serves_locally(request.app, request.path):
        raise MethodNotAllowed(f"Method {request.method} not allowed for this endpoint")
    if not is_valid_nsid(lxm):
        raise MethodNotImplemented("Method Not Implemented")
    proxied_by_default = namespace_of(lxm, DEFAULT_PROXIED_NAMESPACES)
    if not proxied_by_default and PROXY_HEADER not in request.headers:
        raise MethodNotImplemented("Method Not Implemented")
    if lxm.lower() in PROTECTED_METHODS:
        raise InvalidRequest("Bad token method", error="InvalidToken")
    target = await services.proxy.target_for(request, lxm)
    credentials = await context_of(request).auth.access(request)
    if credentials.scope == AuthScope.APP_PASS and namespace_of(lxm, PRIVILEGED_NAMESPACES):
        raise InvalidRequest("Bad token method", error="InvalidToken")
    return await relay(request, target, iss=credentials.did, lxm=lxm)
