"""Plumbing shared by the `app.bsky` endpoints: parameters, service auth and relaying.

The `ServiceProxy` and the lexicon catalog are the application's (`AppContext.proxy` and
`.catalog`). `LocalRoutes` (under `LOCAL_ROUTES`) tells the catch-all which paths another route
serves. `relay` mints the service JWT for a call and streams it to a target;
`relay_if_elsewhere` does so only when the `atproto-proxy` header names a service other than the
configured AppView (endpoints that the PDS answers itself for its own AppView, such as
preferences, still honour other AppViews).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from aiohttp import web

from atcore.lexicon import ValidationError
from atcore.xrpc import InvalidRequest
from pds.auth.service_jwt import create_service_jwt
from pds.context import CONTEXT, AppContext, context_of
from pds.proxy import PROXY_HEADER, ServiceTarget

_T = TypeVar("_T")


@dataclass(slots=True)
class LocalRoutes:
    """The paths routes other than a catch-all answer, read from the router on first use."""

    _paths: frozenset[str] | None = field(default=None)

    def serves(self, app: web.Application, path: str) -> bool:
        """True when a route other than a catch-all answers `path` (with some method)."""
        if self._paths is None:
            # The router is frozen once the app runs, so one scan lasts for its lifetime.
            self._paths = frozenset(
                resource.canonical
                for resource in app.router.resources()
                if "{" not in resource.canonical
            )
        return path in self._paths


LOCAL_ROUTES: Final = web.AppKey("pds_bsky_local_routes", LocalRoutes)


def decode_params(request: web.Request, nsid: str) -> dict[str, Any]:
    """The method's query parameters, decoded and checked against its lexicon."""
    catalog = context_of(request).catalog
    return checked(lambda: catalog.decode_params(nsid, request.query.items()))


def checked(validate: Callable[[], _T]) -> _T:
    """Run a lexicon check, reporting a failure as `InvalidRequest` naming the field."""
    try:
        return validate()
    except ValidationError as exc:
        raise InvalidRequest(exc.message) from None


async def service_authorization(ctx: AppContext, did: str, aud: str, lxm: str) -> str:
    """`Bearer <service JWT>` signed with the account's key, for `aud` and method `lxm`."""
    keypair = await ctx.accounts.signing_key(did)
    return f"Bearer {create_service_jwt(keypair=keypair, iss=did, aud=aud, lxm=lxm)}"


async def relay(
    request: web.Request,
    target: ServiceTarget,
    *,
    iss: str,
    lxm: str,
    aud: str | None = None,
) -> web.StreamResponse:
    """Forward the call to `target` as `iss`; the JWT audience is the target's bare DID.

    The bare DID (not `did#service`) is what receivers such as feed generators compare with
    their own DID, and what the reference PDS sends.
    """
    authorization = await service_authorization(request.app[CONTEXT], iss, aud or target.did, lxm)
    return await context_of(request).proxy.forward(request, target, authorization=authorization)


async def relay_if_elsewhere(request: web.Request, iss: str, lxm: str) -> web.StreamResponse | None:
    """Relay when `atproto-proxy` names a service other than the configured AppView."""
    header = request.headers.get(PROXY_HEADER)
    if header is None:
        return None
    proxy = context_of(request).proxy
    appview = proxy.config.appview
    if appview is not None and header == appview.reference:
        return None
    return await relay(request, await proxy.target_from_header(header), iss=iss, lxm=lxm)


async def optional_target(request: web.Request) -> ServiceTarget | None:
    """The `atproto-proxy` header's service, else the configured AppView, else None."""
    proxy = context_of(request).proxy
    header = request.headers.get(PROXY_HEADER)
    if header is not None:
        return await proxy.target_from_header(header)
    return proxy.config.appview


def namespace_of(nsid: str, namespaces: Iterable[str]) -> bool:
    return any(nsid.startswith(f"{namespace}.") for namespace in namespaces)
