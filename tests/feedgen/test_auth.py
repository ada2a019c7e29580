"""Service JWT verification against real DID documents served by our local PLC directory.

Valid tokens are minted exactly as the PDS mints them (`pds.auth.service_jwt.create_service_jwt`,
what `com.atproto.server.getServiceAuth` returns); invalid ones are built by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from atcore import nsids
from atcore.crypto import K256Keypair, Keypair, P256Keypair
from atcore.identity import DidResolver
from atcore.identity.plc import create_genesis_op, create_update_op, did_for_genesis, op_to_json
from feedgen.auth import AuthError, AuthUnavailable, ServiceAuthVerifier
from pds.auth.service_jwt import create_service_jwt
from pds.plc.app import create_app as create_plc_app
from pds.plc.settings import PlcSettings

SERVICE_DID = "did:web:feed.example.com"
LXM = nsids.BSKY_FEED_GET_FEED_SKELETON


@dataclass
class Account:
    did: str
    key: Keypair
    rotation: Keypair
    genesis: Any


@dataclass
class Env:
    plc_url: str
    requests: list[str]
    verifier: ServiceAuthVerifier
    k256: Account
    p256: Account


async def register(plc_url: str, signing: Keypair) -> Account:
    rotation = K256Keypair.generate()
    genesis = create_genesis_op(
        signer=rotation,
        rotation_keys=[rotation.did()],
        signing_key=signing.did(),
        handle="viewer.test",
        pds_endpoint="http://127.0.0.1:2583",
    )
    did = did_for_genesis(genesis)
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{plc_url}/{did}", json=op_to_json(genesis))
        assert response.status == 200, await response.text()
    return Account(did, signing, rotation, genesis)


@pytest.fixture
async def env(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    server: TestServer = await aiohttp_server(create_plc_app(PlcSettings(data_directory=tmp_path)))
    plc_url = str(server.make_url("")).rstrip("/")
    requests: list[str] = []

    async def on_request_start(_s: aiohttp.ClientSession, _c: SimpleNamespace, params: Any) -> None:
        requests.append(str(params.url))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        resolver = DidResolver(session=session, plc_url=plc_url)
        verifier = ServiceAuthVerifier(service_did=SERVICE_DID, keys=resolver)
        yield Env(
            plc_url,
            requests,
            verifier,
            await register(plc_url, K256Keypair.generate()),
            await register(plc_url, P256Keypair.generate()),
        )


def mint(account: Account, *, aud: str = SERVICE_DID, lxm: str | None = LXM, **kw: Any) -> str:
    return create_service_jwt(keypair=account.key, iss=account.did, aud=aud, lxm=lxm, **kw)


def segment(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(key: Keypair, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = base64.urlsafe_b64encode(key.sign(signing_input.encode())).rstrip(b"=").decode()
    return f"{signing_input}.{signature}"


def claims_for(account: Account, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iat": now, "iss": account.did, "aud": SERVICE_DID, "exp": now + 60, "lxm": LXM}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def rejected(env: Env, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await env.verifier.viewer(f"Bearer {token}")
    return caught.value


async def test_valid_es256k_token_from_the_pds_is_accepted(env: Env) -> None:
    assert await env.verifier.viewer(f"Bearer {mint(env.k256)}") == env.k256.did


async def test_valid_es256_token_from_the_pds_is_accepted(env: Env) -> None:
    assert await env.verifier.viewer(f"Bearer {mint(env.p256)}") == env.p256.did


async def test_audience_with_the_service_fragment_is_accepted(env: Env) -> None:
    token = mint(env.k256, aud=SERVICE_DID + "#bsky_fg")
    assert await env.verifier.viewer(f"Bearer {token}") == env.k256.did


async def test_no_authorization_header_is_an_anonymous_viewer(env: Env) -> None:
    assert await env.verifier.viewer(None) is None


async def test_other_schemes_are_rejected(env: Env) -> None:
    for header in (f"Basic {mint(env.k256)}", "Bearer", "Bearer   "):
        with pytest.raises(AuthError):
            await env.verifier.viewer(header)


async def test_expired_token_is_rejected(env: Env) -> None:
    now = int(time.time())
    error = await rejected(env, mint(env.k256, now=now - 600, exp=now - 60))
    assert error.name == "JwtExpired"


async def test_token_without_exp_is_rejected(env: Env) -> None:
    error = await rejected(
        env, signed(env.k256.key, {"typ": "JWT", "alg": "ES256K"}, claims_for(env.k256, exp=None))
    )
    assert "exp" in str(error)


async def test_token_issued_in_the_future_is_rejected(env: Env) -> None:
    now = int(time.time())
    error = await rejected(env, mint(env.k256, now=now + 600, exp=now + 660))
    assert error.name == "BadJwt"
    assert "future" in str(error)


async def test_not_before_in_the_future_is_rejected(env: Env) -> None:
    claims = claims_for(env.k256, nbf=int(time.time()) + 600)
    error = await rejected(env, signed(env.k256.key, {"typ": "JWT", "alg": "ES256K"}, claims))
    assert "not valid yet" in str(error)


@pytest.mark.parametrize(
    "aud",
    [
        "did:web:other.example.com",
        "did:web:feed.example.com#atproto_pds",
        "did:web:feed.example.com#",
    ],
)
async def test_wrong_audience_is_rejected(env: Env, aud: str) -> None:
    assert (await rejected(env, mint(env.k256, aud=aud))).name == "BadJwtAudience"


@pytest.mark.parametrize("lxm", ["app.bsky.feed.getFeed", "com.atproto.repo.createRecord", None])
async def test_wrong_or_missing_lexicon_method_is_rejected(env: Env, lxm: str | None) -> None:
    assert (await rejected(env, mint(env.k256, lxm=lxm))).name == "BadJwtLexiconMethod"


def high_s_twin(token: str, key: Keypair) -> str:
    """The same token with s replaced by n - s: an equally valid ECDSA signature, but high-S."""
    head, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    high = key.curve_order.n - s
    twin = r.to_bytes(32, "big") + high.to_bytes(32, "big")
    return f"{head}.{base64.urlsafe_b64encode(twin).rstrip(b'=').decode()}"


async def test_high_s_signature_is_rejected_although_ecdsa_accepts_it(env: Env) -> None:
    token = high_s_twin(mint(env.p256), env.p256.key)
    head, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), env.p256.key.public_key.compressed_bytes
    )
    public.verify(der, head.encode(), ec.ECDSA(hashes.SHA256()))  # plain ECDSA: valid
    assert (await rejected(env, token)).name == "BadJwtSignature"


async def test_high_s_es256k_signature_is_rejected(env: Env) -> None:
    assert (
        await rejected(env, high_s_twin(mint(env.k256), env.k256.key))
    ).name == "BadJwtSignature"


async def test_token_signed_by_another_key_is_rejected(env: Env) -> None:
    impostor = Account(env.k256.did, K256Keypair.generate(), env.k256.rotation, env.k256.genesis)
    assert (await rejected(env, mint(impostor))).name == "BadJwtSignature"


async def test_alg_none_is_rejected(env: Env) -> None:
    unsigned = f"{segment({'typ': 'JWT', 'alg': 'none'})}.{segment(claims_for(env.k256))}."
    assert (await rejected(env, unsigned)).name == "BadJwt"
    with_signature = signed(env.k256.key, {"typ": "JWT", "alg": "none"}, claims_for(env.k256))
    assert (await rejected(env, with_signature)).name == "BadJwt"


@pytest.mark.parametrize("secret_form", ["compressed", "did_key", "multikey"])
async def test_hs256_keyed_with_the_public_key_is_rejected(env: Env, secret_form: str) -> None:
    public = env.k256.key.public_key
    secret = {
        "compressed": public.compressed_bytes,
        "did_key": public.did_key().encode(),
        "multikey": public.multikey().encode(),
    }[secret_form]
    signing_input = f"{segment({'typ': 'JWT', 'alg': 'HS256'})}.{segment(claims_for(env.k256))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    error = await rejected(env, token)
    assert error.name == "BadJwt"
    assert "alg" in str(error)


async def test_alg_that_does_not_match_the_key_curve_is_rejected(env: Env) -> None:
    token = signed(env.k256.key, {"typ": "JWT", "alg": "ES256"}, claims_for(env.k256))
    assert (await rejected(env, token)).name == "BadJwtSignature"


@pytest.mark.parametrize("typ", ["at+jwt", "refresh+jwt", "dpop+jwt", 7])
async def test_session_token_types_are_rejected(env: Env, typ: object) -> None:
    token = signed(env.k256.key, {"typ": typ, "alg": "ES256K"}, claims_for(env.k256))
    assert (await rejected(env, token)).name == "BadJwtType"


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.", "bm90IGpzb24.e30.c2ln", "W10.e30.c2ln"],
)
async def test_malformed_tokens_are_rejected(env: Env, token: str) -> None:
    assert (await rejected(env, token or "x")).name == "BadJwt"


async def test_issuer_must_be_a_plain_resolvable_did(env: Env) -> None:
    claims = claims_for(env.k256, iss=env.k256.did + "#atproto_labeler")
    token = signed(env.k256.key, {"typ": "JWT", "alg": "ES256K"}, claims)
    assert (await rejected(env, token)).name == "BadJwtIss"
    unknown = claims_for(env.k256, iss="did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
    token = signed(env.k256.key, {"typ": "JWT", "alg": "ES256K"}, unknown)
    assert (await rejected(env, token)).name == "BadJwtIss"


async def test_rotated_key_is_picked_up_by_one_forced_refresh(env: Env) -> None:
    account = env.k256
    assert await env.verifier.viewer(f"Bearer {mint(account)}") == account.did  # now cached
    new_key = K256Keypair.generate()
    update = create_update_op(account.genesis, signer=account.rotation, signing_key=new_key.did())
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{env.plc_url}/{account.did}", json=op_to_json(update))
        assert response.status == 200
    rotated = Account(account.did, new_key, account.rotation, update)
    before = len(env.requests)
    assert await env.verifier.viewer(f"Bearer {mint(rotated)}") == account.did
    assert len(env.requests) == before + 1  # exactly one forced refresh
    # A forged token right after must not force another fetch (refreshes are rate-limited).
    forged = Account(account.did, K256Keypair.generate(), account.rotation, update)
    assert (await rejected(env, mint(forged))).name == "BadJwtSignature"
    assert len(env.requests) == before + 1


async def test_unreachable_directory_is_unavailable_not_invalid(env: Env) -> None:
    async with aiohttp.ClientSession() as session:
        resolver = DidResolver(session=session, plc_url="http://127.0.0.1:9", timeout=2)
        verifier = ServiceAuthVerifier(service_did=SERVICE_DID, keys=resolver)
        with pytest.raises(AuthUnavailable):
            await verifier.viewer(f"Bearer {mint(env.k256)}")
