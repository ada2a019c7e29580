"""Signed v3 repository commits: the object at the top of every atproto repository.

A commit is the DAG-CBOR map `{did, version: 3, data, rev, prev, sig}`:

- `did`: the account DID; `rev`: a TID, the repo's logical clock;
- `data`: link to the MST root; `prev`: link to an earlier commit or null. In v3 `prev` must be
  *present* (as null when unused): it was once optional, which broke interop, so both encoding and
  decoding here insist on the key;
- `sig`: ECDSA signature (atproto form, see `atcore.crypto`) over SHA-256 of the DAG-CBOR bytes of
  the *unsigned* commit, i.e. the same map without `sig`.

The commit's CID is the dag-cbor CID of the signed block. Commits name neither the curve nor the
key that signed them: verifiers bring the public key from the account's DID document.

Links must use the "blessed" CID form (CIDv1, dag-cbor, sha-256); commits with other `data` or
`prev` links are invalid. Decoding is strict: exactly the six fields, version 3 only, correct
types, valid DID and TID syntax. Unknown extra fields are rejected rather than ignored, because a
signature over the re-encoded unsigned map could not cover them.

Errors: `CommitError` (a `ValueError`) for every invalid commit value or block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeVar

from atcore import dagcbor
from atcore.cid import CID
from atcore.crypto import Keypair, PublicKey
from atcore.syntax import Did, InvalidSyntax, Tid, parse_did, parse_tid

COMMIT_VERSION: Final = 3
_UNSIGNED_FIELDS: Final = frozenset({"did", "version", "data", "rev", "prev"})
_SIGNED_FIELDS: Final = _UNSIGNED_FIELDS | {"sig"}

_T = TypeVar("_T")


class CommitError(ValueError):
    """A commit object or block is not a valid signed v3 repository commit."""


@dataclass(frozen=True, slots=True)
class UnsignedCommit:
    """The commit fields that get signed. Validates on construction."""

    did: Did
    data: CID
    rev: Tid
    prev: CID | None = None
    version: int = COMMIT_VERSION

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != COMMIT_VERSION:
            raise CommitError(f"unsupported commit version {self.version!r} (only 3)")
        try:
            # Typed values pass through unchanged; plain strings are validated and typed here.
            object.__setattr__(self, "did", parse_did(self.did))
            object.__setattr__(self, "rev", parse_tid(self.rev))
        except InvalidSyntax as exc:
            raise CommitError(f"invalid commit: {exc}") from exc
        _require_blessed_link("data", self.data)
        if self.prev is not None:
            _require_blessed_link("prev", self.prev)

    def to_data(self) -> dict[str, Any]:
        """The unsigned commit as a data-model map (`prev` always present, possibly None)."""
        return {
            "did": str(self.did),
            "version": self.version,
            "data": self.data,
            "rev": str(self.rev),
            "prev": self.prev,
        }

    def encode(self) -> bytes:
        """The canonical DAG-CBOR bytes that are hashed and signed."""
        return dagcbor.encode(self.to_data())


@dataclass(frozen=True, slots=True)
class SignedCommit:
    """An unsigned commit plus its signature; `encode()` gives the block stored in repos/CARs."""

    unsigned: UnsignedCommit
    sig: bytes

    def __post_init__(self) -> None:
        if type(self.sig) is not bytes:
            raise CommitError(f"commit sig must be bytes, got {type(self.sig).__name__}")

    @property
    def did(self) -> Did:
        return self.unsigned.did

    @property
    def data(self) -> CID:
        return self.unsigned.data

    @property
    def rev(self) -> Tid:
        return self.unsigned.rev

    @property
    def prev(self) -> CID | None:
        return self.unsigned.prev

    @property
    def version(self) -> int:
        return self.unsigned.version

    def to_data(self) -> dict[str, Any]:
        return {**self.unsigned.to_data(), "sig": self.sig}

    def encode(self) -> bytes:
        return dagcbor.encode(self.to_data())

    @property
    def cid(self) -> CID:
        """The dag-cbor CID of the signed block (what repos and the firehose point at)."""
        return CID.for_dag_cbor(self.encode())

    def verify(self, public_key: PublicKey) -> bool:
        """True when `sig` is a strict atproto signature of the unsigned commit by `public_key`."""
        return public_key.verify(self.unsigned.encode(), self.sig)

    @classmethod
    def decode(cls, block: bytes) -> SignedCommit:
        """Parse a commit block strictly (see the module docstring for the rules)."""
        try:
            value = dagcbor.decode(block)
        except dagcbor.DagCborError as exc:
            raise CommitError(f"commit is not valid DAG-CBOR: {exc}") from exc
        return cls.from_data(value)

    @classmethod
    def from_data(cls, value: object) -> SignedCommit:
        """Build from an already-decoded data-model value, with the same checks as `decode`."""
        if not isinstance(value, dict):
            raise CommitError(f"commit must be a map, got {type(value).__name__}")
        if "version" in value and value["version"] != COMMIT_VERSION:
            raise CommitError(f"unsupported commit version {value['version']!r} (only 3)")
        _require_exact_fields(value)
        try:
            did = parse_did(_typed_field(value, "did", str))
            rev = parse_tid(_typed_field(value, "rev", str))
        except InvalidSyntax as exc:
            raise CommitError(f"invalid commit: {exc}") from exc
        unsigned = UnsignedCommit(
            did=did,
            version=_typed_field(value, "version", int),
            data=_typed_field(value, "data", CID),
            rev=rev,
            prev=None if value["prev"] is None else _typed_field(value, "prev", CID),
        )
        return cls(unsigned, sig=_typed_field(value, "sig", bytes))


def sign(unsigned: UnsignedCommit, keypair: Keypair) -> SignedCommit:
    """Sign `unsigned` with the account's signing key."""
    return SignedCommit(unsigned, keypair.sign(unsigned.encode()))


def _require_blessed_link(name: str, link: object) -> None:
    if not isinstance(link, CID):
        raise CommitError(f"commit {name} must be a CID, got {type(link).__name__}")
    if not link.is_cidv1_dag_cbor_sha256_32():
        raise CommitError(f"commit {name} must be a CIDv1 dag-cbor sha-256 link, got {link}")


def _require_exact_fields(value: dict[str, Any]) -> None:
    missing = _SIGNED_FIELDS - value.keys()
    if missing:
        raise CommitError(f"commit is missing fields {sorted(missing)}")
    extra = value.keys() - _SIGNED_FIELDS
    if extra:
        raise CommitError(f"commit has unexpected fields {sorted(extra)}")


def _typed_field(value: dict[str, Any], name: str, kind: type[_T]) -> _T:
    field = value[name]
    # `type(...) is` rather than isinstance: a bool must not pass as the integer version.
    if type(field) is not kind:
        raise CommitError(f"commit {name} must be {kind.__name__}, got {type(field).__name__}")
    return field
