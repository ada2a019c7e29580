"""Write preparation: rkeys, $type, data-model limits and the `validate` flag's three states."""

from __future__ import annotations

from typing import Any

import pytest

from atcore import dagcbor
from atcore.cid import CID
from atcore.nsids import BSKY_FEED_POST
from atcore.syntax import is_valid_tid
from atcore.tid import TidClock
from pds.repo.errors import InvalidWrite
from pds.repo.prepare import MAX_RECORD_BYTES, WritePreparer
from tests.pds.repo_support import load_catalog

DID = "did:plc:preparerpreparerprepare"
CUSTOM = "com.example.note"


@pytest.fixture(scope="module")
def prep() -> WritePreparer:
    return WritePreparer(load_catalog(), TidClock())


def post(**fields: Any) -> dict[str, Any]:
    return {"text": "hello", "createdAt": "2024-05-01T12:00:00.000Z", **fields}


def test_generated_rkeys_are_unique_tids(prep: WritePreparer) -> None:
    rkeys = [prep.create(DID, CUSTOM, {}).rkey for _ in range(500)]
    assert len(set(rkeys)) == 500
    assert all(is_valid_tid(rkey) for rkey in rkeys)


def test_missing_type_is_filled_in_and_the_cid_covers_it(prep: WritePreparer) -> None:
    write = prep.create(DID, CUSTOM, {"a": 1})
    assert write.record == {"$type": CUSTOM, "a": 1}
    assert write.block == dagcbor.encode({"$type": CUSTOM, "a": 1})
    assert write.cid == CID.for_dag_cbor(write.block)
    assert write.uri == f"at://{DID}/{CUSTOM}/{write.rkey}"


@pytest.mark.parametrize(
    ("validate", "collection", "record", "status"),
    [
        (None, BSKY_FEED_POST, post(), "valid"),
        (True, BSKY_FEED_POST, post(), "valid"),
        (None, CUSTOM, {"anything": [1, "two"]}, "unknown"),
        (False, BSKY_FEED_POST, {"text": 5}, None),
        (False, CUSTOM, {}, None),
    ],
)
def test_validation_status(
    prep: WritePreparer, validate: bool | None, collection: str, record: Any, status: str | None
) -> None:
    write = prep.create(DID, collection, record, validate=validate)
    assert write.validation_status == status


@pytest.mark.parametrize(
    ("collection", "record", "kwargs", "message"),
    [
        (CUSTOM, {}, {"validate": True}, "Unknown lexicon type"),
        (BSKY_FEED_POST, {"text": 5, "createdAt": "2024-05-01T12:00:00Z"}, {}, "record/text"),
        (BSKY_FEED_POST, post(), {"rkey": "self.", "validate": True}, "Invalid record key"),
        (CUSTOM, {"$type": "com.example.other"}, {}, "Invalid \\$type"),
        (CUSTOM, {"x": 1.5}, {}, "Invalid record"),
        (CUSTOM, {"x": 2**63}, {}, "Invalid record"),
        (CUSTOM, {"x": {"$link": "not a cid"}}, {}, "Invalid record"),
        (CUSTOM, {}, {"rkey": "a/b"}, "Invalid record key"),
        (CUSTOM, {}, {"rkey": ".."}, "Invalid record key"),
        ("not-an-nsid", {}, {}, "Invalid collection"),
        (CUSTOM, "a string", {}, "must be an object"),
        (
            CUSTOM,
            {
                "blob": {
                    "cid": "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
                    "mimeType": "image/png",
                }
            },
            {},
            "Legacy blobs",
        ),
        (CUSTOM, {"big": "x" * MAX_RECORD_BYTES}, {}, "Record too large"),
    ],
)
def test_refused_writes(
    prep: WritePreparer, collection: str, record: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidWrite, match=message):
        prep.create(DID, collection, record, **kwargs)


def test_integral_float_is_the_same_json_number_as_the_integer(prep: WritePreparer) -> None:
    assert prep.create(DID, CUSTOM, {"n": 2.0}).record == {"$type": CUSTOM, "n": 2}


def test_blob_refs_are_extracted(prep: WritePreparer) -> None:
    link = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    blob = {"$type": "blob", "ref": {"$link": link}, "mimeType": "image/png", "size": 3}
    write = prep.put(DID, CUSTOM, "self", {"a": [blob], "b": {"c": blob}})
    assert [str(ref.ref) for ref in write.blobs] == [link, link]
    assert write.upsert
