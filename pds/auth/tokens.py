"""Session tokens: HS256 access and refresh JWTs, exactly as the reference PDS issues them.

Access token: header `{"typ": "at+jwt", "alg": "HS256"}`, claims `scope` (see `AuthScope`),
`aud` = the service DID, `sub` = the account DID, `iat`, `exp` = 120 minutes later.
Refresh token: header `typ` `refresh+jwt`, `scope` `com.atproto.refresh`, the same `aud`/`sub`,
a random `jti` (the row id in `refresh_token`), `exp` = 90 days later.

Verification checks, in this order: signature, header `typ`, audience, expiry, then the claim
shapes (a `sub` that is a DID, no `lxm` (service-auth) or `cnf` (proof-of-possession) claim, a
scope the endpoint accepts). Only an expired but otherwise genuine token reports `TokenExpired`,
which clients answer by refreshing.

Errors (all `TokenError`, a `ValueError`):

    TokenError
    ├── TokenExpired    genuine token past its `exp`
    └── TokenInvalid    forged, malformed, wrong type, audience or scope
"""

# ruff: noqa: S105  (token types and scope names are identifiers, not secrets)

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import jwt

from atcore.syntax import Did, is_valid_did

ACCESS_TOKEN_TYPE: Final = "at+jwt"
REFRESH_TOKEN_TYPE: Final = "refresh+jwt"
ACCESS_TOKEN_TTL_SECONDS: Final = 120 * 60
REFRESH_TOKEN_TTL_SECONDS: Final = 90 * 24 * 3600
_ALGORITHM: Final = "HS256"


class AuthScope(StrEnum):
    ACCESS = "com.atproto.access"
    REFRESH = "com.atproto.refresh"
    APP_PASS = "com.atproto.appPass"
    APP_PASS_PRIVILEGED = "com.atproto.appPassPrivileged"
    TAKENDOWN = "com.atproto.takendown"


ACCESS_FULL: Final = frozenset({AuthScope.ACCESS})
"""Only a session from the account password (not an app password)."""
ACCESS_PRIVILEGED: Final = ACCESS_FULL | {AuthScope.APP_PASS_PRIVILEGED}
ACCESS_STANDARD: Final = ACCESS_PRIVILEGED | {AuthScope.APP_PASS}


def scope_for(app_password_privileged: bool | None, *, taken_down: bool = False) -> AuthScope:
    """The access scope of a session: `None` means logged in with the account password."""
    if taken_down:
        return AuthScope.TAKENDOWN
    if app_password_privileged is None:
        return AuthScope.ACCESS
    return AuthScope.APP_PASS_PRIVILEGED if app_password_privileged else AuthScope.APP_PASS


class TokenError(ValueError):
    """A bearer token was not accepted."""


class TokenExpired(TokenError):
    """The token is genuine but past its expiry."""


class TokenInvalid(TokenError):
    """The token is forged, malformed, or not the kind this endpoint takes."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    did: Did
    scope: AuthScope
    expires_at: int


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    did: Did
    token_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_jwt: str
    refresh_jwt: str
    refresh_id: str
    refresh_expires_at: int
    """Epoch seconds."""


def new_refresh_token_id() -> str:
    """32 random bytes in standard base64, like the reference's token ids."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class TokenIssuer:
    """Signs and verifies session tokens with the PDS's JWT secret."""

    def __init__(self, secret: str, service_did: str) -> None:
        self._key = secret.encode("utf-8")
        self.service_did = service_did

    # -- issuing ----------------------------------------------------------------------------------
    def create_access_token(self, did: str, scope: AuthScope, *, now: int | None = None) -> str:
        issued = int(time.time()) if now is None else now
        claims = {
            "scope": scope.value,
            "aud": self.service_did,
            "sub": did,
            "iat": issued,
            "exp": issued + ACCESS_TOKEN_TTL_SECONDS,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"typ": "at+jwt"})

    def create_refresh_token(
        self, did: str, token_id: str, *, now: int | None = None
    ) -> tuple[str, int]:
        """The refresh JWT and its expiry (epoch seconds)."""
        issued = int(time.time()) if now is None else now
        expires = issued + REFRESH_TOKEN_TTL_SECONDS
        claims = {
            "scope": AuthScope.REFRESH.value,
            "aud": self.service_did,
            "sub": did,
            "jti": token_id,
            "iat": issued,
            "exp": expires,
        }
        token = jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"typ": "refresh+jwt"})
        return token, expires

    def create_pair(
        self, did: str, scope: AuthScope, *, refresh_id: str | None = None, now: int | None = None
    ) -> TokenPair:
        token_id = refresh_id or new_refresh_token_id()
        refresh, expires = self.create_refresh_token(did, token_id, now=now)
        return TokenPair(
            access_jwt=self.create_access_token(did, scope, now=now),
            refresh_jwt=refresh,
            refresh_id=token_id,
            refresh_expires_at=expires,
        )

    # -- verifying --------------------------------------------------------------------------------
    def verify_access(self, token: str, scopes: Collection[AuthScope]) -> AccessClaims:
        claims = self._verify(token, ACCESS_TOKEN_TYPE, check_expiry=True)
        scope = _scope(claims, scopes)
        return AccessClaims(did=Did(claims["sub"]), scope=scope, expires_at=claims["exp"])

    def verify_refresh(self, token: str, *, allow_expired: bool = False) -> RefreshClaims:
        claims = self._verify(token, REFRESH_TOKEN_TYPE, check_expiry=not allow_expired)
        _scope(claims, (AuthScope.REFRESH,))
        token_id = claims.get("jti")
        if not isinstance(token_id, str) or not token_id:
            raise TokenInvalid("Unexpected missing refresh token id")
        return RefreshClaims(did=Did(claims["sub"]), token_id=token_id, expires_at=claims["exp"])

    def _verify(self, token: str, token_type: str, *, check_expiry: bool) -> dict[str, Any]:
        try:
            decoded = jwt.decode_complete(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid("Token could not be verified") from exc
        header: dict[str, Any] = decoded["header"]
        claims: dict[str, Any] = decoded["payload"]
        if header.get("typ") != token_type:
            raise TokenInvalid("Token could not be verified")
        if claims.get("aud") != self.service_did:
            raise TokenInvalid("Token could not be verified")
        expires = claims.get("exp")
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise TokenInvalid("Token could not be verified")
        if check_expiry and expires <= time.time():
            raise TokenExpired("Token has expired")
        if "lxm" in claims or "cnf" in claims:
            raise TokenInvalid("Malformed token")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not is_valid_did(subject):
            raise TokenInvalid("Malformed token")
        return claims


def _scope(claims: dict[str, Any], allowed: Collection[AuthScope]) -> AuthScope:
    raw = claims.get("scope")
    try:
        scope = AuthScope(raw) if isinstance(raw, str) else None
    except ValueError:
        scope = None
    if scope is None:
        raise TokenInvalid("Bad token scope")
    if scope not in allowed:
        raise TokenInvalid("Bad token scope")
    return scope
