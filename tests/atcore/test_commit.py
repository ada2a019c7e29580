"""atcore.commit: signing, canonical bytes, verification and strict decoding of v3 commits."""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor
from atcore.cid import CID
from atcore.commit import CommitError, SignedCommit, UnsignedCommit, sign
from atcore.crypto import K256Keypair, Keypair, P256Keypair
from atcore.syntax import parse_did, parse_tid

KEYPAIR_TYPES: list[type[Keypair]] = [P256Keypair, K256Keypair]
CURVE_IDS = ["p256", "k256"]

DID = parse_did("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
REV = parse_tid("3l3qo2vutsw2b")
MST_ROOT = CID.for_dag_cbor(dagcbor.encode({"e": [], "l": None}))
PREV = CID.for_dag_cbor(b"an earlier commit block")
K256_KEY = K256Keypair.from_hex("9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c")


def make_unsigned(prev: CID | None = None) -> UnsignedCommit:
    return UnsignedCommit(did=DID, data=MST_ROOT, rev=REV, prev=prev)


def as_cbor2(fields: dict[str, Any]) -> dict[str, Any]:
    """The same map for cbor2, with links as tag 42 over 0x00 + binary CID (the IPLD rule)."""
    return {
        key: cbor2.CBORTag(42, b"\x00" + value.cid_bytes) if isinstance(value, CID) else value
        for key, value in fields.items()
    }


def signed_fields(commit: SignedCommit) -> dict[str, Any]:
    return dagcbor.decode(commit.encode())  # type: ignore[no-any-return]


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
@pytest.mark.parametrize("prev", [None, PREV], ids=["prev-null", "prev-link"])
def test_sign_encode_decode_verify(keypair_type: type[Keypair], prev: CID | None) -> None:
    keypair = keypair_type.generate()
    commit = sign(make_unsigned(prev), keypair)
    block = commit.encode()
    decoded = SignedCommit.decode(block)
    assert decoded == commit
    assert decoded.verify(keypair.public_key)
    assert decoded.cid == CID.for_dag_cbor(block)
    assert decoded.cid.is_cidv1_dag_cbor_sha256_32()
    assert (decoded.did, decoded.rev, decoded.data, decoded.prev) == (DID, REV, MST_ROOT, prev)
    assert decoded.version == 3


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_signature_covers_sha256_of_unsigned_bytes(keypair_type: type[Keypair]) -> None:
    """The signature is over the unsigned map's bytes, independent of how we then store it."""
    keypair = keypair_type.generate()
    commit = sign(make_unsigned(), keypair)
    assert keypair.public_key.verify(commit.unsigned.encode(), commit.sig)
    assert not keypair.public_key.verify(commit.encode(), commit.sig)


@given(
    rev_ms=st.integers(min_value=0, max_value=2**53 - 1),
    clock=st.integers(min_value=0, max_value=1023),
    payload=st.binary(max_size=32),
    with_prev=st.booleans(),
)
def test_round_trip_property(rev_ms: int, clock: int, payload: bytes, with_prev: bool) -> None:
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    value = (rev_ms << 10) | clock
    rev = "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(13)))
    unsigned = UnsignedCommit(
        did=DID,
        data=CID.for_dag_cbor(payload),
        rev=parse_tid(rev),
        prev=CID.for_dag_cbor(payload + b"prev") if with_prev else None,
    )
    commit = sign(unsigned, K256_KEY)
    assert SignedCommit.decode(commit.encode()) == commit


# -- canonical bytes ------------------------------------------------------------------------------


def test_unsigned_bytes_match_independent_encoding() -> None:
    """cbor2 in canonical mode, with CIDs as tag 42 over 0x00 + binary CID, is the reference."""
    expected = cbor2.dumps(
        {
            "did": str(DID),
            "version": 3,
            "data": cbor2.CBORTag(42, b"\x00" + MST_ROOT.cid_bytes),
            "rev": str(REV),
            "prev": None,
        },
        canonical=True,
    )
    assert make_unsigned().encode() == expected
    # Length-first key order: did, rev, data, prev, version.
    assert list(cbor2.loads(expected)) == ["did", "rev", "data", "prev", "version"]


def test_signed_bytes_match_independent_encoding() -> None:
    commit = sign(make_unsigned(PREV), K256_KEY)
    expected = cbor2.dumps(
        {
            "did": str(DID),
            "version": 3,
            "data": cbor2.CBORTag(42, b"\x00" + MST_ROOT.cid_bytes),
            "rev": str(REV),
            "prev": cbor2.CBORTag(42, b"\x00" + PREV.cid_bytes),
            "sig": commit.sig,
        },
        canonical=True,
    )
    assert commit.encode() == expected
    assert commit.cid.digest == hashlib.sha256(expected).digest()


def test_prev_is_always_present_even_when_null() -> None:
    assert make_unsigned().to_data()["prev"] is None
    assert "prev" in signed_fields(sign(make_unsigned(), K256_KEY))


# -- verification failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "replacement"),
    [
        ("did", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"),
        ("rev", "3l3qo2vutsw2c"),
        ("data", CID.for_dag_cbor(b"other tree")),
        ("prev", CID.for_dag_cbor(b"other prev")),
    ],
)
@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_tampered_field_fails_verification(
    keypair_type: type[Keypair], field: str, replacement: object
) -> None:
    keypair = keypair_type.generate()
    fields = signed_fields(sign(make_unsigned(), keypair))
    fields[field] = replacement
    tampered = SignedCommit.decode(dagcbor.encode(fields))
    assert not tampered.verify(keypair.public_key)


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_tampered_signature_fails(keypair_type: type[Keypair]) -> None:
    keypair = keypair_type.generate()
    commit = sign(make_unsigned(), keypair)
    for index in (0, 31, 32, 63):
        sig = bytearray(commit.sig)
        sig[index] ^= 0x01
        assert not SignedCommit(commit.unsigned, bytes(sig)).verify(keypair.public_key)
    assert not SignedCommit(commit.unsigned, commit.sig[:63]).verify(keypair.public_key)


@pytest.mark.parametrize("keypair_type", KEYPAIR_TYPES, ids=CURVE_IDS)
def test_wrong_key_fails(keypair_type: type[Keypair]) -> None:
    commit = sign(make_unsigned(), keypair_type.generate())
    assert not commit.verify(keypair_type.generate().public_key)


# -- strict decoding ------------------------------------------------------------------------------


def valid_fields() -> dict[str, Any]:
    return signed_fields(sign(make_unsigned(), K256_KEY))


def without(name: str) -> dict[str, Any]:
    fields = valid_fields()
    del fields[name]
    return fields


def with_field(name: str, value: object) -> dict[str, Any]:
    return {**valid_fields(), name: value}


RAW_CID = CID.for_raw(b"blob")
MALFORMED: dict[str, dict[str, Any]] = {
    **{
        f"missing-{name}": without(name)
        for name in ("did", "version", "data", "rev", "prev", "sig")
    },
    "version-2": with_field("version", 2),
    "version-true": with_field("version", True),
    "version-string": with_field("version", "3"),
    "extra-field": with_field("extra", 1),
    "did-not-string": with_field("did", b"did:plc:abc"),
    "did-invalid": with_field("did", "plc:abc"),
    "rev-invalid": with_field("rev", "not-a-tid"),
    "rev-int": with_field("rev", 1),
    "data-string": with_field("data", str(MST_ROOT)),
    "data-raw-codec": with_field("data", RAW_CID),
    "prev-raw-codec": with_field("prev", RAW_CID),
    "prev-bytes": with_field("prev", MST_ROOT.cid_bytes),
    "sig-string": with_field("sig", "c2ln"),
    "sig-null": with_field("sig", None),
}


@pytest.mark.parametrize("fields", list(MALFORMED.values()), ids=list(MALFORMED))
def test_decode_rejects_malformed_commit(fields: dict[str, Any]) -> None:
    with pytest.raises(CommitError):
        SignedCommit.decode(dagcbor.encode(fields))


def test_decode_rejects_version_2_with_a_clear_message() -> None:
    legacy = without("prev")
    legacy["version"] = 2
    with pytest.raises(CommitError, match="version 2"):
        SignedCommit.decode(dagcbor.encode(legacy))


@pytest.mark.parametrize(
    "block",
    [
        b"",
        dagcbor.encode([1, 2, 3]),
        dagcbor.encode("commit"),
        cbor2.dumps(as_cbor2({**valid_fields(), "version": 3.0})),  # a float where the int belongs
        dagcbor.encode(valid_fields()) + b"\x00",  # trailing junk
        dagcbor.encode(valid_fields())[:-1],  # truncated
        cbor2.dumps(
            as_cbor2({"version": 3, **without("version")})
        ),  # keys in insertion (non-canonical) order
    ],
    ids=["empty", "array", "string", "float", "trailing", "truncated", "unsorted-keys"],
)
def test_decode_rejects_invalid_blocks(block: bytes) -> None:
    with pytest.raises(CommitError):
        SignedCommit.decode(block)


def test_constructor_validates() -> None:
    with pytest.raises(CommitError):
        UnsignedCommit(did=DID, data=MST_ROOT, rev=REV, version=2)
    with pytest.raises(CommitError):
        UnsignedCommit(did=DID, data=RAW_CID, rev=REV)
    with pytest.raises(CommitError):
        UnsignedCommit(did="nope", data=MST_ROOT, rev=REV)  # type: ignore[arg-type]
    with pytest.raises(CommitError):
        SignedCommit(make_unsigned(), bytearray(64))  # type: ignore[arg-type]


def test_plain_strings_become_typed_values() -> None:
    unsigned = UnsignedCommit(did=str(DID), data=MST_ROOT, rev=str(REV))  # type: ignore[arg-type]
    assert type(unsigned.did) is type(DID)
    assert type(unsigned.rev) is type(REV)
