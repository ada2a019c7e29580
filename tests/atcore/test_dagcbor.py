"""DAG-CBOR: interop fixtures, strict decoding, data-model limits, and canonical-form properties."""

from __future__ import annotations

import base64
from typing import Any

import cbor2
import cbrrr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor
from atcore.cid import CID
from atcore.dagcbor import DagCborError
from atcore.datajson import data_to_json, json_to_data
from tests.atcore.strategies import INT64_MAX, INT64_MIN, cids, data_model_values
from tests.interop import json_cases

FIXTURES = "data-model/data-model-fixtures.json"
LINK = CID.parse("bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


# -- interop fixtures: json <-> cbor <-> cid, every direction --------------------------------


@pytest.mark.parametrize("case", json_cases(FIXTURES))
def test_fixture_json_encodes_to_expected_cbor(case: dict[str, Any]) -> None:
    assert dagcbor.encode(json_to_data(case["json"])) == _unb64(case["cbor_base64"])


@pytest.mark.parametrize("case", json_cases(FIXTURES))
def test_fixture_cbor_decodes_to_expected_json(case: dict[str, Any]) -> None:
    assert data_to_json(dagcbor.decode(_unb64(case["cbor_base64"]))) == case["json"]


@pytest.mark.parametrize("case", json_cases(FIXTURES))
def test_fixture_cid_of_json_and_of_cbor(case: dict[str, Any]) -> None:
    cid, block = dagcbor.cid_of(json_to_data(case["json"]))
    assert str(cid) == case["cid"]
    assert str(CID.for_dag_cbor(_unb64(case["cbor_base64"]))) == case["cid"]
    assert block == _unb64(case["cbor_base64"])


@pytest.mark.parametrize("case", json_cases(FIXTURES))
def test_fixture_cbor_is_canonical(case: dict[str, Any]) -> None:
    block = _unb64(case["cbor_base64"])
    assert dagcbor.encode(dagcbor.decode(block)) == block


# -- strict decoding --------------------------------------------------------------------------

CID_BYTES = LINK.cid_bytes

REJECTED = {
    "float64": "fb3ff8000000000000",
    "float64 integral": "fb3ff0000000000000",
    "float64 nested in map": "a16161" + "fb4000000000000000",
    "float64 deep in list": "81818181fb0000000000000000",
    "float32": "fa3fc00000",
    "float16": "f93e00",
    "undefined": "f7",
    "simple value 0": "e0",
    "simple value 32": "f820",
    "break outside indefinite": "ff",
    "indefinite array": "9f01ff",
    "indefinite map": "bf616101ff",
    "indefinite text": "7f616161ff",
    "indefinite bytes": "5f4101ff",
    "uint above int64": "1b8000000000000000",
    "uint64 max": "1bffffffffffffffff",
    "negative below int64": "3b8000000000000000",
    "negative -2^64": "3bffffffffffffffff",
    "non-minimal uint8": "1817",
    "non-minimal uint16": "1900ff",
    "non-minimal uint32": "1a0000ffff",
    "non-minimal uint64": "1b00000000ffffffff",
    "non-minimal text length": "780161",
    "non-minimal map length": "b80100",
    "integer map key": "a10101",
    "bytes map key": "a1416101",
    "duplicate map key": "a2616101616102",
    "keys not sorted bytewise": "a2616201616101",
    "keys not sorted length-first": "a262616101616202",
    "tag 0": "c074323031332d30332d32315432303a30343a30305a",
    "tag 1": "c11a514b67b0",
    "tag 2 bignum": "c24101",
    "tag 42 on a text string": "d82a6161",
    "tag 42 on an integer": "d82a01",
    "tag 42 empty bytes": "d82a40",
    "tag 42 missing multibase zero": "d82a5824" + CID_BYTES.hex(),
    "tag 42 only the zero byte": "d82a4100",
    "tag 42 truncated digest": "d82a5824" + "00" + CID_BYTES[:-1].hex(),
    "tag 42 trailing byte": "d82a5826" + "00" + CID_BYTES.hex() + "00",
    "tag 42 CID version 2": "d82a4500" + "02711200",
    "tag 42 sha-256 with short digest": "d82a4600" + "0171120100",
    "tag 42 non-minimal tag head": "d9002a5825" + "00" + CID_BYTES.hex(),
    "trailing bytes": "0101",
    "two maps": "a0a0",
    "empty input": "",
    "truncated map": "a26161",
    "truncated text": "6561",
    "text length past end": "7bffffffffffffffff",
    "array length past end": "9bffffffffffffffff01",
    "invalid utf-8 text": "62c328",
    "invalid utf-8 key": "a162c32801",
    "lone surrogate in text": "63eda080",
}


@pytest.mark.parametrize("hex_bytes", REJECTED.values(), ids=list(REJECTED))
def test_decode_rejects(hex_bytes: str) -> None:
    with pytest.raises(DagCborError):
        dagcbor.decode(bytes.fromhex(hex_bytes))


ACCEPTED: dict[str, tuple[str, Any]] = {
    "int64 max": ("1b7fffffffffffffff", INT64_MAX),
    "int64 min": ("3b7fffffffffffffff", INT64_MIN),
    "0xfb inside bytes is not a float": ("42fbfb", b"\xfb\xfb"),
    "';' before a high byte inside text": ("633bc3a3", ";ã"),
    "link": ("d82a5825" + "00" + CID_BYTES.hex(), LINK),
    "keys length-first": ("a261620162616102", {"b": 1, "aa": 2}),
    "empty map and list": ("a2616180616ba0", {"a": [], "k": {}}),
}


@pytest.mark.parametrize(("hex_bytes", "expected"), ACCEPTED.values(), ids=list(ACCEPTED))
def test_decode_accepts(hex_bytes: str, expected: Any) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert dagcbor.decode(raw) == expected
    assert dagcbor.encode(expected) == raw


def test_decoded_links_are_our_cid_type() -> None:
    value = dagcbor.decode(dagcbor.encode({"l": LINK}))
    assert type(value["l"]) is CID


def test_decode_accepts_bytearray_and_memoryview() -> None:
    raw = dagcbor.encode({"a": [1, b"x", LINK]})
    assert dagcbor.decode(bytearray(raw)) == dagcbor.decode(memoryview(raw)) == dagcbor.decode(raw)


# -- encoding refuses values outside the data model -------------------------------------------

UNENCODABLE: dict[str, Any] = {
    "float": 1.5,
    "integral float": 2.0,
    "nested float": {"a": [{"b": 0.25}]},
    "nan": float("nan"),
    "int above int64": INT64_MAX + 1,
    "int below int64": INT64_MIN - 1,
    "huge int": 2**70,
    "integer key": {1: "a"},
    "tuple": (1, 2),
    "set": {1},
    "bytearray": bytearray(b"x"),
    "cbrrr base CID": cbrrr.CID(LINK.cid_bytes),
    "str subclass": type("S", (str,), {})("x"),
    "lone surrogate": "\ud800",
    "object": object(),
}


@pytest.mark.parametrize("value", UNENCODABLE.values(), ids=list(UNENCODABLE))
def test_encode_rejects(value: Any) -> None:
    with pytest.raises(DagCborError):
        dagcbor.encode(value)


def test_cid_of_is_cid_of_the_block() -> None:
    cid, block = dagcbor.cid_of({"text": "hi", "n": 1})
    assert block == dagcbor.encode({"text": "hi", "n": 1})
    assert cid == CID.for_dag_cbor(block)
    assert cid.is_dag_cbor()


# -- back-to-back objects (event-stream frames) -----------------------------------------------


def test_decode_multi_reads_header_and_body() -> None:
    header, body = {"op": 1, "t": "#commit"}, {"seq": 5, "blocks": b"\xfb" * 40, "commit": LINK}
    frame = dagcbor.encode(header) + dagcbor.encode(body)
    assert dagcbor.decode_multi(frame) == [header, body]
    assert next(dagcbor.iter_decode_multi(frame)) == header


def test_decode_prefix_returns_value_and_length() -> None:
    header = dagcbor.encode({"op": 1, "t": "#commit"})
    frame = header + b"\xff\xff anything"
    assert dagcbor.decode_prefix(frame) == ({"op": 1, "t": "#commit"}, len(header))
    assert dagcbor.decode_prefix(memoryview(header)) == ({"op": 1, "t": "#commit"}, len(header))


@pytest.mark.parametrize(
    "prefix_hex", ["a1616ffb3ff0000000000000", "1bffffffffffffffff00", "a2616201616101", "", "f7"]
)
def test_decode_prefix_is_strict(prefix_hex: str) -> None:
    with pytest.raises(DagCborError):
        dagcbor.decode_prefix(bytes.fromhex(prefix_hex))


@pytest.mark.parametrize(
    "frame_hex", ["a0fb3ff0000000000000", "a0a26161016161", "a01bffffffffffffffff", "a0f7"]
)
def test_decode_multi_rejects_bad_objects(frame_hex: str) -> None:
    with pytest.raises(DagCborError):
        dagcbor.decode_multi(bytes.fromhex(frame_hex))


# -- properties -------------------------------------------------------------------------------


def _length_first(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def _check_key_order(value: Any) -> None:
    """Every decoded map must list its keys in length-first, then bytewise, order."""
    if isinstance(value, dict):
        assert list(value) == sorted(value, key=_length_first)
        for item in value.values():
            _check_key_order(item)
    elif isinstance(value, list):
        for item in value:
            _check_key_order(item)


@given(data_model_values(json_safe=False))
def test_round_trip(value: Any) -> None:
    encoded = dagcbor.encode(value)
    decoded = dagcbor.decode(encoded)
    assert decoded == value
    assert dagcbor.encode(decoded) == encoded
    _check_key_order(decoded)


@given(data_model_values(json_safe=False))
def test_encoding_matches_cbor2_canonical(value: Any) -> None:
    """An independent encoder agrees byte for byte (CIDs via tag 42 with the 0x00 prefix)."""

    def default(encoder: Any, cid: Any) -> None:
        encoder.encode(cbor2.CBORTag(42, b"\x00" + cid.cid_bytes))

    assert dagcbor.encode(value) == cbor2.dumps(value, canonical=True, default=default)


@given(data_model_values(json_safe=False))
def test_cbor2_reads_what_we_write(value: Any) -> None:
    def tag_hook(*args: Any) -> Any:
        # cbor2's hook signature differs between its C and Python decoders: find the tag.
        tag = next(arg for arg in args if isinstance(arg, cbor2.CBORTag))
        assert tag.tag == 42
        return CID.from_bytes(tag.value[1:])

    assert cbor2.loads(dagcbor.encode(value), tag_hook=tag_hook) == value


@given(data_model_values(json_safe=False), st.sampled_from([0.5, 1.0, -0.0, 1e300]))
def test_any_float_anywhere_is_rejected(value: Any, number: float) -> None:
    """Bytes carrying a float (built by the plain CBOR library) never decode."""
    for wrapped in ([value, number], {"x": value, "y": [number]}):
        raw = cbrrr.encode_dag_cbor(wrapped, cid_type=CID)
        with pytest.raises(DagCborError):
            dagcbor.decode(raw)
        with pytest.raises(DagCborError):
            dagcbor.encode(wrapped)


@given(
    data_model_values(json_safe=False),
    st.one_of(st.integers(INT64_MAX + 1, 2**64 - 1), st.integers(-(2**64), INT64_MIN - 1)),
)
def test_any_wide_integer_anywhere_is_rejected(value: Any, number: int) -> None:
    raw = cbrrr.encode_dag_cbor([value, {"n": number}], cid_type=CID)
    with pytest.raises(DagCborError):
        dagcbor.decode(raw)


@given(cids())
def test_any_valid_cid_round_trips_as_a_link(cid: CID) -> None:
    assert dagcbor.decode(dagcbor.encode([cid])) == [cid]


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_dagcbor_error(raw: bytes) -> None:
    try:
        value = dagcbor.decode(raw)
    except DagCborError:
        return
    assert dagcbor.encode(value) == raw  # whatever decodes is canonical
