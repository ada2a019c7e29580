"""secp256k1 (K-256, JWT `ES256K`) keys on `coincurve` (Bitcoin Core's libsecp256k1).

libsecp256k1 was picked over `cryptography` by measurement (scripts/bench/_crypto.py): it signs
and verifies over ten times faster, because OpenSSL treats secp256k1 as a generic curve.
It signs with RFC 6979 nonces and always emits low-S; its verifier rejects high-S as well, and our
own strict check (`ecdsa.signature_problem`) runs first anyway.

The 64-byte compact signature is taken from the recoverable form (r||s plus a recovery id byte),
which avoids a DER round trip when signing.
"""

from __future__ import annotations

from typing import ClassVar, Self

import coincurve

from atcore.crypto.ecdsa import K256_ORDER, SIGNATURE_LENGTH, CurveOrder, ensure_low_s
from atcore.crypto.errors import InvalidKey
from atcore.crypto.keys import JwtAlg, Keypair, PublicKey


class K256PublicKey(PublicKey):
    __slots__ = ("_key",)

    jwt_alg: ClassVar[JwtAlg] = "ES256K"
    multicodec_prefix: ClassVar[bytes] = b"\xe7\x01"  # secp256k1-pub, code 0xe7
    curve_order: ClassVar[CurveOrder] = K256_ORDER

    def __init__(self, key: coincurve.PublicKey) -> None:
        super().__init__(key.format(compressed=True))
        self._key = key

    @classmethod
    def _from_sec1(cls, point: bytes) -> Self:
        try:
            key = coincurve.PublicKey(point)
        except ValueError as exc:
            raise InvalidKey("not a point on secp256k1") from exc
        return cls(key)

    def _verify_der(self, message: bytes, der_signature: bytes) -> bool:
        # coincurve hashes the message with SHA-256 itself.
        return self._key.verify(der_signature, message)


class K256Keypair(Keypair):
    __slots__ = ("_key", "_public")

    jwt_alg: ClassVar[JwtAlg] = "ES256K"
    curve_order: ClassVar[CurveOrder] = K256_ORDER

    def __init__(self, key: coincurve.PrivateKey) -> None:
        self._key = key
        self._public = K256PublicKey(key.public_key)

    @classmethod
    def generate(cls) -> Self:
        return cls(coincurve.PrivateKey())

    @classmethod
    def _from_valid_secret(cls, secret: bytes) -> Self:
        return cls(coincurve.PrivateKey(secret))

    @property
    def public_key(self) -> K256PublicKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        compact = self._key.sign_recoverable(message)[:SIGNATURE_LENGTH]
        # libsecp256k1 already emits low-S; normalising costs one bytes comparison and keeps the
        # atproto rule independent of the library's behaviour.
        return ensure_low_s(compact, K256_ORDER)

    def export_private_bytes(self) -> bytes:
        return bytes(self._key.secret)
