"""Public keys as strings: multikeys, `did:key`, and DID-document verification methods.

A multikey is `z` + base58btc(varint multicodec code + 33-byte compressed point). A `did:key` is
`did:key:` + multikey. DID documents carry keys either as `Multikey` methods (the same string) or,
in older documents, as the deprecated `EcdsaSecp256r1VerificationKey2019` /
`EcdsaSecp256k1VerificationKey2019` types whose `publicKeyMultibase` has no multicodec prefix; the
spec describes those as uncompressed, but deployed documents (and the interop fixtures) also use
the compressed form, so both are accepted there. Multikeys themselves must be compressed.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from atcore.crypto.base58 import b58decode
from atcore.crypto.errors import CryptoError, InvalidKey, UnsupportedKeyType
from atcore.crypto.k256 import K256PublicKey
from atcore.crypto.keys import DID_KEY_PREFIX, MULTIBASE_BASE58BTC, PublicKey
from atcore.crypto.p256 import P256PublicKey

MULTIKEY_METHOD_TYPE: Final = "Multikey"
_COMPRESSED_POINT_LENGTH: Final = 33
_KEY_TYPES: Final[tuple[type[PublicKey], ...]] = (P256PublicKey, K256PublicKey)
_LEGACY_METHOD_TYPES: Final = MappingProxyType[str, type[PublicKey]](
    {
        "EcdsaSecp256r1VerificationKey2019": P256PublicKey,
        "EcdsaSecp256k1VerificationKey2019": K256PublicKey,
    }
)


def _decode_multibase(text: str) -> bytes:
    if not text.startswith(MULTIBASE_BASE58BTC):
        raise InvalidKey(f"key must be base58btc multibase ('z' prefix): {text[:60]!r}")
    try:
        return b58decode(text[1:])
    except CryptoError as exc:
        raise InvalidKey(f"malformed base58btc key: {exc}") from exc


def parse_multikey(multibase: str) -> PublicKey:
    """Parse a `z...` multikey (multicodec-prefixed compressed point) of either curve."""
    raw = _decode_multibase(multibase)
    for key_type in _KEY_TYPES:
        prefix = key_type.multicodec_prefix
        if raw.startswith(prefix):
            point = raw[len(prefix) :]
            if len(point) != _COMPRESSED_POINT_LENGTH:
                raise InvalidKey(f"{key_type.jwt_alg} multikey must hold a compressed point")
            return key_type.from_sec1(point)
    raise UnsupportedKeyType(f"unsupported multikey type (prefix {raw[:2].hex()})")


def parse_did_key(did: str) -> PublicKey:
    """Parse `did:key:z...` into the public key it names."""
    if not did.startswith(DID_KEY_PREFIX):
        raise InvalidKey(f"not a did:key: {did[:60]!r}")
    return parse_multikey(did[len(DID_KEY_PREFIX) :])


def public_key_from_did_doc_method(method_type: str, public_key_multibase: str) -> PublicKey:
    """The key of a DID-document verification method, given its `type` and `publicKeyMultibase`."""
    if method_type == MULTIKEY_METHOD_TYPE:
        return parse_multikey(public_key_multibase)
    key_type = _LEGACY_METHOD_TYPES.get(method_type)
    if key_type is None:
        raise UnsupportedKeyType(f"unsupported verification method type {method_type!r}")
    return key_type.from_sec1(_decode_multibase(public_key_multibase))


def verify_signature(did_key: str, message: bytes, signature: bytes) -> bool:
    """Verify a strict atproto signature against a `did:key`.

    A malformed or unsupported `did_key` raises (`InvalidKey` / `UnsupportedKeyType`): that is the
    caller's input error, not a bad signature. Parse keys once with `parse_did_key` when verifying
    many signatures.
    """
    return parse_did_key(did_key).verify(message, signature)
