"""The repository's lexicon documents: each one is valid, sits at its NSID path, and resolves.

Then spot checks that validation through the loaded catalog agrees with the published schemas on
the record types the PDS validates (limits, formats, blob constraints, open knownValues).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atcore import nsids
from atcore.datajson import json_to_data
from atcore.lexicon import Catalog, ValidationError, parse_document
from atcore.lexicon.schema import RecordDef

LEXICON_DIR = Path(__file__).resolve().parent.parent / "lexicons"
LEXICON_FILES = sorted(LEXICON_DIR.rglob("*.json"))

BLOB_CID = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
RECORD_CID = "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454"
ALICE = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
POST_URI = f"at://{ALICE}/app.bsky.feed.post/3jwdwj2ctlk26"
CREATED_AT = "2024-05-01T12:00:00.000Z"


def _file_id(path: Path) -> str:
    return str(path.relative_to(LEXICON_DIR).with_suffix("")).replace("/", ".")


def _defines_record(path: Path) -> bool:
    main = json.loads(path.read_text(encoding="utf-8"))["defs"].get("main", {})
    return isinstance(main, dict) and main.get("type") == "record"


RECORD_FILES = [path for path in LEXICON_FILES if _defines_record(path)]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_directory(LEXICON_DIR)


def test_lexicon_directory_is_not_empty() -> None:
    assert len(LEXICON_FILES) >= 20


@pytest.mark.parametrize("path", LEXICON_FILES, ids=_file_id)
def test_document_is_valid_and_named_by_its_path(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    document = parse_document(raw)
    assert document.id == _file_id(path)
    assert raw["lexicon"] == 1


@pytest.mark.parametrize("path", RECORD_FILES, ids=_file_id)
def test_record_types_insist_on_their_own_type(path: Path, catalog: Catalog) -> None:
    """A record type accepts only values whose `$type` is its own NSID."""
    nsid = _file_id(path)
    assert isinstance(catalog.get(nsid).defs["main"], RecordDef)
    with pytest.raises(ValidationError):
        catalog.validate_record(nsid, {"$type": "app.example.notThis"})
    with pytest.raises(ValidationError):
        catalog.validate_record(nsid, {})


def test_every_reference_resolves(catalog: Catalog) -> None:
    assert catalog.reference_problems() == []
    assert len(catalog) == len(LEXICON_FILES)


# -- spot checks of record validation ------------------------------------------------------------
def _blob(mime: str, size: int = 1234) -> dict[str, Any]:
    return {"$type": "blob", "ref": {"$link": BLOB_CID}, "mimeType": mime, "size": size}


def _strong_ref() -> dict[str, str]:
    return {"uri": POST_URI, "cid": RECORD_CID}


def _post(**fields: Any) -> dict[str, Any]:
    return {"$type": nsids.BSKY_FEED_POST, "text": "hello", "createdAt": CREATED_AT, **fields}


FULL_POST = _post(
    text="hi @alice.test see https://example.com #skyspot",
    facets=[
        {
            "index": {"byteStart": 3, "byteEnd": 14},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": ALICE}],
        },
        {
            "index": {"byteStart": 19, "byteEnd": 38},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}],
        },
        {
            "index": {"byteStart": 39, "byteEnd": 47},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "skyspot"}],
        },
    ],
    reply={"root": _strong_ref(), "parent": _strong_ref()},
    embed={
        "$type": "app.bsky.embed.recordWithMedia",
        "record": {"$type": "app.bsky.embed.record", "record": _strong_ref()},
        "media": {
            "$type": "app.bsky.embed.images",
            "images": [
                {
                    "image": _blob("image/png"),
                    "alt": "a map",
                    "aspectRatio": {"width": 4, "height": 3},
                }
            ],
        },
    },
    langs=["en", "pt-BR"],
    labels={"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "nudity"}]},
    tags=["checkin"],
)

VALID_RECORDS = [
    pytest.param(nsids.BSKY_FEED_POST, _post(), id="post-minimal"),
    pytest.param(nsids.BSKY_FEED_POST, _post(text=""), id="post-empty-text"),
    pytest.param(nsids.BSKY_FEED_POST, FULL_POST, id="post-everything"),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(
            embed={
                "$type": "app.bsky.embed.external",
                "external": {
                    "uri": "https://example.com/a",
                    "title": "A",
                    "description": "",
                    "thumb": _blob("image/jpeg"),
                },
            }
        ),
        id="post-external",
    ),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(embed={"$type": "app.bsky.embed.video", "video": _blob("video/mp4", 10_000_000)}),
        id="post-video",
    ),
    pytest.param(
        nsids.BSKY_ACTOR_PROFILE,
        {
            "$type": nsids.BSKY_ACTOR_PROFILE,
            "displayName": "Alice",
            "description": "checks in everywhere",
            "avatar": _blob("image/jpeg", 900_000),
            "pinnedPost": _strong_ref(),
        },
        id="profile",
    ),
    pytest.param(nsids.BSKY_ACTOR_PROFILE, {"$type": nsids.BSKY_ACTOR_PROFILE}, id="profile-empty"),
    pytest.param(
        nsids.BSKY_FEED_GENERATOR,
        {
            "$type": nsids.BSKY_FEED_GENERATOR,
            "did": "did:web:feeds.example.com",
            "displayName": "Nearby",
            "contentMode": "app.example.someFutureMode",
            "createdAt": CREATED_AT,
        },
        id="generator-open-known-values",
    ),
    pytest.param(
        nsids.BSKY_FEED_LIKE,
        {"$type": nsids.BSKY_FEED_LIKE, "subject": _strong_ref(), "createdAt": CREATED_AT},
        id="like",
    ),
    pytest.param(
        nsids.BSKY_FEED_REPOST,
        {"$type": nsids.BSKY_FEED_REPOST, "subject": _strong_ref(), "createdAt": CREATED_AT},
        id="repost",
    ),
    pytest.param(
        nsids.BSKY_GRAPH_FOLLOW,
        {"$type": nsids.BSKY_GRAPH_FOLLOW, "subject": ALICE, "createdAt": CREATED_AT},
        id="follow",
    ),
]


@pytest.mark.parametrize(("nsid", "record"), VALID_RECORDS)
def test_valid_records_pass(catalog: Catalog, nsid: str, record: dict[str, Any]) -> None:
    catalog.validate_record(nsid, json_to_data(record))


INVALID_RECORDS = [
    pytest.param(nsids.BSKY_FEED_POST, _post(text="é" * 301), "record/text", id="graphemes"),
    pytest.param(nsids.BSKY_FEED_POST, _post(text="a" * 3001), "record/text", id="text-bytes"),
    pytest.param(
        nsids.BSKY_FEED_POST, {"$type": nsids.BSKY_FEED_POST, "text": "x"}, "record", id="no-date"
    ),
    pytest.param(nsids.BSKY_FEED_POST, _post(createdAt="yesterday"), "record/createdAt", id="date"),
    pytest.param(nsids.BSKY_FEED_POST, _post(langs=["en", "fr", "de", "es"]), "record/langs"),
    pytest.param(nsids.BSKY_FEED_POST, _post(langs=["english!"]), "record/langs/0", id="lang"),
    pytest.param(nsids.BSKY_FEED_POST, _post(tags=["t"] * 9), "record/tags", id="tags"),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(reply={"root": _strong_ref()}),
        "record/reply",
        id="reply-without-parent",
    ),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(
            embed={
                "$type": "app.bsky.embed.images",
                "images": [{"image": _blob("image/png"), "alt": ""}] * 5,
            }
        ),
        "record/embed/images",
        id="five-images",
    ),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(
            embed={
                "$type": "app.bsky.embed.images",
                "images": [{"image": _blob("image/png", 2_000_001), "alt": ""}],
            }
        ),
        "record/embed/images/0/image",
        id="image-too-big",
    ),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(embed={"$type": "app.bsky.embed.video", "video": _blob("video/webm")}),
        "record/embed/video",
        id="video-mime",
    ),
    pytest.param(
        nsids.BSKY_FEED_POST,
        _post(
            facets=[
                {
                    "index": {"byteStart": -1, "byteEnd": 2},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}],
                }
            ]
        ),
        "record/facets/0/index/byteStart",
        id="facet-negative",
    ),
    pytest.param(
        nsids.BSKY_ACTOR_PROFILE,
        {"$type": nsids.BSKY_ACTOR_PROFILE, "avatar": _blob("image/gif")},
        "record/avatar",
        id="avatar-gif",
    ),
    pytest.param(
        nsids.BSKY_ACTOR_PROFILE,
        {"$type": nsids.BSKY_ACTOR_PROFILE, "displayName": "x" * 65},
        "record/displayName",
        id="display-name",
    ),
    pytest.param(
        nsids.BSKY_FEED_GENERATOR,
        {"$type": nsids.BSKY_FEED_GENERATOR, "displayName": "Nearby", "createdAt": CREATED_AT},
        "record",
        id="generator-without-did",
    ),
    pytest.param(
        nsids.BSKY_FEED_GENERATOR,
        {
            "$type": nsids.BSKY_FEED_GENERATOR,
            "did": "feeds.example.com",
            "displayName": "Nearby",
            "createdAt": CREATED_AT,
        },
        "record/did",
        id="generator-did-format",
    ),
    pytest.param(
        nsids.BSKY_FEED_LIKE,
        {"$type": nsids.BSKY_FEED_LIKE, "subject": {"uri": POST_URI}, "createdAt": CREATED_AT},
        "record/subject",
        id="like-without-cid",
    ),
    pytest.param(
        nsids.BSKY_GRAPH_FOLLOW,
        {"$type": nsids.BSKY_GRAPH_FOLLOW, "subject": "alice.test", "createdAt": CREATED_AT},
        "record/subject",
        id="follow-handle",
    ),
]


@pytest.mark.parametrize(("nsid", "record", "path"), INVALID_RECORDS)
def test_invalid_records_fail_at_the_right_path(
    catalog: Catalog, nsid: str, record: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate_record(nsid, json_to_data(record))
    assert caught.value.path.startswith(path), caught.value.message


@pytest.mark.parametrize(
    ("nsid", "rkey", "ok"),
    [
        (nsids.BSKY_ACTOR_PROFILE, "self", True),
        (nsids.BSKY_ACTOR_PROFILE, "other", False),
        (nsids.BSKY_FEED_POST, "3jwdwj2ctlk26", True),
        (nsids.BSKY_FEED_POST, "not-a-tid", False),
        (nsids.BSKY_FEED_GENERATOR, "nearby", True),
    ],
)
def test_record_keys(catalog: Catalog, nsid: str, rkey: str, ok: bool) -> None:
    if ok:
        catalog.validate_record_key(nsid, rkey)
    else:
        with pytest.raises(ValidationError):
            catalog.validate_record_key(nsid, rkey)


def test_put_preferences_input(catalog: Catalog) -> None:
    good = {
        "preferences": [
            {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": False},
            {"$type": "app.bsky.actor.defs#savedFeedsPrefV2", "items": []},
            {"$type": "app.example.unknownPref", "anything": 1},
        ]
    }
    catalog.validate_input(nsids.BSKY_ACTOR_PUT_PREFERENCES, good)
    with pytest.raises(ValidationError) as caught:
        catalog.validate_input(nsids.BSKY_ACTOR_PUT_PREFERENCES, {"preferences": {}})
    assert caught.value.path == "input/preferences"
    bad_pref = {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": "no"}
    with pytest.raises(ValidationError) as caught:
        catalog.validate_input(nsids.BSKY_ACTOR_PUT_PREFERENCES, {"preferences": [bad_pref]})
    assert caught.value.path == "input/preferences/0/enabled"


def test_get_feed_params(catalog: Catalog) -> None:
    feed = f"at://{ALICE}/app.bsky.feed.generator/nearby"
    params = catalog.decode_params(nsids.BSKY_FEED_GET_FEED, [("feed", feed)])
    assert params == {"feed": feed, "limit": 50}
    with pytest.raises(ValidationError):
        catalog.decode_params(nsids.BSKY_FEED_GET_FEED, [("feed", feed), ("limit", "0")])
    with pytest.raises(ValidationError):
        catalog.decode_params(nsids.BSKY_FEED_GET_FEED, [("feed", "https://example.com")])
