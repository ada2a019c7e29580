"""NIST P-256 (secp256r1, JWT `ES256`) keys on `cryptography` (OpenSSL).

Signing uses RFC 6979 deterministic nonces (no dependence on the RNG at signing time, and equal
inputs give equal signatures). OpenSSL emits DER and may emit high-S; `sign` converts to the
compact low-S form atproto requires.
"""

from __future__ import annotations

from typing import ClassVar, Final, Self

from cryptography.exceptions import InvalidSignature as _OpenSslBadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from atcore.crypto.ecdsa import P256_ORDER, CurveOrder, low_s_compact
from atcore.crypto.errors import InvalidKey
from atcore.crypto.keys import JwtAlg, Keypair, PublicKey

_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def _compressed_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


class P256PublicKey(PublicKey):
    __slots__ = ("_key",)

    jwt_alg: ClassVar[JwtAlg] = "ES256"
    multicodec_prefix: ClassVar[bytes] = b"\x80\x24"  # p256-pub, code 0x1200
    curve_order: ClassVar[CurveOrder] = P256_ORDER

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise InvalidKey(f"expected a P-256 public key, got curve {key.curve.name}")
        super().__init__(_compressed_point(key))
        self._key = key

    @classmethod
    def _from_sec1(cls, point: bytes) -> Self:
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError as exc:
            raise InvalidKey("not a point on P-256") from exc
        return cls(key)

    def _verify_der(self, message: bytes, der_signature: bytes) -> bool:
        try:
            self._key.verify(der_signature, message, _ECDSA_SHA256)
        except _OpenSslBadSignature:
            return False
        return True


class P256Keypair(Keypair):
    __slots__ = ("_key", "_public")

    jwt_alg: ClassVar[JwtAlg] = "ES256"
    curve_order: ClassVar[CurveOrder] = P256_ORDER

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise InvalidKey(f"expected a P-256 private key, got curve {key.curve.name}")
        self._key = key
        self._public = P256PublicKey(key.public_key())

    @classmethod
    def generate(cls) -> Self:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def _from_valid_secret(cls, secret: bytes) -> Self:
        return cls(ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1()))

    @property
    def public_key(self) -> P256PublicKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(message, _ECDSA_SHA256))
        return low_s_compact(r, s, P256_ORDER)

    def export_private_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")
