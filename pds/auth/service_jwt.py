"""Inter-service auth JWTs: minting them with an account's key, verifying incoming ones.

A service JWT is signed by an account (or service) key, not by our HS256 secret: header
`{"typ": "JWT", "alg": "ES256K" | "ES256"}`, claims `iss` (a DID, optionally `#service`),
`aud` (the receiving service's DID or `did#service` reference), `exp`, optional `lxm` (the one
XRPC method it is good for), `iat` and a random `jti`. The signature is the 64-byte compact
low-S ECDSA signature over `<header>.<payload>`, base64url without padding.

Verification follows the reference (`@atproto/xrpc-server` `verifyJwt`): reject the session
token types (`at+jwt`, `refresh+jwt`, `dpop+jwt`), then expiry, audience, method, issuer; then
the signature against the issuer's `#atproto` key (`#atproto_label` for a `#atproto_labeler`
issuer), retrying once with a freshly resolved document in case the key was rotated.

Errors: `ServiceJwtError(ValueError)` with a reference error `name` (`BadJwt`, `BadJwtType`,
`JwtExpired`, `BadJwtAudience`, `BadJwtLexiconMethod`, `BadJwtIss`, `BadJwtSignature`); the HTTP
layer reports them as 401 `AuthenticationRequired` with that name.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from atcore.crypto import Keypair, PublicKey
from atcore.syntax import is_valid_did

SESSION_TOKEN_TYPES: Final = frozenset({"at+jwt", "refresh+jwt", "dpop+jwt"})
DEFAULT_TTL_SECONDS: Final = 60

KeyLookup = Callable[[str, bool], Awaitable[PublicKey | None]]
"""(issuer DID, force_refresh) -> the issuer's signing key, or None."""


class ServiceJwtError(ValueError):
    """An incoming service JWT was rejected; `name` is the reference's error name."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True, slots=True)
class ServiceJwtClaims:
    iss: str
    aud: str
    exp: int
    lxm: str | None
    jti: str | None

    @property
    def issuer_did(self) -> str:
        return self.iss.partition("#")[0]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_b64url(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def create_service_jwt(
    *,
    keypair: Keypair,
    iss: str,
    aud: str,
    lxm: str | None,
    exp: int | None = None,
    now: int | None = None,
) -> str:
    """A signed service JWT; `exp` defaults to one minute after `now`."""
    issued = int(time.time()) if now is None else now
    payload: dict[str, Any] = {
        "iat": issued,
        "iss": iss,
        "aud": aud,
        "exp": issued + DEFAULT_TTL_SECONDS if exp is None else exp,
    }
    if lxm is not None:
        payload["lxm"] = lxm
    payload["jti"] = secrets.token_hex(16)
    signing_input = (
        f"{_json_b64url({'typ': 'JWT', 'alg': keypair.jwt_alg})}.{_json_b64url(payload)}"
    )
    signature = keypair.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}"


def _decode_part(part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url_decode(part))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ServiceJwtError("poorly formatted jwt", "BadJwt") from exc
    if not isinstance(value, dict):
        raise ServiceJwtError("poorly formatted jwt", "BadJwt")
    return value


def _parse_claims(payload: dict[str, Any]) -> ServiceJwtClaims:
    iss, aud, exp = payload.get("iss"), payload.get("aud"), payload.get("exp")
    lxm, jti = payload.get("lxm"), payload.get("jti")
    if (
        not isinstance(iss, str)
        or not isinstance(aud, str)
        or not isinstance(exp, int | float)
        or isinstance(exp, bool)
        or (lxm is not None and not isinstance(lxm, str))
        or (jti is not None and not isinstance(jti, str))
    ):
        raise ServiceJwtError("poorly formatted jwt", "BadJwt")
    return ServiceJwtClaims(iss=iss, aud=aud, exp=int(exp), lxm=lxm, jti=jti)


def is_did_or_service_ref(value: str) -> bool:
    did, sep, fragment = value.partition("#")
    if sep and (not fragment or "#" in fragment):
        return False
    return is_valid_did(did)


def looks_like_service_jwt(token: str) -> bool:
    """True when an (unverified) bearer token carries an `lxm` claim: surely not a session token."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        return _decode_part(parts[1]).get("lxm") is not None
    except ServiceJwtError:
        return False


def key_fragment_for(iss: str) -> str:
    return "atproto_label" if iss.partition("#")[2] == "atproto_labeler" else "atproto"


async def verify_service_jwt(
    token: str, *, own_did: str | None, lxm: str | None, lookup_key: KeyLookup
) -> ServiceJwtClaims:
    """Check an incoming service JWT; `own_did`/`lxm` None skip those checks."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ServiceJwtError("poorly formatted jwt", "BadJwt")
    header = _decode_part(parts[0])
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise ServiceJwtError("poorly formatted jwt", "BadJwt")
    if header.get("typ") in SESSION_TOKEN_TYPES:
        raise ServiceJwtError(f'Invalid jwt type "{header["typ"]}"', "BadJwtType")
    claims = _parse_claims(_decode_part(parts[1]))
    if time.time() > claims.exp:
        raise ServiceJwtError("jwt expired", "JwtExpired")
    if own_did is not None and claims.aud != own_did:
        raise ServiceJwtError("jwt audience does not match service did", "BadJwtAudience")
    if lxm is not None and claims.lxm != lxm:
        which = "bad" if claims.lxm is not None else "missing"
        raise ServiceJwtError(
            f'{which} jwt lexicon method ("lxm"). must match: {lxm}', "BadJwtLexiconMethod"
        )
    if not is_did_or_service_ref(claims.iss):
        raise ServiceJwtError("jwt iss is not a valid did", "BadJwtIss")
    try:
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error) as exc:
        raise ServiceJwtError("could not verify jwt signature", "BadJwtSignature") from exc
    message = f"{parts[0]}.{parts[1]}".encode()
    key = await lookup_key(claims.iss, False)
    if _signature_ok(key, alg, message, signature):
        return claims
    fresh = await lookup_key(claims.iss, True)
    if fresh is not None and fresh != key and _signature_ok(fresh, alg, message, signature):
        return claims
    raise ServiceJwtError("jwt signature does not match jwt issuer", "BadJwtSignature")


def _signature_ok(key: PublicKey | None, alg: str, message: bytes, signature: bytes) -> bool:
    if key is None or key.jwt_alg != alg:
        return False
    return key.verify(message, signature)
