"""Verifying the viewer's service JWT on getFeedSkeleton (optional auth).

A viewer's PDS mints the token (`com.atproto.server.getServiceAuth`, or when it proxies getFeed):
header `{"typ": "JWT", "alg": "ES256K" | "ES256"}`, claims `iss` (the viewer's DID), `aud` (our
service DID, possibly `#bsky_fg`), `exp`, `iat`, `lxm` and a `jti`, signed over
`<header>.<payload>` with the viewer's atproto key as a 64-byte compact low-S ECDSA signature.

Rules, checked in this order (each failure names the reference's error):

1. `Authorization: Bearer <jwt>`; no header at all means an anonymous viewer. Three base64url
   segments, JSON objects, at most `MAX_TOKEN_CHARS`.                                  `BadJwt`
2. `alg` is exactly ES256K or ES256 (never `none`, never HMAC: a public key is not a secret);
   `typ`, when present, is `JWT` (session tokens `at+jwt`, `refresh+jwt`, ... are refused).
                                                                                `BadJwt`/`BadJwtType`
3. `exp` is required and not past (`CLOCK_SKEW_S` of leeway).                       `JwtExpired`
4. `iat` and `nbf`, when present, are not in the future, and `iat <= exp`.           `BadJwt`
5. `aud` is our service DID or `<our DID>#bsky_fg`.                            `BadJwtAudience`
6. `lxm` is `app.bsky.feed.getFeedSkeleton`.                              `BadJwtLexiconMethod`
7. `iss` is a plain DID.                                                             `BadJwtIss`
8. The signature verifies (strictly: 64 bytes, low-S) under the `#atproto` key of `iss`'s DID
   document, whose curve must match `alg`. Documents come from the `DidResolver`'s TTL cache; on
   a mismatch the document is fetched once more (`force_refresh`) in case the key rotated. Forced
   refreshes are rate-limited per DID, so forged tokens cannot turn us into a PLC load generator.
                                                                                 `BadJwtSignature`

A document that cannot be fetched (network, 5xx) is `AuthUnavailable`, not a rejection.

Errors: `AuthError(ValueError)` with the error `name`; `AuthUnavailable(AuthError)`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from atcore import nsids
from atcore.crypto import PublicKey
from atcore.identity import IdentityError, ResolutionUnavailable
from atcore.identity.cache import TtlCache
from atcore.syntax import Did, InvalidSyntax, parse_did

ALLOWED_ALGS: Final = frozenset({"ES256K", "ES256"})
FEED_GENERATOR_FRAGMENT: Final = "#bsky_fg"
MAX_TOKEN_CHARS: Final = 8192
CLOCK_SKEW_S: Final = 5.0
REFRESH_INTERVAL_S: Final = 60.0  # at most one forced DID refresh per DID per interval
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+").fullmatch


class AuthError(ValueError):
    """A presented service JWT is invalid; `name` is the XRPC error name."""

    def __init__(self, message: str, name: str = "BadJwt") -> None:
        super().__init__(message)
        self.name = name


class AuthUnavailable(AuthError):
    """The issuer's DID document could not be fetched right now (not the token's fault)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "UpstreamFailure")


class KeyResolver(Protocol):
    """What `DidResolver` offers: the DID's atproto signing key."""

    async def resolve_atproto_key(self, did: str, *, force_refresh: bool = False) -> PublicKey: ...


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    issuer: Did
    audience: str
    expires_at: float


class ServiceAuthVerifier:
    """Checks service JWTs addressed to `service_did` for getFeedSkeleton."""

    def __init__(
        self,
        *,
        service_did: str,
        keys: KeyResolver,
        clock: Callable[[], float] = time.time,
        lxm: str = nsids.BSKY_FEED_GET_FEED_SKELETON,
    ) -> None:
        self._audiences = frozenset({service_did, service_did + FEED_GENERATOR_FRAGMENT})
        self._keys = keys
        self._clock = clock
        self._lxm = lxm
        self._refreshed: TtlCache[str, bool] = TtlCache(
            max_size=10_000, ttl=REFRESH_INTERVAL_S, clock=time.monotonic
        )

    async def viewer(self, authorization: str | None) -> Did | None:
        """The verified viewer DID, or None for a request without an Authorization header."""
        if authorization is None:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("authorization must be a Bearer service JWT")
        return (await self.verify(token.strip())).issuer

    async def verify(self, token: str) -> VerifiedToken:
        header_b64, payload_b64, signature = _split(token)
        alg = _checked_alg(_json_segment(header_b64))
        claims = _json_segment(payload_b64)
        now = self._clock()
        expires_at = self._check_times(claims, now)
        audience = claims.get("aud")
        if not isinstance(audience, str) or audience not in self._audiences:
            raise AuthError("jwt audience does not match service did", "BadJwtAudience")
        if claims.get("lxm") != self._lxm:
            which = "missing" if claims.get("lxm") is None else "bad"
            raise AuthError(
                f"{which} jwt lexicon method (lxm), must be {self._lxm}", "BadJwtLexiconMethod"
            )
        issuer = _issuer(claims.get("iss"))
        message = f"{header_b64}.{payload_b64}".encode("ascii")
        await self._check_signature(issuer, alg, message, signature)
        return VerifiedToken(issuer=issuer, audience=audience, expires_at=expires_at)

    def _check_times(self, claims: dict[str, Any], now: float) -> float:
        exp = _number(claims, "exp")
        if exp is None:
            raise AuthError("jwt has no exp claim")
        if now > exp + CLOCK_SKEW_S:
            raise AuthError("jwt expired", "JwtExpired")
        iat = _number(claims, "iat")
        if iat is not None and (iat > now + CLOCK_SKEW_S or iat > exp):
            raise AuthError("jwt issued in the future or after its expiry")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + CLOCK_SKEW_S:
            raise AuthError("jwt not valid yet")
        return exp

    async def _check_signature(self, issuer: Did, alg: str, message: bytes, sig: bytes) -> None:
        key = await self._key(issuer, force_refresh=False)
        if _signature_ok(key, alg, message, sig):
            return
        if self._refreshed.get(issuer) is None:
            self._refreshed.put(issuer, True)
            fresh = await self._key(issuer, force_refresh=True)
            if fresh != key and _signature_ok(fresh, alg, message, sig):
                return
        raise AuthError("jwt signature does not match jwt issuer", "BadJwtSignature")

    async def _key(self, issuer: Did, *, force_refresh: bool) -> PublicKey:
        try:
            return await self._keys.resolve_atproto_key(issuer, force_refresh=force_refresh)
        except ResolutionUnavailable as exc:
            raise AuthUnavailable(f"could not resolve {issuer}: {exc}") from exc
        except IdentityError as exc:
            raise AuthError(f"could not resolve the jwt issuer: {exc}", "BadJwtIss") from exc


def _split(token: str) -> tuple[str, str, bytes]:
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError("jwt is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL(part) for part in parts):
        raise AuthError("poorly formatted jwt")
    return parts[0], parts[1], _b64url(parts[2])


def _b64url(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise AuthError("poorly formatted jwt") from exc


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url(segment))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthError("poorly formatted jwt") from exc
    if not isinstance(value, dict):
        raise AuthError("poorly formatted jwt")
    return value


def _checked_alg(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise AuthError(f"unsupported jwt alg: {str(alg)[:20]!r}")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise AuthError(f"invalid jwt type {str(typ)[:20]!r}", "BadJwtType")
    return str(alg)


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(f"jwt {name} claim is not a number")
    return float(value)


def _issuer(value: object) -> Did:
    if not isinstance(value, str):
        raise AuthError("jwt iss is missing", "BadJwtIss")
    try:
        return parse_did(value)
    except InvalidSyntax as exc:
        raise AuthError("jwt iss is not a valid did", "BadJwtIss") from exc


def _signature_ok(key: PublicKey, alg: str, message: bytes, signature: bytes) -> bool:
    # The curve must match the header: an ES256 token never verifies under a K-256 key.
    return key.jwt_alg == alg and key.verify(message, signature)
