"""did:plc operations: the typed model, signing, verification, DID derivation, documents.

Per the did:plc specification (v0.3): an operation is a `plc_operation` (rotation keys,
verification methods, alsoKnownAs, services, `prev`), a `plc_tombstone` (just `prev`), or the
legacy genesis-only `create` (read-only here: it may appear in logs but is never produced). Each
is signed by a rotation key over the DAG-CBOR of the operation *without* its `sig` field; `sig` is
the 64-byte compact low-S ECDSA signature in unpadded base64url with zero padding bits. `prev` is
the CID (dag-cbor, sha-256, base32, written as a string, not a link) of the signed previous
operation, or null for the genesis operation, whose signed DAG-CBOR hashes to the DID:
`did:plc:` + base32-lower(sha256(bytes))[:24].

Parsing is exact (no missing, extra or mistyped fields), so re-encoding a parsed operation yields
byte-for-byte the DAG-CBOR that was signed and hashed. Chain rules live in `plc_log`.

Errors: `InvalidPlcOperation`, `InvalidPlcSignature` (both `PlcOperationError`s).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from atcore import dagcbor
from atcore.cid import CID, CidError
from atcore.crypto import CryptoError, Keypair, PublicKey, parse_did_key
from atcore.identity.diddoc import (
    AT_URI_PREFIX,
    ATPROTO_KEY_ID,
    MULTIKEY_TYPE,
    PDS_SERVICE,
    DidDocument,
    Service,
    VerificationMethod,
    context_for_keys,
)
from atcore.identity.errors import DidNotFound, InvalidPlcOperation, InvalidPlcSignature
from atcore.syntax import Did

PLC_DID_PREFIX: Final = "did:plc:"
_PLC_DID_MATCH: Final = re.compile(r"did:plc:[a-z2-7]{24}").fullmatch
_BASE64URL_MATCH: Final = re.compile(r"[A-Za-z0-9_-]*").fullmatch


@dataclass(frozen=True, slots=True)
class PlcService:
    type: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class PlcOperation:
    """A `plc_operation`: the full identity state after this operation."""

    type: ClassVar[str] = "plc_operation"
    rotation_keys: tuple[str, ...]
    verification_methods: Mapping[str, str]
    also_known_as: tuple[str, ...]
    services: Mapping[str, PlcService]
    prev: str | None
    sig: str | None = None

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "rotationKeys": list(self.rotation_keys),
            "verificationMethods": dict(self.verification_methods),
            "alsoKnownAs": list(self.also_known_as),
            "services": {
                name: {"type": s.type, "endpoint": s.endpoint} for name, s in self.services.items()
            },
            "prev": self.prev,
        }


@dataclass(frozen=True, slots=True)
class PlcTombstone:
    """A `plc_tombstone`: deactivates the DID (itself subject to the recovery window)."""

    type: ClassVar[str] = "plc_tombstone"
    prev: str
    sig: str | None = None

    def unsigned_json(self) -> dict[str, Any]:
        return {"type": self.type, "prev": self.prev}


@dataclass(frozen=True, slots=True)
class LegacyCreateOp:
    """The deprecated genesis-only `create` format; `prev` is always null."""

    type: ClassVar[str] = "create"
    signing_key: str
    recovery_key: str
    handle: str
    service: str
    sig: str | None = None
    prev: None = None

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "signingKey": self.signing_key,
            "recoveryKey": self.recovery_key,
            "handle": self.handle,
            "service": self.service,
            "prev": None,
        }


PlcOp: TypeAlias = PlcOperation | PlcTombstone | LegacyCreateOp
_Op = TypeVar("_Op", PlcOperation, PlcTombstone, LegacyCreateOp)


# -- JSON and DAG-CBOR forms ----------------------------------------------------------------------
def op_to_json(op: PlcOp) -> dict[str, Any]:
    """The wire form of an operation (with `sig` when signed)."""
    out = op.unsigned_json()
    if op.sig is not None:
        out["sig"] = op.sig
    return out


def unsigned_bytes(op: PlcOp) -> bytes:
    """The DAG-CBOR that signatures cover: the operation without its `sig` field."""
    return dagcbor.encode(op.unsigned_json())


def signed_bytes(op: PlcOp) -> bytes:
    """The DAG-CBOR of the signed operation (what CIDs and the DID hash cover)."""
    if op.sig is None:
        raise InvalidPlcOperation("operation is not signed")
    return dagcbor.encode(op_to_json(op))


def op_cid(op: PlcOp) -> CID:
    """The CID of the signed operation, as referenced by a later operation's `prev`."""
    return CID.for_dag_cbor(signed_bytes(op))


def did_for_genesis(op: PlcOp) -> Did:
    """The DID a signed genesis operation creates."""
    if isinstance(op, PlcTombstone) or op.prev is not None:
        raise InvalidPlcOperation("only a genesis operation (prev = null) derives a DID")
    digest = hashlib.sha256(signed_bytes(op)).digest()
    return Did(PLC_DID_PREFIX + base64.b32encode(digest).decode("ascii").lower()[:24])


def is_plc_did(value: str) -> bool:
    """True for a syntactically valid did:plc (24 lowercase base32 characters)."""
    return _PLC_DID_MATCH(value) is not None


# -- signatures -----------------------------------------------------------------------------------
def encode_sig(signature: bytes) -> str:
    return base64.urlsafe_b64encode(signature).decode("ascii").rstrip("=")


def decode_sig(sig: str) -> bytes:
    """Strict unpadded base64url: no `=`, no whitespace, zero padding bits."""
    if _BASE64URL_MATCH(sig) is None or len(sig) % 4 == 1:
        raise InvalidPlcSignature("sig is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidPlcSignature(f"sig is not valid base64url: {exc}") from exc
    if encode_sig(raw) != sig:
        raise InvalidPlcSignature("sig has non-zero base64url padding bits")
    return raw


def sign_op(op: _Op, keypair: Keypair) -> _Op:
    """Return `op` signed by `keypair` (any previous `sig` is replaced)."""
    unsigned = replace(op, sig=None)
    return replace(unsigned, sig=encode_sig(keypair.sign(unsigned_bytes(unsigned))))


def signing_key_index(op: PlcOp, rotation_keys: Sequence[str]) -> int:
    """Index of the first rotation key that signed `op`; raises `InvalidPlcSignature`.

    Keys that do not parse as k256/p256 did:keys are skipped: they cannot have signed anything.
    """
    if op.sig is None:
        raise InvalidPlcSignature("operation is not signed")
    signature = decode_sig(op.sig)
    message = unsigned_bytes(op)
    for index, did_key in enumerate(rotation_keys):
        key = _rotation_key(did_key)
        if key is not None and key.verify(message, signature):
            return index
    raise InvalidPlcSignature("invalid signature on op: not signed by an allowed rotation key")


def verify_op_signature(op: PlcOp, rotation_keys: Sequence[str]) -> str:
    """The rotation key (did:key) that signed `op`; raises `InvalidPlcSignature`."""
    return rotation_keys[signing_key_index(op, rotation_keys)]


def _rotation_key(did_key: str) -> PublicKey | None:
    try:
        return parse_did_key(did_key)
    except CryptoError:
        return None


def rotation_keys_of(op: PlcOp) -> tuple[str, ...]:
    """The keys that may sign the *next* operation (legacy: recovery key, then signing key)."""
    if isinstance(op, PlcTombstone):
        return ()
    return normalize_op(op).rotation_keys


def normalize_op(op: PlcOperation | LegacyCreateOp) -> PlcOperation:
    """Convert a legacy `create` to the equivalent `plc_operation` (regular ops pass through)."""
    if isinstance(op, PlcOperation):
        return op
    # The reference implementation's `ensureAtprotoPrefix` / `ensureHttpPrefix`, exactly.
    handle = op.handle
    if not handle.startswith(AT_URI_PREFIX):
        handle = AT_URI_PREFIX + handle.replace("http://", "", 1).replace("https://", "", 1)
    endpoint = op.service
    if not endpoint.startswith(("http://", "https://")):
        endpoint = "https://" + endpoint
    return PlcOperation(
        rotation_keys=(op.recovery_key, op.signing_key),
        verification_methods={ATPROTO_KEY_ID: op.signing_key},
        also_known_as=(handle,),
        services={PDS_SERVICE.fragment: PlcService(PDS_SERVICE.type, endpoint)},
        prev=None,
        sig=op.sig,
    )


# -- creating operations --------------------------------------------------------------------------
def create_genesis_op(
    *,
    signer: Keypair,
    rotation_keys: Sequence[str],
    signing_key: str,
    handle: str | None = None,
    pds_endpoint: str | None = None,
    also_known_as: Sequence[str] = (),
    services: Mapping[str, PlcService] | None = None,
) -> PlcOperation:
    """A signed genesis operation for an atproto account (`did_for_genesis` gives its DID)."""
    aliases = (AT_URI_PREFIX + handle,) if handle else ()
    all_services = dict(services or {})
    if pds_endpoint is not None:
        all_services[PDS_SERVICE.fragment] = PlcService(PDS_SERVICE.type, pds_endpoint)
    op = PlcOperation(
        rotation_keys=tuple(rotation_keys),
        verification_methods={ATPROTO_KEY_ID: signing_key},
        also_known_as=aliases + tuple(also_known_as),
        services=all_services,
        prev=None,
    )
    return sign_op(op, signer)


def create_update_op(
    prev_op: PlcOperation | LegacyCreateOp,
    *,
    signer: Keypair,
    rotation_keys: Sequence[str] | None = None,
    signing_key: str | None = None,
    handle: str | None = None,
    pds_endpoint: str | None = None,
    also_known_as: Sequence[str] | None = None,
    services: Mapping[str, PlcService] | None = None,
) -> PlcOperation:
    """A signed operation following `prev_op`, changing only the fields given.

    `handle` replaces the first `at://` alias (or is prepended); `signing_key` replaces the
    `atproto` verification method; `pds_endpoint` replaces the `atproto_pds` service.
    """
    base = normalize_op(prev_op)
    methods = dict(base.verification_methods)
    if signing_key is not None:
        methods[ATPROTO_KEY_ID] = signing_key
    aliases = tuple(also_known_as) if also_known_as is not None else base.also_known_as
    if handle is not None:
        aliases = _with_handle(aliases, AT_URI_PREFIX + handle)
    new_services = dict(services) if services is not None else dict(base.services)
    if pds_endpoint is not None:
        new_services[PDS_SERVICE.fragment] = PlcService(PDS_SERVICE.type, pds_endpoint)
    op = PlcOperation(
        rotation_keys=tuple(rotation_keys) if rotation_keys is not None else base.rotation_keys,
        verification_methods=methods,
        also_known_as=aliases,
        services=new_services,
        prev=str(op_cid(prev_op)),
    )
    return sign_op(op, signer)


def create_tombstone_op(prev_op: PlcOp, *, signer: Keypair) -> PlcTombstone:
    return sign_op(PlcTombstone(prev=str(op_cid(prev_op))), signer)


def _with_handle(aliases: tuple[str, ...], uri: str) -> tuple[str, ...]:
    for index, alias in enumerate(aliases):
        if alias.startswith(AT_URI_PREFIX):
            return (*aliases[:index], uri, *aliases[index + 1 :])
    return (uri, *aliases)


# -- state and documents --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlcDocumentData:
    """The PLC state of a DID (what `GET /{did}/data` returns)."""

    did: Did
    rotation_keys: tuple[str, ...]
    verification_methods: Mapping[str, str]
    also_known_as: tuple[str, ...]
    services: Mapping[str, PlcService]

    def to_json(self) -> dict[str, Any]:
        return {
            "did": str(self.did),
            "verificationMethods": dict(self.verification_methods),
            "rotationKeys": list(self.rotation_keys),
            "alsoKnownAs": list(self.also_known_as),
            "services": {
                name: {"type": s.type, "endpoint": s.endpoint} for name, s in self.services.items()
            },
        }

    def to_document(self) -> DidDocument:
        """Render the DID document exactly as plc.directory does."""
        methods = tuple(
            VerificationMethod(
                id=f"{self.did}#{name}",
                type=MULTIKEY_TYPE,
                controller=self.did,
                public_key_multibase=key.removeprefix("did:key:"),
                fragment=name,
            )
            for name, key in self.verification_methods.items()
        )
        services = tuple(
            Service(id=f"#{name}", type=s.type, endpoint=s.endpoint, fragment=name)
            for name, s in self.services.items()
        )
        return DidDocument(
            id=self.did,
            also_known_as=self.also_known_as,
            verification_methods=methods,
            services=services,
            context=context_for_keys(self.verification_methods.values()),
        )


def document_data(did: str, op: PlcOp) -> PlcDocumentData | None:
    """The state after `op`, or None when `op` is a tombstone (the DID is deactivated)."""
    if isinstance(op, PlcTombstone):
        return None
    normal = normalize_op(op)
    return PlcDocumentData(
        did=Did(did),
        rotation_keys=normal.rotation_keys,
        verification_methods=normal.verification_methods,
        also_known_as=normal.also_known_as,
        services=normal.services,
    )


def document_from_op(did: str, op: PlcOp) -> DidDocument:
    """The DID document after `op`; a tombstone raises `DidNotFound` (deactivated)."""
    data = document_data(did, op)
    if data is None:
        raise DidNotFound(f"{did} is deactivated (tombstoned)")
    return data.to_document()


def parse_prev(prev: str) -> CID:
    try:
        return CID.parse(prev)
    except CidError as exc:
        raise InvalidPlcOperation(f"prev is not a CID: {exc}") from exc
