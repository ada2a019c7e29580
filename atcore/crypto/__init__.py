"""atproto cryptography: P-256 and K-256 signing keys, strict signatures, did:key and multikeys.

Both curves sign SHA-256(message) with ECDSA and produce 64-byte compact r||s signatures that are
always low-S; verification accepts nothing else (no DER, no high-S). K-256 runs on `coincurve`
(libsecp256k1), P-256 on `cryptography` (OpenSSL). Layout:

- `keys`: the `PublicKey` / `Keypair` base classes (verify, multikey, did:key).
- `p256`, `k256`: the two curves.
- `ecdsa`: the compact/low-S signature form and DER conversion.
- `did_key`: parsing multikeys, `did:key` and DID-document verification methods.
- `base58`: base58btc for multibase `z` strings.

Errors (all `ValueError`s)::

    CryptoError
    ├── UnsupportedKeyType   a curve, multicodec or verification-method type atproto does not use
    ├── InvalidKey           malformed key bytes/strings, points off the curve, scalars out of range
    └── InvalidSignature     from `PublicKey.check_signature`: malformed, high-S, or not matching

`PublicKey.verify` and `verify_signature` return False for any bad signature instead of raising.
"""

from atcore.crypto.did_key import (
    MULTIKEY_METHOD_TYPE,
    parse_did_key,
    parse_multikey,
    public_key_from_did_doc_method,
    verify_signature,
)
from atcore.crypto.ecdsa import SIGNATURE_LENGTH
from atcore.crypto.errors import CryptoError, InvalidKey, InvalidSignature, UnsupportedKeyType
from atcore.crypto.k256 import K256Keypair, K256PublicKey
from atcore.crypto.keys import DID_KEY_PREFIX, JwtAlg, Keypair, PublicKey
from atcore.crypto.p256 import P256Keypair, P256PublicKey

__all__ = [
    "DID_KEY_PREFIX",
    "MULTIKEY_METHOD_TYPE",
    "SIGNATURE_LENGTH",
    "CryptoError",
    "InvalidKey",
    "InvalidSignature",
    "JwtAlg",
    "K256Keypair",
    "K256PublicKey",
    "Keypair",
    "P256Keypair",
    "P256PublicKey",
    "PublicKey",
    "UnsupportedKeyType",
    "parse_did_key",
    "parse_multikey",
    "public_key_from_did_doc_method",
    "verify_signature",
]
