"""XRPC validation: query parameters (typed and from the query string), bodies, stream messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atcore.lexicon import Catalog, LexiconNotFound, ValidationError

GET_FEED = "com.example.getFeed"
PUT_THING = "com.example.putThing"
STREAM = "com.example.stream"
CLOSED_STREAM = "com.example.closedStream"

PARAMS = {
    "type": "params",
    "required": ["feed"],
    "properties": {
        "feed": {"type": "string", "format": "at-uri"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
        "reverse": {"type": "boolean", "default": False},
        "cursor": {"type": "string"},
        "tags": {"type": "array", "maxLength": 2, "items": {"type": "string", "maxLength": 5}},
        "ids": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    },
}
THING = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "size": {"type": "integer", "default": 3}},
}


def doc(nsid: str, main: dict[str, Any], **defs: Any) -> dict[str, Any]:
    return {"lexicon": 1, "id": nsid, "defs": {"main": main, **defs}}


def stream(nsid: str, closed: bool) -> dict[str, Any]:
    event = {"type": "object", "required": ["seq"], "properties": {"seq": {"type": "integer"}}}
    union = {"type": "union", "refs": ["#event"], "closed": closed}
    return doc(nsid, {"type": "subscription", "message": {"schema": union}}, event=event)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(
        [
            doc(
                GET_FEED,
                {
                    "type": "query",
                    "parameters": PARAMS,
                    "output": {
                        "encoding": "application/json",
                        "schema": {"type": "ref", "ref": "#thing"},
                    },
                },
                thing=THING,
            ),
            doc(
                PUT_THING,
                {
                    "type": "procedure",
                    "input": {"encoding": "application/json", "schema": THING},
                    "output": {"encoding": "application/json"},
                },
            ),
            doc("com.example.upload", {"type": "procedure", "input": {"encoding": "*/*"}}),
            stream(STREAM, closed=False),
            stream(CLOSED_STREAM, closed=True),
        ]
    )


FEED_URI = "at://did:plc:abc/app.bsky.feed.generator/x"


def test_params_defaults_are_filled_in(catalog: Catalog) -> None:
    given = {"feed": FEED_URI}
    params = catalog.validate_params(GET_FEED, given)
    assert params == {"feed": FEED_URI, "limit": 50, "reverse": False}
    assert given == {"feed": FEED_URI}


@pytest.mark.parametrize(
    ("params", "path", "reason"),
    [
        ({}, "params", 'must have the property "feed"'),
        ({"feed": "https://x"}, "params/feed", "AT-URI"),
        ({"feed": FEED_URI, "limit": 101}, "params/limit", "greater than 100"),
        ({"feed": FEED_URI, "limit": "5"}, "params/limit", "must be an integer"),
        ({"feed": FEED_URI, "tags": ["a", "b", "c"]}, "params/tags", "more than 2"),
        ({"feed": FEED_URI, "tags": ["toolong"]}, "params/tags/0", "longer than 5"),
    ],
)
def test_params_rejected(catalog: Catalog, params: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        catalog.validate_params(GET_FEED, params)
    assert info.value.path == path
    assert reason in info.value.reason


def test_query_string_is_decoded_then_validated(catalog: Catalog) -> None:
    pairs = [
        ("feed", FEED_URI),
        ("limit", "7"),
        ("reverse", "true"),
        ("tags", "a"),
        ("tags", "b"),
        ("ids", "-0"),
        ("ids", "12"),
        ("cursor", ""),  # empty counts as absent
        ("unknownParam", "x"),  # undeclared: dropped
    ]
    assert catalog.decode_params(GET_FEED, pairs) == {
        "feed": FEED_URI,
        "limit": 7,
        "reverse": True,
        "tags": ["a", "b"],
        "ids": [0, 12],
    }


@pytest.mark.parametrize(
    ("pairs", "path", "reason"),
    [
        ([("feed", FEED_URI), ("limit", "7.5")], "params/limit", "must be an integer"),
        ([("feed", FEED_URI), ("limit", " 7")], "params/limit", "must be an integer"),
        ([("feed", FEED_URI), ("limit", "1" * 25)], "params/limit", "must be an integer"),
        ([("feed", FEED_URI), ("limit", "9" * 18)], "params/limit", "greater than 100"),
        ([("feed", FEED_URI), ("reverse", "yes")], "params/reverse", "true or false"),
        ([("feed", FEED_URI), ("feed", FEED_URI)], "params/feed", "more than once"),
        ([("feed", FEED_URI), ("ids", "x")], "params/ids", "must be an integer"),
        ([("feed", FEED_URI), ("ids", "1"), ("ids", "-1")], "params/ids/1", "less than 0"),
        ([("feed", "")], "params", 'must have the property "feed"'),
    ],
)
def test_query_string_rejected(
    catalog: Catalog, pairs: list[tuple[str, str]], path: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        catalog.decode_params(GET_FEED, pairs)
    assert info.value.path == path
    assert reason in info.value.reason


def test_methods_without_params_pass_params_through(catalog: Catalog) -> None:
    assert catalog.validate_params(PUT_THING, {"x": 1}) == {"x": 1}
    assert catalog.decode_params(PUT_THING, [("x", "1")]) == {}


def test_input_body(catalog: Catalog) -> None:
    assert catalog.validate_input(PUT_THING, {"name": "n"}) == {"name": "n", "size": 3}
    with pytest.raises(ValidationError, match=r"^input must have the property \"name\"$"):
        catalog.validate_input(PUT_THING, {})
    with pytest.raises(ValidationError, match=r"^input/size must be an integer$"):
        catalog.validate_input(PUT_THING, {"name": "n", "size": "big"})
    with pytest.raises(ValidationError, match=r"^input must be an object$"):
        catalog.validate_input(PUT_THING, ["name"])


def test_bodies_without_schema_are_not_checked(catalog: Catalog) -> None:
    assert catalog.validate_input("com.example.upload", b"\x00binary") == b"\x00binary"
    assert catalog.validate_output(PUT_THING, {"anything": 1}) == {"anything": 1}


def test_output_body_through_a_ref(catalog: Catalog) -> None:
    assert catalog.validate_output(GET_FEED, {"name": "n", "size": 1}) == {"name": "n", "size": 1}
    with pytest.raises(ValidationError) as info:
        catalog.validate_output(GET_FEED, {"name": 1})
    assert info.value.path == "output/name"


def test_wrong_method_kinds(catalog: Catalog) -> None:
    with pytest.raises(LexiconNotFound):
        catalog.validate_input(GET_FEED, {})
    with pytest.raises(LexiconNotFound):
        catalog.validate_output(STREAM, {})
    with pytest.raises(LexiconNotFound):
        catalog.validate_message(GET_FEED, {})
    with pytest.raises(LexiconNotFound):
        catalog.validate_params("com.example.nope", {})


def test_messages_with_type_in_body(catalog: Catalog) -> None:
    event = {"$type": f"{STREAM}#event", "seq": 1}
    assert catalog.validate_message(STREAM, event) is event
    with pytest.raises(ValidationError) as info:
        catalog.validate_message(STREAM, {"seq": 1})
    assert info.value.path == "message"


def test_messages_typed_by_the_frame_header(catalog: Catalog) -> None:
    assert catalog.validate_message(STREAM, {"seq": 1}, "#event") == {"seq": 1}
    with pytest.raises(ValidationError) as info:
        catalog.validate_message(STREAM, {"seq": "1"}, "#event")
    assert info.value.path == "message/seq"
    # Open union: a message type this catalog does not know yet passes.
    assert catalog.validate_message(STREAM, {"new": True}, "#future") == {"new": True}
    with pytest.raises(ValidationError, match="not one of"):
        catalog.validate_message(CLOSED_STREAM, {"seq": 1}, "#future")


def test_interop_query_params(interop: Path) -> None:
    catalog = Catalog.from_directory(interop / "lexicon" / "catalog")
    nsid = "example.lexicon.query"
    decoded = catalog.decode_params(
        nsid, [("stringField", "x"), ("handle", "alice.test"), ("array", "1"), ("array", "2")]
    )
    assert decoded == {"stringField": "x", "handle": "alice.test", "array": [1, 2]}
    with pytest.raises(ValidationError, match="params/handle"):
        catalog.decode_params(nsid, [("stringField", "x"), ("handle", "not a handle")])
    with pytest.raises(ValidationError, match='"stringField"'):
        catalog.validate_params(nsid, {"boolean": True})
