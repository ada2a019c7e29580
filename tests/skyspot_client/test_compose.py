"""skyspot_client offline: composing check-ins and companion posts, local CIDs, photos."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import h3
import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from atcore import dagcbor, nsids
from atcore.checkin import (
    AddressLocation,
    AspectRatio,
    CheckinError,
    Coordinates,
    H3Location,
    Photo,
    Precision,
    validate_checkin,
)
from atcore.cid import CID
from atcore.datajson import BlobRef, json_to_data
from atcore.lexicon import Catalog
from skyspot_client import (
    PhotoInput,
    build_checkin_writes,
    compose_checkin,
    compose_post,
    prepare_photo,
    venue_link,
)
from skyspot_client.post import CHECKIN_FIELD, POST_TAG
from tests.skyspot_client.support import jpeg

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
RKEY = "3jwdwj2ctlk26"
WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
PHOTO = Photo(BlobRef(CID.for_raw(b"pixels"), "image/jpeg", 6), "A red door", AspectRatio(4, 3))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_directory(LEXICONS)


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


# -- the check-in -------------------------------------------------------------------------------
def test_exact_checkin_keeps_six_decimals_and_a_fine_cell() -> None:
    checkin = compose_checkin(lat=48.8583701, lon=2.2944813, place="Tour Eiffel", created_at=WHEN)
    assert checkin.coordinates == Coordinates(48_858_370, 2_294_481)
    assert checkin.precision is Precision.EXACT
    assert checkin.h3 is not None
    assert checkin.h3.resolution == 9
    assert h3.cell_to_parent(h3.latlng_to_cell(48.85837, 2.294481, 12), 9) == checkin.h3.cell
    assert checkin.created_at == "2024-05-01T12:00:00.000Z"


@pytest.mark.parametrize(
    ("precision", "lat_e6", "lon_e6", "resolution"),
    [("neighborhood", 48_860_000, 2_290_000, 7), ("city", 48_900_000, 2_300_000, 5)],
)
def test_coarse_checkins_never_carry_the_exact_point(
    precision: str, lat_e6: int, lon_e6: int, resolution: int
) -> None:
    checkin = compose_checkin(lat="48.858370", lon="2.294481", place="Paris", precision=precision)
    assert checkin.coordinates == Coordinates(lat_e6, lon_e6)
    cells = [loc for loc in checkin.locations if isinstance(loc, H3Location)]
    assert [cell.resolution for cell in cells] == [resolution]
    assert cells[0].cell == h3.latlng_to_cell(lat_e6 / 1e6, lon_e6 / 1e6, resolution)
    writes = build_checkin_writes(DID, checkin, rkey=RKEY)
    assert "48.85837" not in str(writes.checkin_record)
    assert "48.85837" not in str(writes.post_record)


def test_bad_inputs_fail_before_any_request() -> None:
    with pytest.raises(CheckinError, match="latitude"):
        compose_checkin(lat=91, lon=0, place="Nowhere")
    with pytest.raises(CheckinError, match="precision"):
        compose_checkin(lat=1, lon=1, place="X", precision="street")
    coarse = compose_checkin(
        lat=1, lon=1, place="X", precision="city", venue_uri="https://x.example"
    )
    with pytest.raises(CheckinError, match="record/place/uri"):
        build_checkin_writes(DID, coarse, rkey=RKEY)
    with pytest.raises(CheckinError, match="record/photos/0/alt"):
        build_checkin_writes(
            DID,
            compose_checkin(lat=1, lon=1, place="X", photos=[Photo(PHOTO.image, "")]),
            rkey=RKEY,
        )


def test_malformed_facets_are_a_checkin_error() -> None:
    checkin = compose_checkin(
        lat=1, lon=1, place="X", text="hi", facets=[{"index": {"byteStart": 0}, "features": []}]
    )
    with pytest.raises(CheckinError, match="record/facets/0/index"):
        build_checkin_writes(DID, checkin, rkey=RKEY)


def test_writes_share_one_rkey_and_reference_each_other(catalog: Catalog) -> None:
    checkin = compose_checkin(
        lat=38.7139,
        lon=-9.1334,
        place="Miradouro da Graça",
        text="Sunset",
        photos=[PHOTO],
        address=AddressLocation("PT", locality="Lisboa"),
        langs=["pt"],
        created_at=WHEN,
    )
    writes = build_checkin_writes(DID, checkin, rkey=RKEY)
    assert writes.post_uri == f"at://{DID}/{nsids.BSKY_FEED_POST}/{RKEY}"
    assert writes.checkin_uri == f"at://{DID}/{nsids.SKYSPOT_CHECKIN}/{RKEY}"
    post_data = json_to_data(writes.post_record)
    assert writes.post_cid == CID.for_dag_cbor(dagcbor.encode(post_data))
    assert writes.checkin_record["post"] == {"uri": writes.post_uri, "cid": str(writes.post_cid)}
    assert writes.post_record[CHECKIN_FIELD] == writes.checkin_uri
    checkin_data = json_to_data(writes.checkin_record)
    assert writes.checkin_cid == CID.for_dag_cbor(dagcbor.encode(checkin_data))
    # Both records pass the lexicons; the check-in passes the rules with its real context.
    catalog.validate_record(nsids.BSKY_FEED_POST, post_data)
    assert validate_checkin(catalog, checkin_data, author=DID, rkey=RKEY) == writes.checkin
    body = writes.apply_writes_input()
    assert body["repo"] == DID
    assert [(w["collection"], w["rkey"]) for w in body["writes"]] == [
        (nsids.BSKY_FEED_POST, RKEY),
        (nsids.SKYSPOT_CHECKIN, RKEY),
    ]


def test_default_rkey_is_a_tid_at_creation_time() -> None:
    from atcore.tid import tid_to_parts

    writes = build_checkin_writes(DID, compose_checkin(lat=0, lon=0, place="X", created_at=WHEN))
    micros, _clock = tid_to_parts(writes.rkey)
    assert micros == int(WHEN.timestamp() * 1_000_000)


# -- the companion post -------------------------------------------------------------------------
def test_post_text_link_facet_and_images() -> None:
    checkin = compose_checkin(
        lat=38.7139, lon=-9.1334, place="Miradouro", text="Sunset!", photos=[PHOTO]
    )
    post = compose_post(checkin, checkin_uri="at://x/y/z")
    assert post["text"] == "Sunset!\n\n📍 Miradouro"
    (facet,) = post["facets"]
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert post["text"].encode()[start:end] == b"Miradouro"
    link = facet["features"][0]
    assert link["$type"] == "app.bsky.richtext.facet#link"
    assert (
        link["uri"]
        == "https://www.openstreetmap.org/?mlat=38.7139&mlon=-9.1334#map=17/38.7139/-9.1334"
    )
    assert post["embed"]["$type"] == nsids.BSKY_EMBED_IMAGES
    assert post["embed"]["images"] == [
        {
            "image": PHOTO.image.to_json(),
            "alt": "A red door",
            "aspectRatio": {"width": 4, "height": 3},
        }
    ]
    assert post["tags"] == [POST_TAG]
    assert post[CHECKIN_FIELD] == "at://x/y/z"


def test_post_links_the_venue_page_and_cards_without_photos() -> None:
    checkin = compose_checkin(lat=1, lon=2, place="Bar", venue_uri="https://bar.example/")
    post = compose_post(checkin, checkin_uri="at://x/y/z")
    assert post["text"] == "📍 Bar"
    assert post["facets"][0]["features"][0]["uri"] == "https://bar.example/"
    assert post["embed"] == {
        "$type": nsids.BSKY_EMBED_EXTERNAL,
        "external": {
            "uri": "https://bar.example/",
            "title": "Bar",
            "description": "Check-in at Bar",
        },
    }


def test_coarse_link_has_no_marker() -> None:
    checkin = compose_checkin(lat=48.8566, lon=2.3522, place="Paris", precision="city")
    assert venue_link(checkin) == "https://www.openstreetmap.org/#map=11/48.9/2.4"


def test_long_text_is_cut_and_facets_past_the_cut_dropped() -> None:
    text = "#early " + "word " * 80 + "#late"
    size = len(text.encode())
    facets = [
        {
            "index": {"byteStart": 0, "byteEnd": 6},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "early"}],
        },
        {
            "index": {"byteStart": size - 5, "byteEnd": size},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "late"}],
        },
    ]
    checkin = compose_checkin(lat=0, lon=0, place="Spot", text=text, facets=facets)
    post = compose_post(checkin, checkin_uri="at://x/y/z")
    assert graphemes(post["text"]) <= 300
    assert post["text"].endswith("…\n\n📍 Spot")
    tags = [f["features"][0].get("tag") for f in post["facets"]]
    assert tags == ["early", None]


@given(
    text=st.one_of(st.none(), st.text(max_size=300)),
    place=st.text(min_size=1, max_size=100).filter(lambda s: s.strip() != ""),
)
def test_any_post_fits_bluesky_limits(catalog: Catalog, text: str | None, place: str) -> None:
    if graphemes(place) > 100 or (text is not None and graphemes(text) > 300):
        return
    checkin = compose_checkin(lat=0, lon=0, place=place, text=text)
    post = compose_post(checkin, checkin_uri=f"at://{DID}/{nsids.SKYSPOT_CHECKIN}/{RKEY}")
    catalog.validate_record(nsids.BSKY_FEED_POST, json_to_data(post))
    link = post["facets"][-1]["index"]
    assert post["text"].encode()[link["byteStart"] : link["byteEnd"]] == place.encode()


# -- photos -------------------------------------------------------------------------------------
def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 30.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    return jpeg(80, 40, exif=exif.tobytes())


def test_photo_metadata_is_stripped_and_orientation_applied() -> None:
    original = _exif_jpeg()
    with Image.open(io.BytesIO(original)) as before:
        assert before.getexif().get_ifd(0x8825)  # the fixture really has GPS data
    prepared = prepare_photo(PhotoInput(original, "A sign"))
    with Image.open(io.BytesIO(prepared.data)) as after:
        assert after.format == "JPEG"
        assert dict(after.getexif()) == {}
        assert after.size == (40, 80)
    assert prepared.aspect_ratio == (40, 80)
    assert b"PhoneCam" not in prepared.data


def test_big_photos_are_shrunk_to_the_limit() -> None:
    noise = Image.effect_noise((2200, 900), 120).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    assert len(out.getvalue()) > 1_000_000
    prepared = prepare_photo(PhotoInput(out.getvalue(), "Static"), max_bytes=150_000)
    assert len(prepared.data) <= 150_000
    with Image.open(io.BytesIO(prepared.data)) as shrunk:
        assert max(shrunk.size) <= 2000
        assert shrunk.format == "JPEG"
    assert prepared.aspect_ratio is not None
    assert abs(prepared.aspect_ratio[0] / prepared.aspect_ratio[1] - 2200 / 900) < 0.01


def test_png_stays_png() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (30, 20), (0, 0, 255, 128)).save(out, "PNG")
    prepared = prepare_photo(PhotoInput(out.getvalue(), "Blue"))
    with Image.open(io.BytesIO(prepared.data)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (30, 20))


def test_undecodable_data_passes_through_untouched() -> None:
    data = b"%PDF-1.4 not an image"
    prepared = prepare_photo(PhotoInput(data, "A document", (1, 1)))
    assert (prepared.data, prepared.aspect_ratio) == (data, (1, 1))


def test_from_path(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg())
    assert PhotoInput.from_path(path, "alt").data == path.read_bytes()


def test_decimal_inputs_are_exact() -> None:
    checkin = compose_checkin(lat=Decimal("-33.8688197"), lon="151.2092955", place="Sydney")
    assert checkin.coordinates == Coordinates(-33_868_820, 151_209_296)
