"""The JSON form of the data model: interop fixtures, $link/$bytes/blob rules, BlobRef, limits."""

from __future__ import annotations

import json
from typing import Any

import cbrrr
import pytest
from hypothesis import given

from atcore import dagcbor
from atcore.cid import CID
from atcore.dagcbor import DagCborError
from atcore.datajson import (
    MAX_DEPTH,
    BlobRef,
    DataModelError,
    block_to_json,
    data_to_json,
    decode_base64,
    iter_blob_refs,
    json_to_data,
    json_value_to_data,
)
from tests.atcore.strategies import data_model_maps, data_model_values
from tests.atcore.test_dagcbor import REJECTED
from tests.interop import json_cases

RAW_LINK = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"
CBOR_LINK = "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"
BLOB_JSON = {"$type": "blob", "ref": {"$link": RAW_LINK}, "mimeType": "image/jpeg", "size": 10000}


# -- interop fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("case", json_cases("data-model/data-model-valid.json", "note"))
def test_valid_fixture_is_accepted(case: dict[str, Any]) -> None:
    data = json_to_data(case["json"])
    assert dagcbor.decode(dagcbor.encode(data)) == data


@pytest.mark.parametrize("case", json_cases("data-model/data-model-invalid.json", "note"))
def test_invalid_fixture_is_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(DataModelError):
        json_to_data(case["json"])


@pytest.mark.parametrize("case", json_cases("data-model/data-model-fixtures.json"))
def test_fixture_json_survives_a_text_round_trip(case: dict[str, Any]) -> None:
    """Through `json.dumps`/`json.loads`, as it would over HTTP."""
    text = json.dumps(data_to_json(json_to_data(case["json"])))
    assert json.loads(text) == case["json"]


# -- conversion rules -------------------------------------------------------------------------


def test_links_bytes_and_blobs_convert() -> None:
    data = json_to_data(
        {"l": {"$link": CBOR_LINK}, "b": {"$bytes": "aGk"}, "blob": BLOB_JSON, "n": [1, None]}
    )
    assert data["l"] == CID.parse(CBOR_LINK)
    assert type(data["l"]) is CID
    assert data["b"] == b"hi"
    assert data["blob"] == {**BLOB_JSON, "ref": CID.parse(RAW_LINK)}
    assert data["n"] == [1, None]


def test_integral_float_becomes_int() -> None:
    data = json_to_data({"a": 123.0, "b": -0.0, "c": 1e3})
    assert data == {"a": 123, "b": 0, "c": 1000}
    assert all(type(value) is int for value in data.values())


def test_bytes_padding_is_optional() -> None:
    assert json_to_data({"p": {"$bytes": "aGk="}}) == json_to_data({"p": {"$bytes": "aGk"}})


def test_output_bytes_are_unpadded_standard_base64() -> None:
    assert data_to_json({"b": b"\xfb\xff"}) == {"b": {"$bytes": "+/8"}}


def test_any_json_value_converts_with_json_value_to_data() -> None:
    assert json_value_to_data([{"$link": CBOR_LINK}, 1, "x"]) == [CID.parse(CBOR_LINK), 1, "x"]
    assert json_value_to_data("blah") == "blah"


INVALID_JSON: dict[str, Any] = {
    "non-integral float": {"a": 0.5},
    "nan": {"a": float("nan")},
    "infinity": {"a": float("inf")},
    "int above int64": {"a": 2**63},
    "int below int64": {"a": -(2**63) - 1},
    "float too big for int64": {"a": 1e19},
    "link with padding": {"a": {"$link": CBOR_LINK + "="}},
    "link upper case": {"a": {"$link": CBOR_LINK.upper()}},
    "link empty": {"a": {"$link": ""}},
    "link null": {"a": {"$link": None}},
    "link base58 CIDv1": {"a": {"$link": "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7"}},
    "link with whitespace": {"a": {"$link": " " + CBOR_LINK}},
    "bytes url-safe alphabet": {"a": {"$bytes": "-_8"}},
    "bytes whitespace": {"a": {"$bytes": "aG k"}},
    "bytes bad padding": {"a": {"$bytes": "a==="}},
    "bytes null": {"a": {"$bytes": None}},
    "bytes and link together": {"a": {"$bytes": "aGk", "$link": CBOR_LINK}},
    "non-string key": {1: "a"},
    "tuple value": {"a": (1, 2)},
    "set value": {"a": {1}},
    "bytes value (not JSON)": {"a": b"x"},
    "blob with float size": {"b": {**BLOB_JSON, "size": 1.5}},
    "blob with negative size": {"b": {**BLOB_JSON, "size": -1}},
    "blob with boolean size": {"b": {**BLOB_JSON, "size": True}},
    "blob with extra key": {"b": {**BLOB_JSON, "extra": 1}},
    "blob ref not a link": {"b": {**BLOB_JSON, "ref": RAW_LINK}},
    "blob ref an invalid link": {"b": {**BLOB_JSON, "ref": {"$link": "bafy"}}},
    "blob mimeType without slash": {"b": {**BLOB_JSON, "mimeType": "jpeg"}},
    "blob mimeType not a string": {"b": {**BLOB_JSON, "mimeType": 1}},
    "$type list": {"$type": ["a"]},
    "nested empty $type": {"a": [{"$type": ""}]},
    "key too long": {"k" * 8193: 1},
}


@pytest.mark.parametrize("obj", INVALID_JSON.values(), ids=list(INVALID_JSON))
def test_json_to_data_rejects(obj: Any) -> None:
    with pytest.raises(DataModelError):
        json_to_data(obj)


def _nested(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return {"a": value}


def test_nesting_limit() -> None:
    json_to_data(_nested(MAX_DEPTH))  # top-level map at level 0, innermost list at MAX_DEPTH
    with pytest.raises(DataModelError):
        json_to_data(_nested(MAX_DEPTH + 1))
    assert json_to_data(_nested(40), max_depth=40) == _nested(40)


@pytest.mark.parametrize("value", [{"$link": "x"}, {"a": {"$bytes": 1}}, {"a": 1.5}, {1: 2}])
def test_data_to_json_rejects_values_without_a_json_form(value: Any) -> None:
    with pytest.raises(DataModelError):
        data_to_json(value)


def test_data_to_json_bounds_recursion() -> None:
    with pytest.raises(DataModelError):
        data_to_json(_nested(2000))


@pytest.mark.parametrize("text", ["", "aGk", "aGk=", "+/8=", "AAAA"])
def test_decode_base64_accepts(text: str) -> None:
    decode_base64(text)


# -- BlobRef ----------------------------------------------------------------------------------


def test_blobref_round_trips_both_forms() -> None:
    blob = BlobRef.from_json(BLOB_JSON)
    assert blob == BlobRef(CID.parse(RAW_LINK), "image/jpeg", 10000)
    assert not blob.is_legacy
    assert blob.to_json() == BLOB_JSON
    assert BlobRef.from_data(blob.to_data()) == blob
    assert json_to_data({"b": BLOB_JSON})["b"] == blob.to_data()


def test_blob_ref_may_use_any_codec() -> None:
    """The interop record fixtures carry blobs whose ref is a dag-cbor CID; they are valid."""
    blob = BlobRef.from_json({**BLOB_JSON, "ref": {"$link": CBOR_LINK}})
    assert blob.ref == CID.parse(CBOR_LINK)


def test_legacy_blobref_is_read_only() -> None:
    blob = BlobRef.from_data({"cid": RAW_LINK, "mimeType": "image/png"})
    assert blob.is_legacy
    assert blob.ref == CID.parse(RAW_LINK)
    assert blob.mime_type == "image/png"
    with pytest.raises(DataModelError):
        blob.to_data()


@pytest.mark.parametrize(
    "value",
    [
        {"cid": "nope", "mimeType": "image/png"},
        {"cid": RAW_LINK, "mimeType": ""},
        {"cid": RAW_LINK},
        {"$type": "blob"},
        {"$type": "app.bsky.embed.images"},
        [BLOB_JSON],
        None,
    ],
)
def test_blobref_rejects(value: Any) -> None:
    with pytest.raises(DataModelError):
        BlobRef.from_data(value)


def test_iter_blob_refs_finds_nested_blobs_in_order() -> None:
    first = BlobRef.from_json(BLOB_JSON)
    second = BlobRef(CID.for_raw(b"two"), "image/png", 3)
    legacy = {"cid": RAW_LINK, "mimeType": "image/gif"}
    record = {
        "embed": {"images": [{"image": first.to_data()}, {"image": second.to_data()}]},
        "old": legacy,
        "broken": {"$type": "blob", "size": 1},
    }
    assert list(iter_blob_refs(record)) == [first, second]
    found = list(iter_blob_refs(record, include_legacy=True))
    assert found == [first, second, BlobRef.from_data(legacy)]


# -- properties -------------------------------------------------------------------------------


@given(data_model_values())
def test_json_form_round_trip(value: Any) -> None:
    obj = data_to_json(value)
    assert json_value_to_data(json.loads(json.dumps(obj)), max_depth=100) == value


@given(data_model_maps())
def test_json_form_and_cbor_agree(value: dict[str, Any]) -> None:
    """JSON -> data -> CBOR -> data -> JSON returns the same JSON."""
    obj = data_to_json(value)
    block = dagcbor.encode(json_to_data(obj, max_depth=100))
    assert data_to_json(dagcbor.decode(block)) == obj


@given(data_model_values())
def test_block_to_json_equals_decode_then_data_to_json(value: Any) -> None:
    """Both paths: blessed-only links take cbrrr's C JSON form, any other CID the exact path."""
    block = dagcbor.encode(value)
    assert block_to_json(block) == data_to_json(value)


@pytest.mark.parametrize("hex_bytes", REJECTED.values(), ids=list(REJECTED))
def test_block_to_json_is_as_strict_as_decode(hex_bytes: str) -> None:
    with pytest.raises(DagCborError):
        block_to_json(bytes.fromhex(hex_bytes))


def test_block_to_json_checks_int64_on_the_fast_path() -> None:
    # Only blessed links, so cbrrr's C JSON form runs; the integer is beyond int64.
    block = cbrrr.encode_dag_cbor({"a": CID.parse(CBOR_LINK), "n": 2**63}, cid_type=CID)
    with pytest.raises(DagCborError):
        block_to_json(block)


@pytest.mark.parametrize("key", ["$link", "$bytes"])
def test_block_to_json_refuses_reserved_keys(key: str) -> None:
    block = dagcbor.encode({"x": {key: "bafy"}})
    with pytest.raises(DataModelError):
        block_to_json(block)
