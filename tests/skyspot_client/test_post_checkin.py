"""post_checkin and the PDS's check-in validation, live against the loopback PLC + PDS.

One commit must hold both records (checked on the sequenced `#commit` event, which is what the
firehose serves, and on the repo's latest commit), the post must embed the check-in's photos, and
getRecord must return both. Invalid check-ins are refused with `InvalidRequest` naming the field,
whatever the client's `validate` flag, and leave the repository untouched.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from atcore import frames, nsids
from atcore.checkin import CheckinError, Precision
from skyspot_client import PhotoInput, post_checkin
from skyspot_client.post import CHECKIN_FIELD
from tests.pds.stack import Stack, account_events
from tests.skyspot_client.support import (
    NewUser,
    User,
    commit_events,
    commit_records,
    jpeg,
    login,
)

Reply = tuple[int, dict[str, Any]]


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def get_record(stack: Stack, did: str, collection: str, rkey: str) -> Reply:
    query = urllib.parse.urlencode({"repo": did, "collection": collection, "rkey": rkey})
    return http(f"{stack.xrpc(nsids.REPO_GET_RECORD)}?{query}")


def latest_rev(stack: Stack, did: str) -> str:
    query = urllib.parse.urlencode({"did": did})
    status, body = http(f"{stack.xrpc(nsids.SYNC_GET_LATEST_COMMIT)}?{query}")
    assert status == 200, body
    return str(body["rev"])


def upload(stack: Stack, user: User, data: bytes) -> dict[str, Any]:
    headers = {**user.account.bearer, "Content-Type": "application/octet-stream"}
    status, body = http(stack.xrpc(nsids.REPO_UPLOAD_BLOB), data, headers)
    assert status == 200, body
    blob: dict[str, Any] = body["blob"]
    return blob


def procedure(stack: Stack, user: User, nsid: str, body: dict[str, Any]) -> Reply:
    headers = {**user.account.bearer, "Content-Type": "application/json"}
    return http(stack.xrpc(nsid), json.dumps(body).encode(), headers)


# -- the helper ---------------------------------------------------------------------------------
def test_helper_writes_both_records_in_one_commit(pds_stack: Stack, new_user: NewUser) -> None:
    user = new_user()
    photos = [
        PhotoInput(jpeg(64, 48, (200, 30, 30)), "A red wall"),
        PhotoInput(jpeg(30, 60, (30, 30, 200)), "A blue door"),
    ]
    posted = post_checkin(
        user.client,
        lat=38.713909,
        lon=-9.133476,
        place="Miradouro da Graça",
        text="Best view in town",
        photos=photos,
        category="landmark",
        langs=["en"],
    )
    assert posted.did == user.did
    assert posted.checkin_uri.rkey == posted.post_uri.rkey == posted.rkey

    # One commit, holding exactly the two creates, is what the firehose sends.
    events = commit_events(pds_stack, user.did)
    last = events[-1]
    assert [(op["action"], op["path"], str(op["cid"])) for op in last["ops"]] == [
        ("create", f"{nsids.BSKY_FEED_POST}/{posted.rkey}", str(posted.post_cid)),
        ("create", f"{nsids.SKYSPOT_CHECKIN}/{posted.rkey}", str(posted.checkin_cid)),
    ]
    assert last["rev"] == posted.rev == latest_rev(pds_stack, user.did)
    assert str(last["commit"]) == posted.commit_cid
    records = commit_records(last)
    post = records[f"{nsids.BSKY_FEED_POST}/{posted.rkey}"]
    checkin = records[f"{nsids.SKYSPOT_CHECKIN}/{posted.rkey}"]

    # The post embeds the very photos of the check-in, and the two records point at each other.
    assert post["embed"]["$type"] == nsids.BSKY_EMBED_IMAGES
    assert post["embed"]["images"] == checkin["photos"]
    assert [image["alt"] for image in post["embed"]["images"]] == ["A red wall", "A blue door"]
    assert [image["aspectRatio"] for image in checkin["photos"]] == [
        {"width": 64, "height": 48},
        {"width": 30, "height": 60},
    ]
    assert checkin["post"] == {"uri": posted.post_uri, "cid": str(posted.post_cid)}
    assert post[CHECKIN_FIELD] == posted.checkin_uri
    assert post["text"] == "Best view in town\n\n📍 Miradouro da Graça"

    # getRecord returns both, at the CIDs computed locally.
    status, got_post = get_record(pds_stack, user.did, nsids.BSKY_FEED_POST, posted.rkey)
    assert (status, got_post["cid"]) == (200, str(posted.post_cid))
    status, got_checkin = get_record(pds_stack, user.did, nsids.SKYSPOT_CHECKIN, posted.rkey)
    assert (status, got_checkin["cid"]) == (200, str(posted.checkin_cid))
    assert got_checkin["value"]["locations"][0] == {
        "$type": nsids.LOCATION_GEO,
        "latitude": "38.713909",
        "longitude": "-9.133476",
    }
    assert got_post["value"]["embed"]["images"] == got_checkin["value"]["photos"]

    # The photos themselves are served as images.
    blob_cid = got_checkin["value"]["photos"][0]["image"]["ref"]["$link"]
    query = urllib.parse.urlencode({"did": user.did, "cid": blob_cid})
    with urllib.request.urlopen(f"{pds_stack.xrpc(nsids.SYNC_GET_BLOB)}?{query}") as response:
        assert response.read(3) == b"\xff\xd8\xff"  # JPEG


def test_helper_publishes_coarse_checkins_coarsely(pds_stack: Stack, new_user: NewUser) -> None:
    user = new_user()
    posted = post_checkin(
        user.client, lat=48.858370, lon=2.294481, place="Paris", precision=Precision.CITY
    )
    status, got = get_record(pds_stack, user.did, nsids.SKYSPOT_CHECKIN, posted.rkey)
    assert status == 200
    value = got["value"]
    assert value["precision"] == "city"
    assert value["locations"][0]["latitude"] == "48.9"
    assert value["locations"][0]["longitude"] == "2.3"
    assert "48.858" not in json.dumps(value)


def test_helper_refuses_bad_input_before_any_request(pds_stack: Stack, new_user: NewUser) -> None:
    user = new_user()
    before = len(commit_events(pds_stack, user.did))
    too_many = [PhotoInput(jpeg(), f"photo {n}") for n in range(5)]
    with pytest.raises(CheckinError, match="record/photos"):
        post_checkin(user.client, lat=1, lon=1, place="X", photos=too_many)
    with pytest.raises(CheckinError, match="record/photos/0/alt"):
        post_checkin(user.client, lat=1, lon=1, place="X", photos=[PhotoInput(jpeg(), " ")])
    with pytest.raises(CheckinError, match="longitude"):
        post_checkin(user.client, lat=1, lon=181, place="X")
    assert len(commit_events(pds_stack, user.did)) == before


# -- the PDS refuses invalid check-ins --------------------------------------------------------
def _checkin(user: User, image: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "$type": nsids.SKYSPOT_CHECKIN,
        "place": {"name": "Somewhere"},
        "locations": [{"$type": nsids.LOCATION_GEO, "latitude": "10.5", "longitude": "20.25"}],
        "photos": [{"image": image, "alt": "A photo"}],
        "createdAt": "2024-05-01T12:00:00.000Z",
        **fields,
    }


def _geo(lat: str, lon: str) -> list[dict[str, str]]:
    return [{"$type": nsids.LOCATION_GEO, "latitude": lat, "longitude": lon}]


INVALID = [
    pytest.param({"locations": _geo("90.5", "0")}, "record/locations/0/latitude", id="lat-range"),
    pytest.param(
        {"locations": _geo("0", "-180.000001")}, "record/locations/0/longitude", id="lon-range"
    ),
    pytest.param({"locations": _geo("1,5", "0")}, "record/locations/0/latitude", id="comma"),
    pytest.param(
        {"locations": _geo("1.1234567", "0")}, "record/locations/0/latitude", id="decimals"
    ),
    pytest.param({"photos": "five"}, "record/photos", id="five-photos"),
    pytest.param({"photos": "pdf"}, "record/photos/0/image", id="non-image"),
    pytest.param({"photos": "no-alt"}, "record/photos/0", id="missing-alt"),
    pytest.param({"photos": "blank-alt"}, "record/photos/0/alt", id="blank-alt"),
]


@pytest.fixture(scope="module")
def writer(pds_stack: Stack) -> Iterator[User]:
    """One account for the refusal tests (they must leave its repository unchanged anyway)."""
    user = login(pds_stack, "refused")
    yield user
    user.client.request.close()


@pytest.mark.parametrize("validate", [None, False])
@pytest.mark.parametrize(("change", "path"), INVALID)
def test_pds_refuses_invalid_checkins(
    pds_stack: Stack, writer: User, change: dict[str, Any], path: str, validate: bool | None
) -> None:
    user = writer
    image = upload(pds_stack, user, jpeg())
    fields = dict(change)
    photos = fields.pop("photos", None)
    if photos == "five":
        fields["photos"] = [{"image": image, "alt": f"photo {n}"} for n in range(5)]
    elif photos == "pdf":
        pdf = upload(pds_stack, user, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n")
        assert not pdf["mimeType"].startswith("image/")
        fields["photos"] = [{"image": pdf, "alt": "A document"}]
    elif photos in ("no-alt", "blank-alt"):
        fields["photos"] = [{"image": image} if photos == "no-alt" else {"image": image, "alt": ""}]
    record = _checkin(user, image, **fields)
    before = latest_rev(pds_stack, user.did)
    body: dict[str, Any] = {"repo": user.did, "collection": nsids.SKYSPOT_CHECKIN}
    if validate is not None:
        body["validate"] = validate
    status, reply = procedure(pds_stack, user, nsids.REPO_CREATE_RECORD, {**body, "record": record})
    assert status == 400, reply
    assert reply["error"] == "InvalidRequest"
    assert path in reply["message"], reply["message"]
    # The same record inside an applyWrites batch is refused the same way, and nothing commits.
    write = {"$type": f"{nsids.REPO_APPLY_WRITES}#create", "collection": nsids.SKYSPOT_CHECKIN}
    batch = {"repo": user.did, "writes": [{**write, "value": record}]}
    status, reply = procedure(pds_stack, user, nsids.REPO_APPLY_WRITES, batch)
    assert (status, reply["error"]) == (400, "InvalidRequest")
    assert path in reply["message"]
    assert latest_rev(pds_stack, user.did) == before


def test_pds_accepts_a_valid_checkin_written_by_hand(pds_stack: Stack, new_user: NewUser) -> None:
    user = new_user()
    image = upload(pds_stack, user, jpeg())
    body = {
        "repo": user.did,
        "collection": nsids.SKYSPOT_CHECKIN,
        "validate": False,
        "record": _checkin(user, image),
    }
    status, reply = procedure(pds_stack, user, nsids.REPO_CREATE_RECORD, body)
    assert status == 200, reply
    assert reply["validationStatus"] == "valid"  # validated although the client said not to


async def test_the_firehose_carries_both_records_in_one_event(
    pds_stack: Stack, new_user: NewUser
) -> None:
    user = await asyncio.to_thread(new_user)
    photo = PhotoInput(jpeg(), "A yellow tram")
    posted = await asyncio.to_thread(
        post_checkin, user.client, lat=38.7114, lon=-9.1367, place="Tram 28", photos=[photo]
    )
    stored = [body for kind, body in await account_events(pds_stack, user.did) if kind == "commit"]
    seq = stored[-1]["seq"]
    query = urllib.parse.urlencode({"cursor": seq - 1})
    async with (
        aiohttp.ClientSession() as http_session,
        http_session.ws_connect(f"{pds_stack.xrpc(nsids.SYNC_SUBSCRIBE_REPOS)}?{query}") as ws,
    ):
        message = await asyncio.wait_for(ws.receive_bytes(), timeout=30)
    frame = frames.decode(message)
    assert isinstance(frame, frames.MessageFrame)
    assert frame.type == "#commit"
    assert (frame.body["seq"], frame.body["repo"], frame.body["rev"]) == (
        seq,
        user.did,
        posted.rev,
    )
    records = commit_records(frame.body)
    assert set(records) == {
        f"{nsids.BSKY_FEED_POST}/{posted.rkey}",
        f"{nsids.SKYSPOT_CHECKIN}/{posted.rkey}",
    }
    post = records[f"{nsids.BSKY_FEED_POST}/{posted.rkey}"]
    checkin = records[f"{nsids.SKYSPOT_CHECKIN}/{posted.rkey}"]
    assert post["embed"]["images"] == checkin["photos"]
    assert str(checkin["post"]["cid"]) == str(posted.post_cid)
