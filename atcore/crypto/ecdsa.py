"""The strict atproto ECDSA signature form, shared by both curves.

atproto signatures are the 64-byte "compact" concatenation r||s (each a 32-byte big-endian scalar)
and must be "low-S" (s <= n/2, BIP-0062) so that a signature cannot be re-shaped into a second valid
one. The crypto libraries speak DER and accept high-S, so this module holds the conversions and the
checks: range and low-S tests are done on the fixed-width bytes (equal-length bytes compare like the
numbers they hold), which avoids integer conversions on the verify path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SIGNATURE_LENGTH: Final = 64
_SCALAR_LENGTH: Final = 32
_ZERO_SCALAR: Final = bytes(_SCALAR_LENGTH)


@dataclass(frozen=True, slots=True)
class CurveOrder:
    """The group order n of a curve, with n // 2 and the byte forms the checks compare against."""

    n: int
    half_n: int
    n_bytes: bytes
    half_n_bytes: bytes

    @classmethod
    def of(cls, n: int) -> CurveOrder:
        half_n = n // 2
        width = _SCALAR_LENGTH
        return cls(n, half_n, n.to_bytes(width, "big"), half_n.to_bytes(width, "big"))


P256_ORDER: Final = CurveOrder.of(
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
)
K256_ORDER: Final = CurveOrder.of(
    0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
)


def signature_problem(signature: bytes, order: CurveOrder) -> str | None:
    """Why `signature` is not a strict atproto signature on a curve of `order`; None if it is."""
    if len(signature) != SIGNATURE_LENGTH:
        return f"signature must be 64-byte compact r||s, got {len(signature)} bytes"
    r, s = signature[:_SCALAR_LENGTH], signature[_SCALAR_LENGTH:]
    if r == _ZERO_SCALAR or r >= order.n_bytes:
        return "signature r is out of range"
    if s == _ZERO_SCALAR:
        return "signature s is zero"
    if s > order.half_n_bytes:
        return "high-S signature (atproto requires low-S)"
    return None


def compact_to_der(signature: bytes) -> bytes:
    """DER `SEQUENCE { INTEGER r, INTEGER s }` for a 64-byte compact signature with r, s != 0."""
    body = _der_integer(signature[:_SCALAR_LENGTH]) + _der_integer(signature[_SCALAR_LENGTH:])
    # At most 2 * (2 + 33) = 70 bytes, so the short (one-byte) length form always applies.
    return b"\x30" + bytes((len(body),)) + body


def _der_integer(magnitude: bytes) -> bytes:
    digits = magnitude.lstrip(b"\x00")
    if digits[0] & 0x80:
        digits = b"\x00" + digits  # DER integers are signed: keep the value positive
    return b"\x02" + bytes((len(digits),)) + digits


def low_s_compact(r: int, s: int, order: CurveOrder) -> bytes:
    """The compact low-S encoding of the signature (r, s): s is replaced by n - s when high."""
    if s > order.half_n:
        s = order.n - s
    return r.to_bytes(_SCALAR_LENGTH, "big") + s.to_bytes(_SCALAR_LENGTH, "big")


def ensure_low_s(signature: bytes, order: CurveOrder) -> bytes:
    """`signature` (64-byte compact) with its S normalised to the low half; usually unchanged."""
    if signature[_SCALAR_LENGTH:] <= order.half_n_bytes:
        return signature
    r = int.from_bytes(signature[:_SCALAR_LENGTH], "big")
    s = int.from_bytes(signature[_SCALAR_LENGTH:], "big")
    return low_s_compact(r, s, order)


def flip_s(signature: bytes, order: CurveOrder) -> bytes:
    """The other of the two valid encodings (r, s) / (r, n - s): turns low-S into high-S.

    Only useful to test that verifiers reject the malleated form.
    """
    s = int.from_bytes(signature[_SCALAR_LENGTH:], "big")
    return signature[:_SCALAR_LENGTH] + (order.n - s).to_bytes(_SCALAR_LENGTH, "big")
