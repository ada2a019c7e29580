"""Checks on operations submitted to the directory, before the chain rules run.

These are the directory's anti-abuse limits, as plc.directory applies them: bounded sizes and
counts, rotation keys that parse as k256/p256 `did:key`s, verification-method keys that are at
least syntactically `did:key:z<base58btc>` (any key type), and no new legacy `create` ops.
The DAG-CBOR size cap is the spec's 7500 bytes. Like plc.directory (and unlike the spec's
prose), an empty or duplicated rotation-key list is not rejected: the interop logs contain both
as valid histories.

Errors: `InvalidPlcOperation`.
"""

from __future__ import annotations

from typing import Any, Final

from atcore import dagcbor
from atcore.crypto import CryptoError, parse_did_key
from atcore.crypto.base58 import b58decode
from atcore.identity.errors import InvalidPlcOperation
from atcore.identity.plc import LegacyCreateOp, PlcOp, PlcOperation
from atcore.identity.plc_parse import parse_operation

MAX_OP_BYTES: Final = 7500
MAX_AKA_ENTRIES: Final = 10
MAX_AKA_LENGTH: Final = 258  # a 253-character handle plus "at://"
MAX_ROTATION_KEYS: Final = 10
MAX_SERVICES: Final = 10
MAX_SERVICE_TYPE_LENGTH: Final = 256
MAX_SERVICE_ENDPOINT_LENGTH: Final = 512
MAX_VERIFICATION_METHODS: Final = 10
MAX_ID_LENGTH: Final = 32
MAX_DID_KEY_LENGTH: Final = 256


def parse_incoming_op(body: Any) -> PlcOp:
    """Parse and check a submitted operation (decoded JSON)."""
    try:
        size = len(dagcbor.encode(body))
    except dagcbor.DagCborError as exc:
        raise InvalidPlcOperation(f"not a valid operation: {exc}") from exc
    if size > MAX_OP_BYTES:
        raise InvalidPlcOperation(f"operation too large ({MAX_OP_BYTES} bytes maximum in CBOR)")
    op = parse_operation(body)
    if isinstance(op, LegacyCreateOp):
        raise InvalidPlcOperation("legacy `create` operations are no longer accepted")
    if isinstance(op, PlcOperation):
        _check_aliases(op)
        _check_rotation_keys(op)
        _check_services(op)
        _check_verification_methods(op)
    return op


def _check_aliases(op: PlcOperation) -> None:
    if len(op.also_known_as) > MAX_AKA_ENTRIES:
        raise InvalidPlcOperation(f"too many alsoKnownAs entries (max {MAX_AKA_ENTRIES})")
    if len(set(op.also_known_as)) != len(op.also_known_as):
        raise InvalidPlcOperation("duplicate alsoKnownAs entry")
    for alias in op.also_known_as:
        if len(alias) > MAX_AKA_LENGTH:
            raise InvalidPlcOperation(f"alsoKnownAs entry too long (max {MAX_AKA_LENGTH})")


def _check_rotation_keys(op: PlcOperation) -> None:
    if len(op.rotation_keys) > MAX_ROTATION_KEYS:
        raise InvalidPlcOperation(f"too many rotationKeys (max {MAX_ROTATION_KEYS})")
    for key in op.rotation_keys:
        try:
            parse_did_key(key)
        except CryptoError as exc:
            raise InvalidPlcOperation(f"invalid rotation key {key[:80]!r}: {exc}") from exc


def _check_services(op: PlcOperation) -> None:
    if len(op.services) > MAX_SERVICES:
        raise InvalidPlcOperation(f"too many services (max {MAX_SERVICES})")
    for name, service in op.services.items():
        if len(name) > MAX_ID_LENGTH:
            raise InvalidPlcOperation(f"service id too long (max {MAX_ID_LENGTH}): {name[:40]!r}")
        if len(service.type) > MAX_SERVICE_TYPE_LENGTH:
            raise InvalidPlcOperation(f"service type too long (max {MAX_SERVICE_TYPE_LENGTH})")
        if len(service.endpoint) > MAX_SERVICE_ENDPOINT_LENGTH:
            raise InvalidPlcOperation(
                f"service endpoint too long (max {MAX_SERVICE_ENDPOINT_LENGTH})"
            )


def _check_verification_methods(op: PlcOperation) -> None:
    if len(op.verification_methods) > MAX_VERIFICATION_METHODS:
        raise InvalidPlcOperation(f"too many verificationMethods (max {MAX_VERIFICATION_METHODS})")
    for name, key in op.verification_methods.items():
        if len(name) > MAX_ID_LENGTH:
            raise InvalidPlcOperation(f"verification method id too long (max {MAX_ID_LENGTH})")
        if len(key) > MAX_DID_KEY_LENGTH or not _is_did_key_syntax(key):
            raise InvalidPlcOperation(f"invalid verificationMethod key: {key[:80]!r}")


def _is_did_key_syntax(key: str) -> bool:
    """`did:key:z` + non-empty base58btc; the key type itself is not restricted."""
    if not key.startswith("did:key:z") or len(key) == len("did:key:z"):
        return False
    try:
        b58decode(key[len("did:key:z") :])
    except CryptoError:
        return False
    return True
