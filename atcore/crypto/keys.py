"""Curve-independent key types: `PublicKey` and `Keypair`.

Each curve (`p256`, `k256`) subclasses both. A `PublicKey` is always held parsed (a point on its
curve) next to its compressed SEC1 bytes, so verifying on the hot path does no parsing; callers
should parse a DID document's key once and keep the object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Final, Literal, Self

from atcore.crypto.base58 import b58encode
from atcore.crypto.ecdsa import CurveOrder, compact_to_der, signature_problem
from atcore.crypto.errors import InvalidKey, InvalidSignature

JwtAlg = Literal["ES256", "ES256K"]

DID_KEY_PREFIX: Final = "did:key:"
MULTIBASE_BASE58BTC: Final = "z"
PRIVATE_KEY_LENGTH: Final = 32


class PublicKey(ABC):
    """A public signing key of one curve; equal when curve and point are equal."""

    __slots__ = ("_compressed",)

    jwt_alg: ClassVar[JwtAlg]
    multicodec_prefix: ClassVar[bytes]  # varint-encoded multicodec code, as in multikeys
    curve_order: ClassVar[CurveOrder]

    def __init__(self, compressed: bytes) -> None:
        self._compressed = compressed

    @classmethod
    def from_sec1(cls, point: bytes) -> Self:
        """Parse a SEC1 point: 33-byte compressed (02/03) or 65-byte uncompressed (04)."""
        compressed_form = len(point) == 33 and point[0] in (2, 3)
        uncompressed_form = len(point) == 65 and point[0] == 4
        if not (compressed_form or uncompressed_form):
            # libsecp256k1 would also take the "hybrid" 06/07 forms; no atproto key uses them.
            raise InvalidKey(f"not a SEC1 compressed or uncompressed point ({len(point)} bytes)")
        return cls._from_sec1(point)

    @classmethod
    @abstractmethod
    def _from_sec1(cls, point: bytes) -> Self:
        """Parse a well-formed SEC1 point, raising `InvalidKey` when it is not on the curve."""

    @abstractmethod
    def _verify_der(self, message: bytes, der_signature: bytes) -> bool:
        """ECDSA-verify a DER signature over SHA-256(message) (the library's own check)."""

    @property
    def compressed_bytes(self) -> bytes:
        """The 33-byte compressed SEC1 point."""
        return self._compressed

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is a strict atproto signature (64-byte, low-S) of `message`."""
        if signature_problem(signature, self.curve_order) is not None:
            return False
        return self._verify_der(message, compact_to_der(signature))

    def check_signature(self, message: bytes, signature: bytes) -> None:
        """Like `verify`, but raise `InvalidSignature` saying why instead of returning False."""
        problem = signature_problem(signature, self.curve_order)
        if problem is not None:
            raise InvalidSignature(problem)
        if not self._verify_der(message, compact_to_der(signature)):
            raise InvalidSignature(f"signature does not match the message for {self.did_key()}")

    def multikey(self) -> str:
        """Multibase base58btc of multicodec prefix + compressed point (`z...`)."""
        return MULTIBASE_BASE58BTC + b58encode(self.multicodec_prefix + self._compressed)

    def did_key(self) -> str:
        return DID_KEY_PREFIX + self.multikey()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.jwt_alg == other.jwt_alg and self._compressed == other._compressed

    def __hash__(self) -> int:
        return hash((self.jwt_alg, self._compressed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.did_key()!r})"


class Keypair(ABC):
    """A private signing key of one curve. Signatures are always 64-byte compact and low-S."""

    __slots__ = ()

    jwt_alg: ClassVar[JwtAlg]
    curve_order: ClassVar[CurveOrder]

    @classmethod
    @abstractmethod
    def generate(cls) -> Self:
        """A fresh key from the operating system's CSPRNG."""

    @classmethod
    def from_private_bytes(cls, secret: bytes) -> Self:
        """Load a 32-byte big-endian private scalar (must be in 1..n-1)."""
        if len(secret) != PRIVATE_KEY_LENGTH:
            raise InvalidKey(f"private key must be {PRIVATE_KEY_LENGTH} bytes, got {len(secret)}")
        if not 0 < int.from_bytes(secret, "big") < cls.curve_order.n:
            raise InvalidKey("private key scalar is out of range for the curve")
        return cls._from_valid_secret(bytes(secret))

    @classmethod
    def from_hex(cls, text: str) -> Self:
        """Load a private key written as 64 hex digits."""
        try:
            secret = bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidKey("private key hex is malformed") from exc
        return cls.from_private_bytes(secret)

    @classmethod
    @abstractmethod
    def _from_valid_secret(cls, secret: bytes) -> Self:
        """Build from a secret already checked to be 32 bytes and in range."""

    @property
    @abstractmethod
    def public_key(self) -> PublicKey:
        """The matching public key."""

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """ECDSA over SHA-256(message): 64-byte compact r||s, always low-S."""

    @abstractmethod
    def export_private_bytes(self) -> bytes:
        """The 32-byte big-endian private scalar. Handle with care."""

    def private_key_hex(self) -> str:
        return self.export_private_bytes().hex()

    def did(self) -> str:
        """The `did:key` of the public key."""
        return self.public_key.did_key()

    def __repr__(self) -> str:
        # Never show the secret, only which public key it belongs to.
        return f"{type(self).__name__}(public={self.did()!r})"
