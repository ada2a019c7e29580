"""Record validation: the interop record fixtures and each data rule, with error paths."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from atcore.cid import CID
from atcore.datajson import json_to_data
from atcore.lexicon import (
    Catalog,
    InvalidLexiconDocument,
    LexiconNotFound,
    ValidationError,
)
from tests.interop import json_cases

FIXTURE_NSID = "example.lexicon.record"


@pytest.fixture(scope="module")
def fixture_catalog(interop: Path) -> Catalog:
    return Catalog.from_directory(interop / "lexicon" / "catalog")


@pytest.mark.parametrize("case", json_cases("lexicon/record-data-valid.json", id_key="name"))
def test_interop_valid_record(fixture_catalog: Catalog, case: dict[str, Any]) -> None:
    record = json_to_data(case["data"])
    fixture_catalog.validate_record(FIXTURE_NSID, record)
    fixture_catalog.validate_record_key(FIXTURE_NSID, case["rkey"])


@pytest.mark.parametrize("case", json_cases("lexicon/record-data-invalid.json", id_key="name"))
def test_interop_invalid_record(fixture_catalog: Catalog, case: dict[str, Any]) -> None:
    record = json_to_data(case["data"])
    with pytest.raises(ValidationError) as info:
        fixture_catalog.validate_record(FIXTURE_NSID, record)
    assert info.value.path.startswith("record")


# -- a catalog written for these tests -----------------------------------------------------------

RAW_CID = CID.for_raw(b"hello")
CHECKIN = "com.example.checkin"


def doc(nsid: str, defs: dict[str, Any]) -> dict[str, Any]:
    return {"lexicon": 1, "id": nsid, "defs": defs}


CATALOG_DOCS = [
    doc(
        CHECKIN,
        {
            "main": {
                "type": "record",
                "key": "tid",
                "record": {
                    "type": "object",
                    "required": ["text", "locations", "createdAt"],
                    "nullable": ["note"],
                    "properties": {
                        "text": {"type": "string", "maxLength": 30, "maxGraphemes": 10},
                        "note": {"type": "string"},
                        "count": {"type": "integer", "default": 1},
                        "locations": {
                            "type": "array",
                            "maxLength": 3,
                            "items": {"type": "ref", "ref": "com.example.defs#geo"},
                        },
                        "createdAt": {"type": "string", "format": "datetime"},
                        "embed": {"type": "union", "refs": ["#image", "com.example.other"]},
                        "pick": {
                            "type": "union",
                            "refs": ["com.example.defs#geo"],
                            "closed": True,
                        },
                        "image": {"type": "blob", "accept": ["image/*"], "maxSize": 1000},
                        "anyBlob": {"type": "blob"},
                        "extra": {"type": "unknown"},
                        "link": {"type": "cid-link"},
                        "raw": {"type": "bytes", "maxLength": 4},
                        "flag": {"type": "boolean", "const": True},
                        "label": {"type": "ref", "ref": "com.example.defs#label"},
                        "missing": {"type": "ref", "ref": "com.example.absent#thing"},
                        "tokenRef": {"type": "ref", "ref": "com.example.defs#blue"},
                    },
                },
            },
            "image": {
                "type": "object",
                "required": ["alt"],
                "properties": {"alt": {"type": "string"}},
            },
        },
    ),
    doc(
        "com.example.defs",
        {
            "geo": {
                "type": "object",
                "required": ["latitude"],
                "properties": {"latitude": {"type": "string"}, "name": {"type": "string"}},
            },
            "label": {"type": "string", "knownValues": ["com.example.defs#blue"]},
            "blue": {"type": "token"},
        },
    ),
    doc(
        "com.example.other",
        {
            "main": {
                "type": "record",
                "key": "literal:self",
                "record": {
                    "type": "object",
                    "required": ["n"],
                    "properties": {"n": {"type": "integer"}},
                },
            }
        },
    ),
    doc(
        "com.example.nsidKeyed",
        {
            "main": {
                "type": "record",
                "key": "nsid",
                "record": {"type": "object", "properties": {}},
            }
        },
    ),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(CATALOG_DOCS)


def checkin(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "$type": CHECKIN,
        "text": "hi",
        "locations": [{"latitude": "1.5"}],
        "createdAt": "2024-05-01T12:00:00.000Z",
    }
    record.update(fields)
    return record


def blob(mime: str = "image/png", size: int = 10, ref: CID = RAW_CID) -> dict[str, Any]:
    return {"$type": "blob", "ref": ref, "mimeType": mime, "size": size}


VALID_RECORDS: dict[str, dict[str, Any]] = {
    "minimal": checkin(),
    "nullable null": checkin(note=None),
    "undeclared fields ignored": checkin(whatever=[1, 2], **{"$unknownDollar": "x"}),
    "ascii at byte limit": checkin(text="a" * 10),
    "graphemes count clusters": checkin(text="🏳️‍🌈" * 2),  # 2 graphemes, 28 bytes
    "union variant local": checkin(embed={"$type": f"{CHECKIN}#image", "alt": "x"}),
    "union record variant": checkin(embed={"$type": "com.example.other", "n": 1}),
    "union main suffix accepted": checkin(embed={"$type": "com.example.other#main", "n": 1}),
    "open union unknown type": checkin(embed={"$type": "com.example.future#thing", "z": 1}),
    "closed union member": checkin(pick={"$type": "com.example.defs#geo", "latitude": "0"}),
    "blob accepted": checkin(image=blob()),
    "blob mime parameters and case": checkin(image=blob("IMAGE/PNG; q=1")),
    "blob any codec": checkin(anyBlob=blob("text/plain", ref=CID.for_dag_cbor(b"\xa0"))),
    "legacy blob": checkin(
        image={
            "cid": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy",
            "mimeType": "image/jpeg",
        }
    ),
    "unknown object": checkin(
        extra={"$type": "com.example.x", "deep": [{"b": b"x", "c": RAW_CID}]}
    ),
    "unknown with nested blob": checkin(extra={"pic": blob()}),
    "cid link": checkin(link=RAW_CID),
    "bytes": checkin(raw=b"\x00\x01\x02\x03"),
    "const boolean": checkin(flag=True),
    "ref to string def": checkin(label="anything-known-values-are-open"),
}


@pytest.mark.parametrize("record", VALID_RECORDS.values(), ids=VALID_RECORDS.keys())
def test_valid_record(catalog: Catalog, record: dict[str, Any]) -> None:
    catalog.validate_record(CHECKIN, record)


INVALID_RECORDS: dict[str, tuple[Any, str, str]] = {
    "not an object": ([], "record", "must be an object"),
    "missing $type": ({"text": "hi"}, "record/$type", "must be a string"),
    "wrong $type": (checkin(**{"$type": "com.example.other"}), "record/$type", "must be"),
    "$type with #main": (checkin(**{"$type": f"{CHECKIN}#main"}), "record/$type", "must be"),
    "missing required": (
        {k: v for k, v in checkin().items() if k != "createdAt"},
        "record",
        'must have the property "createdAt"',
    ),
    "null not nullable": (checkin(text=None), "record/text", "must be a string"),
    "too many bytes": (checkin(text="é" * 16), "record/text", "longer than 30 bytes"),
    "too many graphemes": (checkin(text="abcdefghijk"), "record/text", "longer than 10 graphemes"),
    "nested item path": (
        checkin(locations=[{"latitude": "1"}, {"latitude": 2}]),
        "record/locations/1/latitude",
        "must be a string",
    ),
    "nested required": (
        checkin(locations=[{"name": "x"}]),
        "record/locations/0",
        'must have the property "latitude"',
    ),
    "array too long": (
        checkin(locations=[{"latitude": "1"}] * 4),
        "record/locations",
        "more than 3 elements",
    ),
    "tuple is not an array": (checkin(locations=({"latitude": "1"},)), "record/locations", "array"),
    "bad datetime": (checkin(createdAt="2024-05-01"), "record/createdAt", "datetime"),
    "bool is not an integer": (checkin(count=True), "record/count", "must be an integer"),
    "float is not an integer": (checkin(count=1.0), "record/count", "must be an integer"),
    "integer over 64 bits": (checkin(count=2**63), "record/count", "must be an integer"),
    "union without $type": (checkin(embed={"alt": "x"}), "record/embed", '"$type"'),
    "union variant invalid": (
        checkin(embed={"$type": f"{CHECKIN}#image"}),
        "record/embed",
        'must have the property "alt"',
    ),
    "open union junk type": (checkin(embed={"$type": "not a type"}), "record/embed", "NSID"),
    "closed union outsider": (
        checkin(pick={"$type": "com.example.other", "n": 1}),
        "record/pick",
        "not one of",
    ),
    "blob wrong mime": (checkin(image=blob("text/plain")), "record/image", "not accepted"),
    "blob too big": (checkin(image=blob(size=1001)), "record/image", "larger than the 1000"),
    "blob zero size": (checkin(image=blob(size=0)), "record/image", "positive size"),
    "blob extra key": (checkin(image={**blob(), "x": 1}), "record/image", "must be a blob"),
    "blob string ref": (checkin(image={**blob(), "ref": str(RAW_CID)}), "record/image", "blob"),
    "blob empty mime": (checkin(anyBlob=blob("")), "record/anyBlob", "must be a blob"),
    "legacy blob bad cid": (
        checkin(image={"cid": "nope", "mimeType": "image/png"}),
        "record/image",
        "must be a blob",
    ),
    "unknown scalar": (checkin(extra=False), "record/extra", "must be an object"),
    "unknown bytes": (checkin(extra=b"123"), "record/extra", "must be an object"),
    "unknown cid": (checkin(extra=RAW_CID), "record/extra", "must be an object"),
    "unknown is a blob": (checkin(extra=blob()), "record/extra", "not a blob"),
    "unknown nested float": (
        checkin(extra={"a": [{"b": 1.5}]}),
        "record/extra/a/0/b",
        "float",
    ),
    "unknown nested bad blob": (
        checkin(extra={"a": {"$type": "blob", "ref": "x"}}),
        "record/extra/a",
        "must be a blob",
    ),
    "cid link as string": (checkin(link=str(RAW_CID)), "record/link", "CID link"),
    "bytes too long": (checkin(raw=b"12345"), "record/raw", "larger than 4 bytes"),
    "bytearray is not bytes": (checkin(raw=bytearray(b"1")), "record/raw", "must be bytes"),
    "const boolean": (checkin(flag=False), "record/flag", "must be true"),
}


@pytest.mark.parametrize(
    ("record", "path", "reason"), INVALID_RECORDS.values(), ids=INVALID_RECORDS.keys()
)
def test_invalid_record(catalog: Catalog, record: Any, path: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        catalog.validate_record(CHECKIN, record)
    assert info.value.path == path
    assert reason in info.value.reason
    assert str(info.value) == f"{path} {info.value.reason}"


def test_validation_does_not_mutate_or_fill_the_record(catalog: Catalog) -> None:
    record = checkin()
    before = copy.deepcopy(record)
    assert catalog.validate_record(CHECKIN, record) is None  # type: ignore[func-returns-value]
    assert record == before  # the `count` default is not written into a stored record


def test_validate_value_fills_defaults_without_mutating(catalog: Catalog) -> None:
    record = checkin()
    filled = catalog.validate_value(CHECKIN, record)
    assert filled["count"] == 1
    assert "count" not in record


def test_unresolvable_ref_is_a_lexicon_error_not_a_data_error(catalog: Catalog) -> None:
    with pytest.raises(LexiconNotFound, match=r"com\.example\.absent#thing"):
        catalog.validate_record(CHECKIN, checkin(missing={"a": 1}))
    with pytest.raises(InvalidLexiconDocument, match="token"):
        catalog.validate_record(CHECKIN, checkin(tokenRef="x"))


def test_unknown_record_type(catalog: Catalog) -> None:
    with pytest.raises(LexiconNotFound):
        catalog.validate_record("com.example.nope", {"$type": "com.example.nope"})
    with pytest.raises(LexiconNotFound):
        catalog.validate_record("com.example.defs", {"$type": "com.example.defs"})


@pytest.mark.parametrize(
    ("nsid", "rkey", "ok"),
    [
        (CHECKIN, "3jzfcijpj2z2a", True),
        (CHECKIN, "self", False),
        ("com.example.other", "self", True),
        ("com.example.other", "selfie", False),
        ("com.example.nsidKeyed", "com.example.thing", True),
        ("com.example.nsidKeyed", "thing", False),
        ("com.example.nsidKeyed", "..", False),
    ],
)
def test_record_key_types(catalog: Catalog, nsid: str, rkey: str, ok: bool) -> None:
    if ok:
        catalog.validate_record_key(nsid, rkey)
    else:
        with pytest.raises(ValidationError) as info:
            catalog.validate_record_key(nsid, rkey)
        assert info.value.path == "rkey"
