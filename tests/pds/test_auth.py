"""Unit tests of the PDS's credentials: password hashes, session JWTs, service JWTs (mailed codes:
`test_email_codes`)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

import jwt
import pytest

from atcore.crypto import K256Keypair, Keypair, P256Keypair, PublicKey
from pds.auth import passwords
from pds.auth.methods import is_privileged_method, is_protected_method
from pds.auth.service_jwt import (
    KeyLookup,
    ServiceJwtError,
    create_service_jwt,
    looks_like_service_jwt,
    verify_service_jwt,
)
from pds.auth.tokens import (
    ACCESS_FULL,
    ACCESS_STANDARD,
    ACCESS_TOKEN_TTL_SECONDS,
    REFRESH_TOKEN_TTL_SECONDS,
    AuthScope,
    TokenExpired,
    TokenInvalid,
    TokenIssuer,
    scope_for,
)

SECRET = "a" * 64
SERVICE_DID = "did:web:pds.example.com"
ALICE = "did:plc:abcdefghijklmnopqrstuvwx"


# -- passwords --------------------------------------------------------------------------------
def test_password_hash_round_trip_and_format() -> None:
    stored = passwords.hash_password("correct horse")
    salt, _, digest = stored.partition(":")
    assert re.fullmatch(r"[0-9a-f]{32}", salt)
    assert re.fullmatch(r"[0-9a-f]{128}", digest)
    assert passwords.verify_password("correct horse", stored)
    assert not passwords.verify_password("correct horsE", stored)


def test_password_hash_uses_reference_scrypt_parameters() -> None:
    # The reference stores scrypt(password, salt=<hex text>, N=16384, r=8, p=1, 64 bytes).
    stored = passwords.hash_with_salt("hunter2", "00112233445566778899aabbccddeeff")
    expected = hashlib.scrypt(
        b"hunter2", salt=b"00112233445566778899aabbccddeeff", n=16384, r=8, p=1, dklen=64
    ).hex()
    assert stored == f"00112233445566778899aabbccddeeff:{expected}"


def test_password_hashes_are_salted() -> None:
    assert passwords.hash_password("same") != passwords.hash_password("same")


def test_overlong_or_malformed_passwords_never_match() -> None:
    long_password = "x" * (passwords.OLD_PASSWORD_MAX_LENGTH + 1)
    assert not passwords.verify_password(long_password, passwords.hash_password(long_password))
    assert not passwords.verify_password("pw", "no-separator")


def test_app_password_shape_and_per_account_hash() -> None:
    generated = passwords.generate_app_password()
    assert re.fullmatch(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}", generated)
    alice = passwords.hash_app_password(ALICE, generated)
    assert passwords.hash_app_password(ALICE, generated) == alice
    assert passwords.hash_app_password("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb", generated) != alice


def test_matches_any_finds_the_matching_hash() -> None:
    assert passwords.matches_any("b", ["a", "b", "c"]) == 1
    assert passwords.matches_any("z", ["a", "b"]) is None
    assert passwords.matches_any("a", []) is None


# -- session tokens ---------------------------------------------------------------------------
@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(SECRET, SERVICE_DID)


def test_access_token_matches_the_reference_shape(issuer: TokenIssuer) -> None:
    pair = issuer.create_pair(ALICE, AuthScope.ACCESS)
    header = jwt.get_unverified_header(pair.access_jwt)
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(pair.access_jwt, SECRET, algorithms=["HS256"], audience=SERVICE_DID)
    assert claims["scope"] == "com.atproto.access"
    assert claims["sub"] == ALICE
    assert claims["aud"] == SERVICE_DID
    assert claims["exp"] - claims["iat"] == ACCESS_TOKEN_TTL_SECONDS == 7200
    assert "jti" not in claims


def test_refresh_token_matches_the_reference_shape(issuer: TokenIssuer) -> None:
    pair = issuer.create_pair(ALICE, AuthScope.APP_PASS)
    header = jwt.get_unverified_header(pair.refresh_jwt)
    assert header == {"alg": "HS256", "typ": "refresh+jwt"}
    claims = jwt.decode(pair.refresh_jwt, SECRET, algorithms=["HS256"], audience=SERVICE_DID)
    assert claims["scope"] == "com.atproto.refresh"
    assert claims["jti"] == pair.refresh_id
    assert len(base64.b64decode(pair.refresh_id)) == 32
    assert claims["exp"] - claims["iat"] == REFRESH_TOKEN_TTL_SECONDS == 90 * 86400
    assert claims["exp"] == pair.refresh_expires_at


def test_verify_access_returns_did_and_scope(issuer: TokenIssuer) -> None:
    pair = issuer.create_pair(ALICE, AuthScope.APP_PASS_PRIVILEGED)
    claims = issuer.verify_access(pair.access_jwt, ACCESS_STANDARD)
    assert (claims.did, claims.scope) == (ALICE, AuthScope.APP_PASS_PRIVILEGED)


def test_scope_outside_the_allowed_set_is_invalid(issuer: TokenIssuer) -> None:
    token = issuer.create_access_token(ALICE, AuthScope.APP_PASS)
    with pytest.raises(TokenInvalid, match="Bad token scope"):
        issuer.verify_access(token, ACCESS_FULL)


def test_expired_access_token(issuer: TokenIssuer) -> None:
    token = issuer.create_access_token(
        ALICE, AuthScope.ACCESS, now=int(time.time()) - ACCESS_TOKEN_TTL_SECONDS - 5
    )
    with pytest.raises(TokenExpired):
        issuer.verify_access(token, ACCESS_STANDARD)


def test_forged_token_is_invalid_not_expired(issuer: TokenIssuer) -> None:
    old = int(time.time()) - ACCESS_TOKEN_TTL_SECONDS - 5
    forged = TokenIssuer("b" * 64, SERVICE_DID).create_access_token(
        ALICE, AuthScope.ACCESS, now=old
    )
    with pytest.raises(TokenInvalid):
        issuer.verify_access(forged, ACCESS_STANDARD)


def test_other_audience_is_invalid(issuer: TokenIssuer) -> None:
    other = TokenIssuer(SECRET, "did:web:other.example.com").create_access_token(
        ALICE, AuthScope.ACCESS
    )
    with pytest.raises(TokenInvalid):
        issuer.verify_access(other, ACCESS_STANDARD)


def test_refresh_token_is_not_an_access_token(issuer: TokenIssuer) -> None:
    pair = issuer.create_pair(ALICE, AuthScope.ACCESS)
    with pytest.raises(TokenInvalid):
        issuer.verify_access(pair.refresh_jwt, ACCESS_STANDARD)
    with pytest.raises(TokenInvalid):
        issuer.verify_refresh(pair.access_jwt)


def test_refresh_expiry_can_be_ignored_for_logout(issuer: TokenIssuer) -> None:
    past = int(time.time()) - REFRESH_TOKEN_TTL_SECONDS - 5
    token, _ = issuer.create_refresh_token(ALICE, "token-id", now=past)
    with pytest.raises(TokenExpired):
        issuer.verify_refresh(token)
    assert issuer.verify_refresh(token, allow_expired=True).token_id == "token-id"


def _hs256(claims: dict[str, object], typ: str = "at+jwt", alg: str = "HS256") -> str:
    return jwt.encode(claims, SECRET, algorithm=alg, headers={"typ": typ})


@pytest.mark.parametrize(
    "extra",
    [
        {"lxm": "com.atproto.repo.createRecord"},
        {"cnf": {"jkt": "x"}},
        {"sub": "not-a-did"},
        {"scope": "com.atproto.unknown"},
        {"scope": 7},
    ],
    ids=["lxm", "cnf", "bad-sub", "unknown-scope", "non-string-scope"],
)
def test_malformed_claims_are_invalid(issuer: TokenIssuer, extra: dict[str, object]) -> None:
    now = int(time.time())
    claims = {"scope": "com.atproto.access", "sub": ALICE, "aud": SERVICE_DID, "iat": now}
    token = _hs256({**claims, "exp": now + 60, **extra})
    with pytest.raises(TokenInvalid):
        issuer.verify_access(token, ACCESS_STANDARD)


def test_unsigned_and_garbage_tokens_are_invalid(issuer: TokenIssuer) -> None:
    now = int(time.time())
    claims = {"scope": "com.atproto.access", "sub": ALICE, "aud": SERVICE_DID, "exp": now + 60}
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"typ": "at+jwt"})
    for token in (unsigned, "garbage", "a.b.c", ""):
        with pytest.raises(TokenInvalid):
            issuer.verify_access(token, ACCESS_STANDARD)


def test_scope_for_sessions() -> None:
    assert scope_for(None) is AuthScope.ACCESS
    assert scope_for(False) is AuthScope.APP_PASS
    assert scope_for(True) is AuthScope.APP_PASS_PRIVILEGED
    assert scope_for(None, taken_down=True) is AuthScope.TAKENDOWN


# -- service JWTs -----------------------------------------------------------------------------
def _lookup(*keys: PublicKey | None) -> KeyLookup:
    """A key lookup answering `keys[0]` normally and `keys[-1]` on a forced refresh."""

    async def lookup(iss: str, force_refresh: bool) -> PublicKey | None:
        return keys[-1] if force_refresh else keys[0]

    return lookup


@pytest.mark.parametrize("keypair_type", [K256Keypair, P256Keypair], ids=["ES256K", "ES256"])
async def test_service_jwt_round_trip(keypair_type: type[Keypair]) -> None:
    keypair = keypair_type.generate()
    token = create_service_jwt(
        keypair=keypair, iss=ALICE, aud=SERVICE_DID, lxm="com.atproto.repo.uploadBlob"
    )
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"typ": "JWT", "alg": keypair.jwt_alg}
    assert looks_like_service_jwt(token)
    claims = await verify_service_jwt(
        token,
        own_did=SERVICE_DID,
        lxm="com.atproto.repo.uploadBlob",
        lookup_key=_lookup(keypair.public_key),
    )
    assert (claims.iss, claims.aud, claims.lxm) == (
        ALICE,
        SERVICE_DID,
        "com.atproto.repo.uploadBlob",
    )
    assert claims.exp - time.time() <= 60


async def _expect_service_error(token: str, name: str, **kwargs: object) -> None:
    options: dict[str, object] = {"own_did": SERVICE_DID, "lxm": "com.atproto.repo.uploadBlob"}
    options.update(kwargs)
    with pytest.raises(ServiceJwtError) as caught:
        await verify_service_jwt(token, **options)  # type: ignore[arg-type]
    assert caught.value.name == name


async def test_service_jwt_rejections() -> None:
    keypair = K256Keypair.generate()
    good_key = _lookup(keypair.public_key)
    lxm = "com.atproto.repo.uploadBlob"

    def make(**overrides: object) -> str:
        params: dict[str, object] = {"keypair": keypair, "iss": ALICE, "aud": SERVICE_DID}
        params["lxm"] = lxm
        params.update(overrides)
        return create_service_jwt(**params)  # type: ignore[arg-type]

    expired = make(exp=int(time.time()) - 1)
    await _expect_service_error(expired, "JwtExpired", lookup_key=good_key)
    await _expect_service_error(make(aud="did:web:x.com"), "BadJwtAudience", lookup_key=good_key)
    await _expect_service_error(make(lxm="a.b.c"), "BadJwtLexiconMethod", lookup_key=good_key)
    await _expect_service_error(make(lxm=None), "BadJwtLexiconMethod", lookup_key=good_key)
    await _expect_service_error(make(iss="nope"), "BadJwtIss", lookup_key=good_key)
    other = _lookup(K256Keypair.generate().public_key)
    await _expect_service_error(make(), "BadJwtSignature", lookup_key=other)
    wrong_curve = _lookup(P256Keypair.generate().public_key)
    await _expect_service_error(make(), "BadJwtSignature", lookup_key=wrong_curve)
    await _expect_service_error("a.b", "BadJwt", lookup_key=good_key)
    await _expect_service_error("!!.??.##", "BadJwt", lookup_key=good_key)


async def test_session_tokens_are_not_service_jwts() -> None:
    access = TokenIssuer(SECRET, SERVICE_DID).create_access_token(ALICE, AuthScope.ACCESS)
    await _expect_service_error(access, "BadJwtType", lxm=None, lookup_key=_lookup(None))
    assert not looks_like_service_jwt(access)


async def test_high_s_signature_is_rejected() -> None:
    keypair = K256Keypair.generate()
    token = create_service_jwt(keypair=keypair, iss=ALICE, aud=SERVICE_DID, lxm=None)
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s_value = int.from_bytes(raw[32:], "big")
    high = raw[:32] + (order - s_value).to_bytes(32, "big")
    malleated = f"{head}.{payload}." + base64.urlsafe_b64encode(high).rstrip(b"=").decode()
    lookup = _lookup(keypair.public_key)
    assert await verify_service_jwt(token, own_did=SERVICE_DID, lxm=None, lookup_key=lookup)
    await _expect_service_error(malleated, "BadJwtSignature", lxm=None, lookup_key=lookup)


async def test_rotated_key_is_retried_with_a_fresh_document() -> None:
    old, new = K256Keypair.generate(), K256Keypair.generate()
    token = create_service_jwt(keypair=new, iss=ALICE, aud=SERVICE_DID, lxm=None)
    lookup = _lookup(old.public_key, new.public_key)
    claims = await verify_service_jwt(token, own_did=SERVICE_DID, lxm=None, lookup_key=lookup)
    assert claims.iss == ALICE


# -- delegable methods ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nsid", "protected", "privileged"),
    [
        ("com.atproto.server.getSession", True, False),
        ("COM.ATPROTO.SERVER.GETSESSION", True, False),
        ("com.atproto.identity.updateHandle", True, False),
        ("com.atproto.server.createAccount", False, True),
        ("chat.bsky.convo.sendMessage", False, True),
        ("chat.bskyx.thing", False, False),
        ("app.bsky.feed.getFeedSkeleton", False, False),
        ("com.atproto.repo.uploadBlob", False, False),
    ],
)
def test_method_delegation_rules(nsid: str, protected: bool, privileged: bool) -> None:
    assert is_protected_method(nsid) is protected
    assert is_privileged_method(nsid) is privileged
