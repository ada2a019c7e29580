"""Posting a check-in with the plain `atproto` SDK: photos uploaded, both records in one commit.

    from atproto import Client
    from skyspot_client import PhotoInput, post_checkin

    client = Client("https://pds.example.com")
    client.login("alice.example.com", "app-password")
    posted = post_checkin(
        client, lat=38.7139, lon=-9.1334, place="Miradouro da Graça", text="Sunset!",
        photos=[PhotoInput.from_path("view.jpg", alt="Lisbon rooftops at sunset")],
    )
    print(posted.checkin_uri, posted.post_uri)

Steps: check the inputs (no network yet), upload each photo (metadata stripped, see `photos`),
build the post and the check-in with the post's CID computed locally, then ONE `applyWrites` with
both creates under the same TID record key, and finally confirm the PDS stored exactly the CIDs
computed. Errors: `CheckinError` for bad input (raised before any request), `UnexpectedReply`
if the PDS stored something else than what was sent; the SDK's own exceptions pass through.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from atproto import Client

from atcore import nsids
from atcore.checkin import MAX_PHOTOS, AspectRatio, Checkin, CheckinError, Photo
from atcore.cid import CID
from atcore.datajson import BlobRef, DataModelError
from atcore.syntax import AtUri
from skyspot_client.compose import (
    CheckinWrites,
    Degrees,
    build_checkin_writes,
    checkin_rkey,
    compose_checkin,
)
from skyspot_client.photos import PhotoInput, prepare_photo


class UnexpectedReply(RuntimeError):
    """The PDS's answer contradicts the request: other CIDs stored (so the check-in's strong
    reference would be wrong), or an upload answered without a blob reference."""


@dataclass(frozen=True, slots=True)
class PostedCheckin:
    """What was written: both records, and the commit holding them."""

    did: str
    rkey: str
    checkin: Checkin
    checkin_uri: AtUri
    checkin_cid: CID
    post_uri: AtUri
    post_cid: CID
    commit_cid: str | None
    rev: str | None


def post_checkin(
    client: Client,
    *,
    lat: Degrees,
    lon: Degrees,
    place: str,
    text: str | None = None,
    photos: Sequence[PhotoInput] = (),
    did: str | None = None,
    rkey: str | None = None,
    **options: Any,
) -> PostedCheckin:
    """Post a check-in and its companion post as the logged-in `atproto.Client`.

    `options` are `compose_checkin`'s (category, venue_uri, precision, address, fsq_place_id,
    langs, facets, companions, visited_at, created_at, ...). `did` defaults to the session's.
    """
    _check_photo_inputs(photos)
    draft = compose_checkin(lat=lat, lon=lon, place=place, text=text, **options)
    repo = did or _session_did(client)
    key = rkey or checkin_rkey(draft.created_at)
    build_checkin_writes(repo, draft, rkey=key)  # every rule, before any upload
    uploaded = tuple(upload_photo(client, photo) for photo in photos)
    writes = build_checkin_writes(repo, replace(draft, photos=uploaded), rkey=key)
    return apply_checkin_writes(client, writes)


def upload_photo(client: Client, photo: PhotoInput) -> Photo:
    """Upload one photo (metadata stripped) and return it as a check-in photo."""
    prepared = prepare_photo(photo)
    response = client.invoke_procedure(
        nsids.REPO_UPLOAD_BLOB,
        content=prepared.data,
        headers={"Content-Type": prepared.mime_type},
    )
    blob = response.content["blob"] if isinstance(response.content, dict) else None
    try:
        ref = BlobRef.from_json(blob)
    except DataModelError as exc:
        raise UnexpectedReply(f"uploadBlob answered without a blob reference: {exc}") from None
    ratio = prepared.aspect_ratio
    return Photo(ref, prepared.alt, None if ratio is None else AspectRatio(*ratio))


def apply_checkin_writes(client: Client, writes: CheckinWrites) -> PostedCheckin:
    """One applyWrites creating the post and the check-in; checks the CIDs the PDS reports.

    The body is sent as the exact JSON built here: the SDK's models would re-serialize the post
    (adding `$type` to nested objects), and the locally computed CID would no longer match.
    """
    response = client.invoke_procedure(
        nsids.REPO_APPLY_WRITES,
        content=json.dumps(writes.apply_writes_input(), ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    body = response.content if isinstance(response.content, dict) else {}
    _confirm(writes, body)
    commit = body.get("commit") or {}
    return PostedCheckin(
        did=writes.did,
        rkey=writes.rkey,
        checkin=writes.checkin,
        checkin_uri=writes.checkin_uri,
        checkin_cid=writes.checkin_cid,
        post_uri=writes.post_uri,
        post_cid=writes.post_cid,
        commit_cid=commit.get("cid"),
        rev=commit.get("rev"),
    )


def _confirm(writes: CheckinWrites, body: dict[str, Any]) -> None:
    results = body.get("results") or []
    got = [(result.get("uri"), result.get("cid")) for result in results]
    expected = [
        (str(writes.post_uri), str(writes.post_cid)),
        (str(writes.checkin_uri), str(writes.checkin_cid)),
    ]
    if got != expected:
        raise UnexpectedReply(f"the PDS stored {got}, expected {expected}")


def _check_photo_inputs(photos: Sequence[PhotoInput]) -> None:
    if len(photos) > MAX_PHOTOS:
        raise CheckinError("record/photos", f"must have at most {MAX_PHOTOS} photos")
    for index, photo in enumerate(photos):
        if not photo.alt.strip():
            raise CheckinError(
                f"record/photos/{index}/alt", "must describe the photo (alt text is required)"
            )


def _session_did(client: Client) -> str:
    me = getattr(client, "me", None)
    if me is not None and getattr(me, "did", None):
        return str(me.did)
    return str(client.com.atproto.server.get_session().did)
