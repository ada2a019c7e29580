"""CIDs: text and binary forms, validation, inspection, ordering, varints."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.cid import (
    CID,
    CODEC_DAG_CBOR,
    CODEC_DAG_PB,
    CODEC_RAW,
    HASH_SHA256,
    CidError,
    encode_varint,
    is_cid_string,
    read_varint,
)
from tests.atcore.strategies import cids
from tests.conftest import interop_dir
from tests.interop import lines

CBOR_LINK = "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"
RAW_LINK = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"
V0_TEXT = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


def _fixture_cid_strings() -> list[str]:
    path = interop_dir() / "data-model" / "data-model-fixtures.json"
    if not path.is_file():
        return [CBOR_LINK]
    return [case["cid"] for case in json.loads(path.read_text(encoding="utf-8"))]


# -- parsing known values ---------------------------------------------------------------------


@pytest.mark.parametrize("text", _fixture_cid_strings())
def test_fixture_cids_parse_and_print_back(text: str) -> None:
    cid = CID.parse(text)
    assert str(cid) == text
    assert (cid.version, cid.codec, cid.hash_code) == (1, CODEC_DAG_CBOR, HASH_SHA256)
    assert cid.is_atproto_blessed()
    assert cid.is_dag_cbor()


@pytest.mark.parametrize("line", lines("syntax/cid_syntax_valid.txt"))
def test_syntax_fixture_base32_cids_parse(line: str) -> None:
    """The CID-syntax fixtures also list non-base32 spellings; those are the syntax layer's."""
    if not line.startswith("b"):
        with pytest.raises(CidError):
            CID.parse(line)
        return
    cid = CID.parse(line)
    assert str(cid) == line
    assert cid.version == 1


def test_raw_link_fields() -> None:
    cid = CID.parse(RAW_LINK)
    assert cid.codec == CODEC_RAW
    assert cid.is_raw()
    assert not cid.is_dag_cbor()
    assert len(cid.digest) == 32


def test_cidv0_parses_and_prints_back() -> None:
    cid = CID.parse(V0_TEXT)
    assert str(cid) == V0_TEXT
    assert (cid.version, cid.codec, cid.hash_code) == (0, CODEC_DAG_PB, HASH_SHA256)
    assert len(cid.cid_bytes) == 34
    assert not cid.is_atproto_blessed()
    assert CID.from_bytes(cid.cid_bytes) == cid


def test_dag_pb_cidv1_fields() -> None:
    cid = CID.parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
    assert (cid.version, cid.codec, cid.hash_code) == (1, CODEC_DAG_PB, HASH_SHA256)
    assert not cid.is_atproto_blessed()


def test_hash_constructors() -> None:
    block = b"some block"
    assert CID.for_dag_cbor(block).digest == hashlib.sha256(block).digest()
    assert CID.for_dag_cbor(block).is_dag_cbor()
    assert CID.for_raw(block).is_raw()
    assert CID.for_raw(block).verifies(block)
    assert not CID.for_raw(block).verifies(block + b"!")


def test_verifies_refuses_unknown_hash() -> None:
    identity = CID.from_bytes(b"\x01\x55\x00\x03abc")
    with pytest.raises(CidError):
        identity.verifies(b"abc")


# -- rejecting malformed input ----------------------------------------------------------------

BAD_STRINGS = {
    "empty": "",
    "multibase only": "b",
    "dot": ".",
    "upper-case base32": CBOR_LINK.upper(),
    "base32upper multibase": "B" + CBOR_LINK[1:].upper(),
    "padded": CBOR_LINK + "====",
    "truncated": CBOR_LINK[:-2],
    "extra character": CBOR_LINK + "a",
    "non-zero padding bits": CBOR_LINK[:-1] + "b",
    "leading space": " " + CBOR_LINK,
    "base58 CIDv1": "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7",
    "base16": "f017012202c5f688262e0ece8569aa6f94d60aad55ca8d9d83734e4a7430d0cff6588ec2b",
    "CIDv0 in base32": "b"
    + base64.b32encode(CID.parse(V0_TEXT).cid_bytes).decode().lower().rstrip("="),
    "CIDv0 wrong length": V0_TEXT + "1",
    "CIDv0 bad character": V0_TEXT[:-1] + "0",
    "uri prefix": "cid:" + CBOR_LINK,
    "very long": "b" + "a" * 400,
}


@pytest.mark.parametrize("text", BAD_STRINGS.values(), ids=list(BAD_STRINGS))
def test_parse_rejects(text: str) -> None:
    with pytest.raises(CidError):
        CID.parse(text)
    assert not is_cid_string(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(CidError):
        CID.parse(b"bafy")  # type: ignore[arg-type]


DIGEST = bytes(range(32))
BAD_BYTES = {
    "empty": b"",
    "version 0 varint without v0 prefix": b"\x00\x71\x12\x20" + DIGEST,
    "version 2": b"\x02\x71\x12\x20" + DIGEST,
    "truncated digest": b"\x01\x71\x12\x20" + DIGEST[:-1],
    "trailing bytes": b"\x01\x71\x12\x20" + DIGEST + b"\x00",
    "sha-256 with a 20-byte digest": b"\x01\x71\x12\x14" + DIGEST[:20],
    "truncated varint": b"\x01\xf1",
    "non-minimal varint": b"\x01\xf1\x00\x12\x20" + DIGEST,
    "truncated CIDv0": b"\x12\x20" + DIGEST[:-1],
    "CIDv0 with trailing byte": b"\x12\x20" + DIGEST + b"\x00",
    "over 100 bytes": b"\x01\x55\x13\x60" + bytes(96) + b"\x00",
}


@pytest.mark.parametrize("raw", BAD_BYTES.values(), ids=list(BAD_BYTES))
def test_from_bytes_rejects(raw: bytes) -> None:
    with pytest.raises(CidError):
        CID.from_bytes(raw)


def test_read_from_finds_the_end_of_a_cid() -> None:
    cid = CID.parse(CBOR_LINK)
    other = CID.parse(V0_TEXT)
    buf = memoryview(b"xx" + cid.cid_bytes + other.cid_bytes + b"tail")
    first, pos = CID.read_from(buf, 2)
    second, end = CID.read_from(buf, pos)
    assert (first, second, bytes(buf[end:])) == (cid, other, b"tail")
    with pytest.raises(CidError):
        CID.read_from(buf, len(buf))


# -- properties -------------------------------------------------------------------------------


@given(cids())
def test_text_round_trip(cid: CID) -> None:
    text = str(cid)
    assert CID.parse(text) == cid
    assert is_cid_string(text)
    assert text.startswith("Qm" if cid.version == 0 else "b")


@given(cids(), st.binary(max_size=8))
def test_bytes_round_trip(cid: CID, tail: bytes) -> None:
    assert CID.from_bytes(cid.cid_bytes) == cid
    assert CID.read_from(cid.cid_bytes + tail) == (cid, len(cid.cid_bytes))
    assert CID.from_bytes(cid.cid_bytes).digest == cid.digest


@given(st.binary(max_size=80))
def test_random_bytes_raise_only_cid_error(raw: bytes) -> None:
    try:
        cid = CID.from_bytes(raw)
    except CidError:
        return
    assert cid.cid_bytes == raw
    assert CID.parse(str(cid)) == cid


@given(cids(), cids())
def test_ordering_follows_binary_form(a: CID, b: CID) -> None:
    assert (a < b) == (a.cid_bytes < b.cid_bytes)
    assert (a <= b) == (a.cid_bytes <= b.cid_bytes)
    assert (a > b) == (a.cid_bytes > b.cid_bytes)
    assert (a >= b) == (a.cid_bytes >= b.cid_bytes)
    assert (a == b) == (a.cid_bytes == b.cid_bytes)
    assert (hash(a) == hash(b)) or a != b


@given(st.integers(0, 2**63 - 1), st.binary(max_size=3))
def test_varint_round_trip(value: int, tail: bytes) -> None:
    encoded = encode_varint(value)
    assert read_varint(encoded + tail) == (value, len(encoded))


@pytest.mark.parametrize(
    "raw", [b"", b"\x80", b"\x81\x00", b"\xff" * 9 + b"\x01", b"\x80\x80\x80\x00"]
)
def test_read_varint_rejects(raw: bytes) -> None:
    with pytest.raises(CidError):
        read_varint(raw)


def test_encode_varint_rejects_negative() -> None:
    with pytest.raises(CidError):
        encode_varint(-1)
