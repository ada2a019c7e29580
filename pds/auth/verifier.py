"""Who is calling: the `Authorization` header turned into typed credentials, or an XRPC error.

Kinds of caller, one method each:

- `access`: `Bearer` access JWT (ours, HS256) with a scope from the endpoint's allowed set;
  optionally refusing taken-down or deactivated accounts.
- `refresh`: `Bearer` refresh JWT, only on refreshSession / deleteSession.
- `admin`: `Basic admin:<PDS_ADMIN_PASSWORD>`.
- `service`: `Bearer` service JWT signed by another DID's key, with our DID as `aud` and the
  endpoint's NSID as `lxm`; `access_or_service` picks between the two the way the reference does
  (a token carrying `lxm` is a service JWT).

Errors follow the reference: no credentials → 401 `AuthMissing`; a malformed header or an
unsupported scheme → 400 `InvalidToken`; an expired session token → 400 `ExpiredToken` (clients
refresh on it); any other bad session token → 400 `InvalidToken`; bad admin password or service
JWT → 401 `AuthenticationRequired` (with the service-auth error name).

Every authenticated request is marked so its response gets `Cache-Control: private` and
`Vary: Authorization` (see `pds.app`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from atcore.crypto import PublicKey
from atcore.identity import IdentityError
from atcore.identity.resolver import DidResolver
from atcore.syntax import Did
from atcore.xrpc import AuthenticationRequired, Forbidden, InvalidRequest
from pds.auth.service_jwt import (
    ServiceJwtClaims,
    ServiceJwtError,
    key_fragment_for,
    looks_like_service_jwt,
    verify_service_jwt,
)
from pds.auth.tokens import (
    ACCESS_STANDARD,
    AuthScope,
    TokenExpired,
    TokenInvalid,
    TokenIssuer,
)
from pds.db.accounts import AccountRow

AUTHENTICATED: Final = web.RequestKey("pds_authenticated", bool)
ADMIN_USERNAME: Final = "admin"

AccountLookup = Callable[[Did], Awaitable[AccountRow | None]]


@dataclass(frozen=True, slots=True)
class AccessCredentials:
    did: Did
    scope: AuthScope

    @property
    def is_app_password(self) -> bool:
        return self.scope in (AuthScope.APP_PASS, AuthScope.APP_PASS_PRIVILEGED)


@dataclass(frozen=True, slots=True)
class RefreshCredentials:
    did: Did
    token_id: str


@dataclass(frozen=True, slots=True)
class ServiceCredentials:
    """A caller proven by a service JWT; `did` is the issuer's DID (without `#service`)."""

    did: Did
    claims: ServiceJwtClaims


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    pass


def _authorization(request: web.Request) -> tuple[str, str] | None:
    """(scheme in lowercase, credentials) or None when the header is absent."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    parts = header.split(" ")
    if len(parts) != 2:
        raise InvalidRequest("Malformed authorization header", error="InvalidToken")
    scheme = parts[0].lower()
    if scheme not in ("bearer", "basic", "dpop"):
        raise InvalidRequest(f"Unsupported authorization type: {parts[0]}", error="InvalidToken")
    return scheme, parts[1]


def bearer_token(request: web.Request) -> str | None:
    found = _authorization(request)
    return found[1] if found and found[0] == "bearer" else None


class AuthVerifier:
    def __init__(
        self,
        *,
        tokens: TokenIssuer,
        admin_password: str,
        service_did: str,
        resolver: DidResolver,
        find_account: AccountLookup,
    ) -> None:
        self._tokens = tokens
        self._admin_password = admin_password.encode("utf-8")
        self._service_did = service_did
        self._resolver = resolver
        self._find_account = find_account

    # -- session tokens ---------------------------------------------------------------------------
    async def access(
        self,
        request: web.Request,
        *,
        scopes: Collection[AuthScope] = ACCESS_STANDARD,
        check_takedown: bool = False,
        check_deactivated: bool = False,
    ) -> AccessCredentials:
        request[AUTHENTICATED] = True
        found = _authorization(request)
        if found is None:
            raise AuthenticationRequired("Authentication Required", error="AuthMissing")
        scheme, token = found
        if scheme != "bearer":
            raise InvalidRequest("Unexpected authorization type", error="InvalidToken")
        allowed = set(scopes)
        if check_takedown:
            allowed.discard(AuthScope.TAKENDOWN)
        try:
            claims = self._tokens.verify_access(token, allowed)
        except TokenExpired as exc:
            raise InvalidRequest(str(exc), error="ExpiredToken") from exc
        except TokenInvalid as exc:
            raise InvalidRequest(str(exc), error="InvalidToken") from exc
        if check_takedown or check_deactivated:
            await self._check_status(claims.did, check_takedown, check_deactivated)
        return AccessCredentials(did=claims.did, scope=claims.scope)

    def refresh(self, request: web.Request, *, allow_expired: bool = False) -> RefreshCredentials:
        request[AUTHENTICATED] = True
        token = bearer_token(request)
        if token is None:
            raise AuthenticationRequired("Authentication Required", error="AuthMissing")
        try:
            claims = self._tokens.verify_refresh(token, allow_expired=allow_expired)
        except TokenExpired as exc:
            raise InvalidRequest(str(exc), error="ExpiredToken") from exc
        except TokenInvalid as exc:
            raise InvalidRequest(str(exc), error="InvalidToken") from exc
        return RefreshCredentials(did=claims.did, token_id=claims.token_id)

    async def _check_status(self, did: Did, takedown: bool, deactivated: bool) -> None:
        found = await self._find_account(did)
        if found is None:
            raise Forbidden("Account not found", error="AccountNotFound")
        if takedown and found.taken_down:
            raise AuthenticationRequired("Account has been taken down", error="AccountTakedown")
        if deactivated and found.deactivated:
            raise AuthenticationRequired("Account is deactivated", error="AccountDeactivated")

    # -- admin ------------------------------------------------------------------------------------
    def admin(self, request: web.Request) -> AdminCredentials:
        request[AUTHENTICATED] = True
        found = _authorization(request)
        if found is None or found[0] != "basic":
            raise AuthenticationRequired("Authentication Required")
        try:
            decoded = base64.b64decode(found[1], validate=True)
        except (binascii.Error, ValueError):
            raise AuthenticationRequired("Authentication Required") from None
        username, sep, password = decoded.partition(b":")
        valid = hmac.compare_digest(password, self._admin_password)
        if not sep or username != ADMIN_USERNAME.encode() or not valid:
            raise AuthenticationRequired("Authentication Required")
        return AdminCredentials()

    def is_admin(self, request: web.Request) -> bool:
        found = _authorization(request)
        return found is not None and found[0] == "basic"

    # -- service auth -----------------------------------------------------------------------------
    async def service(self, request: web.Request, *, lxm: str | None) -> ServiceCredentials:
        request[AUTHENTICATED] = True
        token = bearer_token(request)
        if token is None:
            raise AuthenticationRequired("missing jwt", error="MissingJwt")
        try:
            claims = await verify_service_jwt(
                token, own_did=self._service_did, lxm=lxm, lookup_key=self._issuer_key
            )
        except ServiceJwtError as exc:
            raise AuthenticationRequired(str(exc), error=exc.name) from exc
        return ServiceCredentials(did=Did(claims.issuer_did), claims=claims)

    async def optional_service(
        self, request: web.Request, *, lxm: str | None
    ) -> ServiceCredentials | None:
        if bearer_token(request) is None:
            if "Authorization" in request.headers:
                raise AuthenticationRequired("Invalid authorization header")
            return None
        return await self.service(request, lxm=lxm)

    async def access_or_service(
        self,
        request: web.Request,
        *,
        lxm: str,
        scopes: Collection[AuthScope] = ACCESS_STANDARD,
        check_takedown: bool = False,
        check_deactivated: bool = False,
    ) -> AccessCredentials | ServiceCredentials:
        token = bearer_token(request)
        if token is not None and looks_like_service_jwt(token):
            return await self.service(request, lxm=lxm)
        return await self.access(
            request,
            scopes=scopes,
            check_takedown=check_takedown,
            check_deactivated=check_deactivated,
        )

    async def _issuer_key(self, iss: str, force_refresh: bool) -> PublicKey | None:
        did = iss.partition("#")[0]
        try:
            document = await self._resolver.resolve(did, force_refresh=force_refresh)
        except IdentityError as exc:
            raise ServiceJwtError("could not resolve iss did", "AuthenticationRequired") from exc
        key = document.verification_key(key_fragment_for(iss))
        if key is None:
            raise ServiceJwtError("missing or bad key in did doc", "AuthenticationRequired")
        return key
