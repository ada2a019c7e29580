"""atcore.crypto: interop fixtures, strict signature rules, key encodings and error cases."""

from __future__ import annotations

import base64
from typing import Any

import coincurve
import pytest
from cryptography.exceptions import InvalidSignature as OpenSslInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given
from hypothesis import strategies as st

from atcore.crypto import (
    CryptoError,
    InvalidKey,
    InvalidSignature,
    K256Keypair,
    K256PublicKey,
    Keypair,
    P256Keypair,
    P256PublicKey,
    PublicKey,
    UnsupportedKeyType,
    parse_did_key,
    parse_multikey,
    public_key_from_did_doc_method,
    verify_signature,
)
from atcore.crypto.base58 import b58decode, b58encode
from atcore.crypto.ecdsa import K256_ORDER, P256_ORDER, compact_to_der, flip_s
from tests.interop import json_cases

KEYPAIR_TYPES: list[type[Keypair]] = [P256Keypair, K256Keypair]
CURVE_IDS = ["p256", "k256"]


def b64decode_unpadded(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def keypair_from_scalar(keypair_type: type[Keypair], scalar: int) -> Keypair:
    return keypair_type.from_private_bytes(scalar.to_bytes(32, "big"))


def scalars(keypair_type: type[Keypair]) -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=keypair_type.curve_order.n - 1)


# -- interop fixtures -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", json_cases("crypto/signature-fixtures.json", "comment"))
def test_signature_fixture(case: dict[str, Any]) -> None:
    message = b64decode_unpadded(case["messageBase64"])
    signature = b64decode_unpadded(case["signatureBase64"])
    key = parse_did_key(case["publicKeyDid"])
    assert key.jwt_alg == case["algorithm"]
    assert key.verify(message, signature) is case["validSignature"]
    assert verify_signature(case["publicKeyDid"], message, signature) is case["validSignature"]
    if case["validSignature"]:
        key.check_signature(message, signature)
    else:
        with pytest.raises(InvalidSignature):
            key.check_signature(message, signature)


@pytest.mark.parametrize("case", json_cases("crypto/signature-fixtures.json", "comment"))
def test_signature_fixture_did_doc_method_names_the_same_key(case: dict[str, Any]) -> None:
    from_doc = public_key_from_did_doc_method(case["didDocSuite"], case["publicKeyMultibase"])
    assert from_doc == parse_did_key(case["publicKeyDid"])
    assert from_doc.did_key() == case["publicKeyDid"]


def high_s_cases() -> list[Any]:
    """The fixture cases tagged high-S (or the single "fixtures missing" skip)."""
    cases = json_cases("crypto/signature-fixtures.json", "comment")
    return [p for p in cases if p.values[0] is None or "high-s" in p.values[0]["tags"]]


@pytest.mark.parametrize("case", high_s_cases())
def test_high_s_fixture_fails_only_because_of_its_s(case: dict[str, Any]) -> None:
    """High-S fixtures become valid once S is flipped back, so the high S is why they fail."""
    key = parse_did_key(case["publicKeyDid"])
    repaired = flip_s(b64decode_unpadded(case["signatureBase64"]), key.curve_order)
    assert key.verify(b64decode_unpadded(case["messageBase64"]), repaired)


@pytest.mark.parametrize("case", json_cases("crypto/w3c_didkey_K256.json", "publicDidKey"))
def test_w3c_did_key_k256(case: dict[str, str]) -> None:
    keypair = K256Keypair.from_hex(case["privateKeyBytesHex"])
    assert keypair.did() == case["publicDidKey"]
    assert keypair.private_key_hex() == case["privateKeyBytesHex"]
    parsed = parse_did_key(case["publicDidKey"])
    assert isinstance(parsed, K256PublicKey)
    assert parsed == keypair.public_key
    assert parsed.did_key() == case["publicDidKey"]


@pytest.mark.parametrize("case", json_cases("crypto/w3c_didkey_P256.json", "publicDidKey"))
def test_w3c_did_key_p256(case: dict[str, str]) -> None:
    secret = b58decode(case["privateKeyBytesBase58"])
    keypair = P256Keypair.from_private_bytes(secret)
    assert keypair.did() == case["publicDidKey"]
    assert keypair.export_private_bytes() == secret
    parsed = parse_did_key(case["publicDidKey"])
    assert isinstance(parsed, P256PublicKey)
    assert parsed == keypair.public_key
    assert parsed.did_key() == case["publicDidKey"]


# -- properties -----------------------------------------------------------------------------------


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
@given(data=st.data(), message=st.binary(max_size=512))
def test_sign_verify_round_trip(
    keypair_type: type[Keypair], data: st.DataObject, message: bytes
) -> None:
    keypair = keypair_from_scalar(keypair_type, data.draw(scalars(keypair_type)))
    signature = keypair.sign(message)
    assert len(signature) == 64
    assert keypair.public_key.verify(message, signature)
    assert not keypair.public_key.verify(message + b"\x00", signature)


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
@given(data=st.data(), message=st.binary(max_size=256))
def test_signatures_are_low_s_and_high_s_twin_is_rejected(
    keypair_type: type[Keypair], data: st.DataObject, message: bytes
) -> None:
    keypair = keypair_from_scalar(keypair_type, data.draw(scalars(keypair_type)))
    order = keypair_type.curve_order
    signature = keypair.sign(message)
    assert int.from_bytes(signature[32:], "big") <= order.n // 2
    high_s = flip_s(signature, order)
    assert int.from_bytes(high_s[32:], "big") > order.n // 2
    assert not keypair.public_key.verify(message, high_s)
    with pytest.raises(InvalidSignature, match="high-S"):
        keypair.public_key.check_signature(message, high_s)


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
@given(data=st.data())
def test_did_key_and_multikey_round_trip(keypair_type: type[Keypair], data: st.DataObject) -> None:
    public = keypair_from_scalar(keypair_type, data.draw(scalars(keypair_type))).public_key
    assert public.did_key() == "did:key:" + public.multikey()
    assert parse_did_key(public.did_key()) == public
    assert parse_multikey(public.multikey()) == public
    assert public_key_from_did_doc_method("Multikey", public.multikey()) == public
    assert type(parse_multikey(public.multikey())) is type(public)


@given(data=st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(r=st.integers(1, K256_ORDER.n - 1), s=st.integers(1, K256_ORDER.n - 1))
def test_compact_to_der_matches_cryptography(r: int, s: int) -> None:
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert compact_to_der(compact) == encode_dss_signature(r, s)


# -- behaviour against independent implementations -----------------------------------------------


def test_k256_signature_verifies_with_openssl() -> None:
    keypair = K256Keypair.generate()
    signature = keypair.sign(b"checkin")
    openssl_key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256K1(), keypair.public_key.compressed_bytes
    )
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    openssl_key.verify(encode_dss_signature(r, s), b"checkin", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(OpenSslInvalidSignature):
        openssl_key.verify(encode_dss_signature(r, s), b"checkout", ec.ECDSA(hashes.SHA256()))


def test_openssl_p256_signature_verifies_once_low_s() -> None:
    """OpenSSL's P-256 signatures are random-nonce DER; their low-S compact form must verify."""
    private = ec.generate_private_key(ec.SECP256R1())
    keypair = P256Keypair(private)
    for _ in range(8):
        der = private.sign(b"checkin", ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        low = min(s, P256_ORDER.n - s)
        compact = r.to_bytes(32, "big") + low.to_bytes(32, "big")
        assert keypair.public_key.verify(b"checkin", compact)


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_signing_is_deterministic(keypair_type: type[Keypair]) -> None:
    keypair = keypair_type.generate()
    assert keypair.sign(b"same") == keypair.sign(b"same")
    assert keypair.sign(b"same") != keypair.sign(b"other")


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_wrong_key_and_wrong_curve_fail(keypair_type: type[Keypair]) -> None:
    signer, other = keypair_type.generate(), keypair_type.generate()
    signature = signer.sign(b"msg")
    assert not other.public_key.verify(b"msg", signature)
    with pytest.raises(InvalidSignature, match="does not match"):
        other.public_key.check_signature(b"msg", signature)
    other_curve = K256Keypair if keypair_type is P256Keypair else P256Keypair
    assert not other_curve.from_private_bytes(signer.export_private_bytes()).public_key.verify(
        b"msg", signature
    )


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_der_and_out_of_range_signatures_are_rejected(keypair_type: type[Keypair]) -> None:
    keypair = keypair_type.generate()
    good = keypair.sign(b"msg")
    n_bytes = keypair_type.curve_order.n.to_bytes(32, "big")
    malformed = {
        "der": compact_to_der(good),
        "short": good[:63],
        "long": good + b"\x00",
        "r zero": bytes(32) + good[32:],
        "s zero": good[:32] + bytes(32),
        "r equals n": n_bytes + good[32:],
    }
    for name, signature in malformed.items():
        assert not keypair.public_key.verify(b"msg", signature), name
        with pytest.raises(InvalidSignature):
            keypair.public_key.check_signature(b"msg", signature)


# -- key parsing and errors -----------------------------------------------------------------------


def uncompressed_point(public: PublicKey) -> bytes:
    """The uncompressed SEC1 point, computed by a library rather than by atcore."""
    if isinstance(public, K256PublicKey):
        return coincurve.PublicKey(public.compressed_bytes).format(compressed=False)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public.compressed_bytes)
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@pytest.mark.parametrize(
    ("keypair_type", "method_type"),
    [
        (P256Keypair, "EcdsaSecp256r1VerificationKey2019"),
        (K256Keypair, "EcdsaSecp256k1VerificationKey2019"),
    ],
    ids=CURVE_IDS,
)
def test_legacy_did_doc_methods_accept_uncompressed_and_compressed(
    keypair_type: type[Keypair], method_type: str
) -> None:
    public = keypair_type.generate().public_key
    for point in (uncompressed_point(public), public.compressed_bytes):
        parsed = public_key_from_did_doc_method(method_type, "z" + b58encode(point))
        assert parsed == public


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_multikey_requires_compressed_point(keypair_type: type[Keypair]) -> None:
    public = keypair_type.generate().public_key
    prefix = type(public).multicodec_prefix
    with pytest.raises(InvalidKey, match="compressed"):
        parse_multikey("z" + b58encode(prefix + uncompressed_point(public)))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("did:web:example.com", InvalidKey),
        ("did:key:", InvalidKey),
        ("did:key:QmNotMultibase", InvalidKey),
        ("did:key:zDnae0OIl", InvalidKey),  # 0, O, I, l are outside base58btc
        ("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", UnsupportedKeyType),  # ed25519
        ("did:key:z" + b58encode(b"\xe7\x01\x02" + b"\xff" * 32), InvalidKey),  # x >= p
        ("did:key:z" + b58encode(b"\x80\x24\x02" + b"\xff" * 32), InvalidKey),  # x >= p
        ("did:key:z" + b58encode(b"\xe7\x01\x05" + b"\x01" * 32), InvalidKey),  # bad SEC1 tag
    ],
)
def test_parse_did_key_rejects(text: str, error: type[CryptoError]) -> None:
    with pytest.raises(error):
        parse_did_key(text)


def test_hybrid_sec1_points_are_rejected() -> None:
    public = K256Keypair.generate().public_key
    hybrid = bytes([6 + (public.compressed_bytes[0] & 1)]) + uncompressed_point(public)[1:]
    with pytest.raises(InvalidKey):
        K256PublicKey.from_sec1(hybrid)


def test_unknown_did_doc_method_type() -> None:
    public = P256Keypair.generate().public_key
    with pytest.raises(UnsupportedKeyType):
        public_key_from_did_doc_method("Ed25519VerificationKey2020", public.multikey())


def test_verify_signature_raises_on_bad_did_key_but_not_on_bad_signature() -> None:
    keypair = K256Keypair.generate()
    assert verify_signature(keypair.did(), b"m", keypair.sign(b"m"))
    assert not verify_signature(keypair.did(), b"m", b"\x01" * 64)
    with pytest.raises(InvalidKey):
        verify_signature("did:plc:abc", b"m", keypair.sign(b"m"))


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
@pytest.mark.parametrize(
    "secret",
    [b"", b"\x01" * 31, b"\x01" * 33, bytes(32), b"\xff" * 32],
    ids=["empty", "short", "long", "zero", "above-order"],
)
def test_invalid_private_keys(keypair_type: type[Keypair], secret: bytes) -> None:
    with pytest.raises(InvalidKey):
        keypair_type.from_private_bytes(secret)


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_private_key_order_boundary(keypair_type: type[Keypair]) -> None:
    n = keypair_type.curve_order.n
    keypair_from_scalar(keypair_type, n - 1)
    with pytest.raises(InvalidKey):
        keypair_from_scalar(keypair_type, n)


def test_from_hex_rejects_garbage() -> None:
    with pytest.raises(InvalidKey):
        K256Keypair.from_hex("not hex")


def test_keypair_wrappers_reject_other_curves() -> None:
    with pytest.raises(InvalidKey):
        P256Keypair(ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_keypair_round_trip_and_repr_hides_secret(keypair_type: type[Keypair]) -> None:
    keypair = keypair_type.generate()
    again = keypair_type.from_hex(keypair.private_key_hex())
    assert again.public_key == keypair.public_key
    assert hash(again.public_key) == hash(keypair.public_key)
    assert again.jwt_alg == keypair.public_key.jwt_alg
    assert keypair.private_key_hex() not in repr(keypair)
    assert keypair.did() in repr(keypair)


def test_base58_rejects_characters_outside_alphabet() -> None:
    with pytest.raises(CryptoError):
        b58decode("abc0")


def test_base58_leading_zeros() -> None:
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58decode("112") == b"\x00\x00\x01"
