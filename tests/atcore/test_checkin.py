"""atcore.checkin: degrees strings, the typed model, field-level rules, and a Hypothesis oracle.

The property test builds random check-ins from parts that are each valid or not, judges them with
an independent statement of the rules (a regex and `Decimal` arithmetic), and requires the
validator (lexicon + rules, through the repository's lexicon catalog) to accept exactly the valid
ones.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import h3
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from atcore import nsids
from atcore.checkin import (
    IMAGE_TYPES,
    CheckinError,
    Coordinates,
    Precision,
    check_record,
    checkin_to_data,
    checkin_to_json,
    format_degrees,
    parse_checkin,
    parse_degrees,
    validate_checkin,
)
from atcore.datajson import json_to_data
from atcore.lexicon import Catalog

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"
AUTHOR = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
OTHER = "did:plc:44ybard66vv44zksje25o7dz"
RKEY = "3jwdwj2ctlk26"
BLOB_CID = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
POST_CID = "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454"
CREATED_AT = "2024-05-01T12:00:00.000Z"
PARIS_CELL = h3.latlng_to_cell(48.8566, 2.3522, 9)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_directory(LEXICONS)


def blob(mime: str = "image/jpeg", size: int = 1234) -> dict[str, Any]:
    return {"$type": "blob", "ref": {"$link": BLOB_CID}, "mimeType": mime, "size": size}


def photo(mime: str = "image/jpeg", alt: str | None = "A photo") -> dict[str, Any]:
    item: dict[str, Any] = {"image": blob(mime), "aspectRatio": {"width": 4, "height": 3}}
    if alt is not None:
        item["alt"] = alt
    return item


def geo(lat: Any = "48.8566", lon: Any = "2.3522", **extra: Any) -> dict[str, Any]:
    return {"$type": nsids.LOCATION_GEO, "latitude": lat, "longitude": lon, **extra}


def record(**fields: Any) -> dict[str, Any]:
    """A valid check-in (JSON form) with `fields` replacing its defaults."""
    base: dict[str, Any] = {
        "$type": nsids.SKYSPOT_CHECKIN,
        "place": {"name": "Le Café", "category": "cafe", "uri": "https://cafe.example"},
        "locations": [geo(), {"$type": nsids.LOCATION_HTHREE, "value": PARIS_CELL}],
        "text": "Great coffee @bob",
        "photos": [photo()],
        "createdAt": CREATED_AT,
        "post": {"uri": f"at://{AUTHOR}/{nsids.BSKY_FEED_POST}/{RKEY}", "cid": POST_CID},
    }
    base.update(fields)
    return base


def check(catalog: Catalog, value: dict[str, Any], **context: Any) -> Any:
    return validate_checkin(catalog, json_to_data(value), author=AUTHOR, rkey=RKEY, **context)


# -- degrees strings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "limit", "micro"),
    [
        ("0", 90, 0),
        ("-0", 90, 0),
        ("90", 90, 90_000_000),
        ("-90.000000", 90, -90_000_000),
        ("48.8566", 90, 48_856_600),
        ("-33.868820", 90, -33_868_820),
        ("180", 180, 180_000_000),
        ("-179.999999", 180, -179_999_999),
        ("0.000001", 180, 1),
        ("007.5", 180, 7_500_000),
    ],
)
def test_parse_degrees_is_exact(text: str, limit: int, micro: int) -> None:
    assert parse_degrees(text, limit, "lat") == micro


@pytest.mark.parametrize(
    ("text", "limit", "reason"),
    [
        ("90.000001", 90, "between -90 and 90"),
        ("-91", 90, "between -90 and 90"),
        ("180.5", 180, "between -180 and 180"),
        ("1.1234567", 90, "at most 6 decimal places"),
        ("1e1", 90, "decimal degrees"),
        ("+1", 90, "decimal degrees"),
        ("1.", 90, "decimal degrees"),
        (".5", 90, "decimal degrees"),
        ("1000", 180, "decimal degrees"),
        (" 1", 90, "decimal degrees"),
        ("1\n", 90, "decimal degrees"),
        ("١٢", 90, "decimal degrees"),  # Arabic-Indic digits are digits to `\d`, not to us
        ("NaN", 90, "decimal degrees"),
        ("", 90, "decimal degrees"),
    ],
)
def test_parse_degrees_refuses(text: str, limit: int, reason: str) -> None:
    with pytest.raises(CheckinError) as caught:
        parse_degrees(text, limit, "record/locations/0/latitude")
    assert caught.value.path == "record/locations/0/latitude"
    assert reason in str(caught.value)


def test_parse_degrees_refuses_non_strings() -> None:
    with pytest.raises(CheckinError, match="must be a string"):
        parse_degrees(48.5, 90, "lat")


@given(st.integers(-180_000_000, 180_000_000))
def test_format_then_parse_round_trips(micro: int) -> None:
    text = format_degrees(micro)
    assert parse_degrees(text, 180, "lon") == micro
    assert Decimal(text) == Decimal(micro).scaleb(-6)


@pytest.mark.parametrize(
    ("value", "micro"),
    [
        (48.8566, 48_856_600),  # the float's shortest repr, not its binary expansion
        (Decimal("0.0000005"), 0),  # half-even
        (Decimal("0.0000015"), 2),
        ("-12.3456789", -12_345_679),
        (10, 10_000_000),
    ],
)
def test_from_degrees_rounds_to_microdegrees(value: Any, micro: int) -> None:
    assert Coordinates.from_degrees(value, 0).latitude_e6 == micro


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "north", 91])
def test_from_degrees_refuses(value: Any) -> None:
    with pytest.raises(CheckinError):
        Coordinates.from_degrees(value, 0)


@pytest.mark.parametrize(
    ("micro", "decimals", "rounded"),
    [
        (48_856_600, 2, 48_860_000),
        (-48_855_000, 2, -48_860_000),  # halves away from zero
        (48_849_999, 1, 48_800_000),
        (179_960_000, 1, 180_000_000),
        (-123, 6, -123),
    ],
)
def test_rounding(micro: int, decimals: int, rounded: int) -> None:
    assert Coordinates(0, micro).rounded(decimals) == Coordinates(0, rounded)


# -- the model ----------------------------------------------------------------------------------
def test_valid_record_parses_into_the_model(catalog: Catalog) -> None:
    checkin = check(catalog, record(precision="exact", langs=["fr"], companions=[OTHER]))
    assert checkin.place.name == "Le Café"
    assert checkin.coordinates == Coordinates(48_856_600, 2_352_200)
    assert checkin.coordinates.latitude == Decimal("48.8566")
    assert checkin.precision is Precision.EXACT
    assert checkin.h3 is not None
    assert checkin.h3.resolution == 9
    assert checkin.photos[0].image.mime_type == "image/jpeg"
    assert checkin.post is not None
    assert str(checkin.post.cid) == POST_CID
    assert checkin.visited == CREATED_AT


def test_encoding_round_trips(catalog: Catalog) -> None:
    value = record(
        precision="neighborhood",
        place={"name": "Belleville"},
        locations=[
            geo("48.87", "2.38", altitude="120.5", name="here"),
            {"$type": nsids.LOCATION_ADDRESS, "country": "FR", "locality": "Paris"},
            {"$type": nsids.LOCATION_HTHREE, "value": h3.latlng_to_cell(48.87, 2.38, 7)},
            {"$type": "com.example.location.what3words", "words": "a.b.c"},
        ],
        visitedAt="2024-04-30T20:00:00Z",
    )
    checkin = check(catalog, value)
    assert checkin_to_json(checkin) == value
    assert parse_checkin(checkin_to_data(checkin), author=AUTHOR, rkey=RKEY) == checkin


def test_check_record_handles_only_checkins(catalog: Catalog) -> None:
    post = json_to_data({"$type": nsids.BSKY_FEED_POST, "text": "x", "createdAt": CREATED_AT})
    assert check_record(catalog, nsids.BSKY_FEED_POST, RKEY, post, author=AUTHOR) is False
    data = json_to_data(record())
    assert check_record(catalog, nsids.SKYSPOT_CHECKIN, RKEY, data, author=AUTHOR) is True
    with pytest.raises(CheckinError, match="rkey must be a TID"):
        check_record(catalog, nsids.SKYSPOT_CHECKIN, "self", data, author=AUTHOR)


def test_missing_lexicon_fails_closed() -> None:
    with pytest.raises(CheckinError, match="cannot validate"):
        validate_checkin(Catalog(), json_to_data(record()))


# -- field-level refusals ------------------------------------------------------------------------
def _without_alt() -> list[dict[str, Any]]:
    return [photo(alt=None)]


INVALID = [
    pytest.param(record(locations=[geo(lat="90.5")]), "record/locations/0/latitude", "-90 and 90"),
    pytest.param(record(locations=[geo(lon="-180.1")]), "record/locations/0/longitude", "180"),
    pytest.param(record(locations=[geo(lat="1.5e1")]), "record/locations/0/latitude", "degrees"),
    pytest.param(record(locations=[geo(lat="1.1234567")]), "record/locations/0/latitude", "6"),
    pytest.param(record(locations=[geo(lat=48)]), "record/locations/0/latitude", "string"),
    pytest.param(record(locations=[geo(altitude="high")]), "record/locations/0/altitude", "meters"),
    pytest.param(record(photos=[photo()] * 5), "record/photos", "4"),
    pytest.param(record(photos=[photo("video/mp4")]), "record/photos/0/image", "image/*"),
    pytest.param(record(photos=[photo("image/tiff")]), "record/photos/0/image", "image/tiff"),
    pytest.param(record(photos=[photo(), photo(alt=None)]), "record/photos/1", "alt"),
    pytest.param(record(photos=[photo(alt=" ")]), "record/photos/0/alt", "alt text"),
    pytest.param(record(locations=[]), "record/locations", "fewer than 1"),
    pytest.param(
        record(locations=[{"$type": nsids.LOCATION_ADDRESS, "country": "FR"}]),
        "record/locations",
        "exactly one community.lexicon.location.geo",
    ),
    pytest.param(record(locations=[geo(), geo()]), "record/locations", "found 2"),
    pytest.param(
        record(locations=[geo(), {"$type": nsids.LOCATION_HTHREE, "value": "not-a-cell"}]),
        "record/locations/1/value",
        "H3",
    ),
    pytest.param(
        record(locations=[geo(), {"$type": nsids.LOCATION_HTHREE, "value": PARIS_CELL.upper()}]),
        "record/locations/1/value",
        "lowercase",
    ),
    pytest.param(record(precision="street"), "record/precision", "exact, neighborhood, city"),
    pytest.param(
        record(precision="neighborhood", place={"name": "Belleville"}),
        "record/locations/0/latitude",
        "at most 2 decimal places for neighborhood",
    ),
    pytest.param(
        record(precision="city", place={"name": "Paris"}, locations=[geo("48.9", "2.35")]),
        "record/locations/0/longitude",
        "at most 1 decimal places for city",
    ),
    pytest.param(
        record(
            precision="city",
            place={"name": "Paris"},
            locations=[geo("48.9", "2.4"), {"$type": nsids.LOCATION_HTHREE, "value": PARIS_CELL}],
        ),
        "record/locations/1/value",
        "resolution at most 5",
    ),
    pytest.param(
        record(precision="neighborhood", locations=[geo("48.86", "2.35")]),
        "record/place/uri",
        "absent for neighborhood",
    ),
    pytest.param(
        record(
            precision="city",
            place={"name": "Paris"},
            locations=[geo("48.9", "2.4"), {"$type": nsids.LOCATION_FSQ, "fsq_place_id": "4b0"}],
        ),
        "record/locations/1",
        "Foursquare",
    ),
    pytest.param(
        record(
            precision="city",
            place={"name": "Paris"},
            locations=[
                geo("48.9", "2.4"),
                {"$type": nsids.LOCATION_ADDRESS, "country": "FR", "street": "1 rue X"},
            ],
        ),
        "record/locations/1/street",
        "absent for city",
    ),
    pytest.param(
        record(
            locations=[geo(), {"$type": nsids.LOCATION_FSQ, "fsq_place_id": "4b0", "latitude": "1"}]
        ),
        "record/locations/1/longitude",
        "together",
    ),
    pytest.param(record(place={"name": ""}), "record/place/name", "shorter than 1"),
    pytest.param(record(place={"name": "   "}), "record/place/name", "non-empty"),
    pytest.param(record(text="é" * 301), "record/text", "300"),
    pytest.param(
        record(
            text="hi",
            facets=[
                {
                    "index": {"byteStart": 0, "byteEnd": 3},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}],
                }
            ],
        ),
        "record/facets/0/index",
        "inside the text",
    ),
    pytest.param(record(companions=[OTHER, OTHER]), "record/companions/1", "repeat"),
    pytest.param(record(companions=[AUTHOR]), "record/companions/0", "author"),
    pytest.param(
        record(post={"uri": f"at://{AUTHOR}/{nsids.BSKY_FEED_LIKE}/{RKEY}", "cid": POST_CID}),
        "record/post/uri",
        nsids.BSKY_FEED_POST,
    ),
    pytest.param(
        record(post={"uri": f"at://{OTHER}/{nsids.BSKY_FEED_POST}/{RKEY}", "cid": POST_CID}),
        "record/post/uri",
        "author's repository",
    ),
    pytest.param(
        record(post={"uri": f"at://alice.test/{nsids.BSKY_FEED_POST}/{RKEY}", "cid": POST_CID}),
        "record/post/uri",
        "by DID",
    ),
    pytest.param(
        record(
            post={"uri": f"at://{AUTHOR}/{nsids.BSKY_FEED_POST}/3jwdwj2ctlk27", "cid": POST_CID}
        ),
        "record/post/uri",
        "record key",
    ),
    pytest.param(
        record(post={"uri": f"at://{AUTHOR}/{nsids.BSKY_FEED_POST}/{RKEY}", "cid": BLOB_CID}),
        "record/post/cid",
        "dag-cbor",
    ),
    pytest.param(record(createdAt="yesterday"), "record/createdAt", "datetime"),
]


@pytest.mark.parametrize(("value", "path", "reason"), INVALID)
def test_invalid_checkins_name_the_field(
    catalog: Catalog, value: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(CheckinError) as caught:
        check(catalog, value)
    assert caught.value.path == path, str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(path)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"place": "x"}, id="place-not-object"),
        pytest.param({"locations": "x"}, id="locations-not-array"),
        pytest.param({"locations": [5]}, id="location-not-object"),
        pytest.param({"locations": [{"latitude": "1"}]}, id="location-without-type"),
        pytest.param({"photos": [{"image": "x", "alt": "a"}]}, id="photo-not-blob"),
        pytest.param({"photos": [{"image": blob(), "alt": "a", "aspectRatio": {}}]}, id="ratio"),
        pytest.param({"facets": [{"index": {"byteStart": 0, "byteEnd": 1}}]}, id="facet-no-text"),
        pytest.param({"langs": [1]}, id="lang-not-string"),
        pytest.param({"post": {"uri": 1, "cid": POST_CID}}, id="post-uri-type"),
        pytest.param({"$type": nsids.BSKY_FEED_POST}, id="wrong-type"),
    ],
)
def test_parse_is_defensive_without_the_lexicon(value: dict[str, Any]) -> None:
    """parse_checkin alone never crashes on a shape the lexicon would have refused."""
    data = json_to_data(record(**value))
    if "facets" in value:
        del data["text"]
    with pytest.raises(CheckinError):
        parse_checkin(data, author=AUTHOR, rkey=RKEY)


def test_other_authors_and_keys_only_checked_when_known(catalog: Catalog) -> None:
    value = json_to_data(record())
    assert validate_checkin(catalog, value).post is not None
    with pytest.raises(CheckinError):
        validate_checkin(catalog, value, author=OTHER)
    with pytest.raises(CheckinError):
        validate_checkin(catalog, value, rkey="3jwdwj2ctlk27")


# -- Hypothesis: the validator accepts exactly the valid check-ins -------------------------------
DEGREES_RULE = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,6})?")
MAX_DECIMALS = {"exact": 6, "neighborhood": 2, "city": 1}
MAX_RESOLUTION = {"exact": 15, "neighborhood": 7, "city": 5}


def degrees_ok(text: str, limit: int, decimals: int) -> bool:
    if DEGREES_RULE.fullmatch(text) is None:
        return False
    value = Decimal(text)
    return abs(value) <= limit and value == value.quantize(Decimal(1).scaleb(-decimals))


degree_texts = st.one_of(
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,7})?", fullmatch=True),
    st.integers(0, 6).flatmap(lambda places: st.decimals(-90, 90, places=places)).map(str),
    st.decimals(-200, 200, places=1, allow_nan=False).map(str),
    st.sampled_from(["90", "-90", "180", "-180", "90.000001", "1e2", "", "0.5 ", "+4"]),
)
photo_parts = st.tuples(
    st.sampled_from(
        ["image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "video/mp4"]
    ),
    st.sampled_from([None, "", "  ", "A dog on a bench", "Sunset"]),
)


@given(
    lat=degree_texts,
    lon=degree_texts,
    precision=st.sampled_from([None, "exact", "neighborhood", "city", "block"]),
    photos=st.lists(photo_parts, max_size=5),
    resolution=st.one_of(st.none(), st.integers(0, 15)),
)
def test_validator_accepts_exactly_the_valid_checkins(
    catalog: Catalog,
    lat: str,
    lon: str,
    precision: str | None,
    photos: list[tuple[str, str | None]],
    resolution: int | None,
) -> None:
    value = record(
        place={"name": "Somewhere"},
        locations=[geo(lat, lon)],
        photos=[photo(mime, alt) for mime, alt in photos],
    )
    if precision is not None:
        value["precision"] = precision
    if resolution is not None:
        cell = h3.latlng_to_cell(10.0, 20.0, resolution)
        value["locations"].append({"$type": nsids.LOCATION_HTHREE, "value": cell})
    level = precision or "exact"
    valid = (
        level in MAX_DECIMALS
        and degrees_ok(lat, 90, MAX_DECIMALS[level])
        and degrees_ok(lon, 180, MAX_DECIMALS[level])
        and len(photos) <= 4
        and all(mime in IMAGE_TYPES and alt and alt.strip() for mime, alt in photos)
        and (resolution is None or resolution <= MAX_RESOLUTION[level])
    )
    event("valid" if valid else "invalid")
    original = copy.deepcopy(value)
    if valid:
        checkin = check(catalog, value)
        assert checkin.coordinates.latitude == Decimal(lat)
        assert checkin_to_json(checkin)["locations"][0]["latitude"] == format_degrees(
            checkin.coordinates.latitude_e6
        )
    else:
        with pytest.raises(CheckinError):
            check(catalog, value)
    assert value == original  # validation never mutates its input
