"""Building a check-in and its companion post, offline: no network, no SDK.

`compose_checkin` turns a developer's inputs (floats welcome) into a typed `Checkin`: coordinates
rounded to the precision's decimals, an H3 cell at the precision's resolution, optional address
and Foursquare entries. `build_checkin_writes` then makes both records for one repository and
record key: the post first, its CID computed locally from its DAG-CBOR encoding (exactly what the
PDS will store, so the strong reference is right before anything is sent), then the check-in
holding that reference. Skyspot's rules are checked locally too (`CheckinError`), so a bad
check-in fails before any upload or write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from atcore import dagcbor, nsids
from atcore.checkin import (
    AddressLocation,
    Checkin,
    CheckinError,
    Coordinates,
    FsqLocation,
    GeoLocation,
    H3Location,
    Location,
    Photo,
    Place,
    Precision,
    StrongRef,
    checkin_to_data,
    checkin_to_json,
    parse_checkin,
)
from atcore.cid import CID
from atcore.datajson import json_to_data
from atcore.syntax import AtUri, Datetime
from atcore.tid import MAX_CLOCK_ID, tid_from_parts
from skyspot_client.post import compose_post

Degrees = Decimal | str | int | float


@dataclass(frozen=True, slots=True)
class CheckinWrites:
    """Both records of one check-in, for one `com.atproto.repo.applyWrites`."""

    did: str
    rkey: str
    checkin: Checkin
    checkin_record: dict[str, Any]
    checkin_cid: CID
    post_record: dict[str, Any]
    post_cid: CID

    @property
    def checkin_uri(self) -> AtUri:
        return AtUri.make(self.did, nsids.SKYSPOT_CHECKIN, self.rkey)

    @property
    def post_uri(self) -> AtUri:
        return AtUri.make(self.did, nsids.BSKY_FEED_POST, self.rkey)

    def apply_writes_input(self) -> dict[str, Any]:
        """The applyWrites request body (JSON form), for clients other than the SDK."""
        return {
            "repo": self.did,
            "writes": [
                _create(nsids.BSKY_FEED_POST, self.rkey, self.post_record),
                _create(nsids.SKYSPOT_CHECKIN, self.rkey, self.checkin_record),
            ],
        }


def _create(collection: str, rkey: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "$type": f"{nsids.REPO_APPLY_WRITES}#create",
        "collection": collection,
        "rkey": rkey,
        "value": value,
    }


def compose_checkin(
    *,
    lat: Degrees,
    lon: Degrees,
    place: str,
    text: str | None = None,
    photos: Sequence[Photo] = (),
    category: str | None = None,
    venue_uri: str | None = None,
    precision: Precision | str = Precision.EXACT,
    altitude: Decimal | None = None,
    address: AddressLocation | None = None,
    fsq_place_id: str | None = None,
    h3_resolution: int | None = None,
    with_h3: bool = True,
    langs: Sequence[str] = (),
    facets: Sequence[Mapping[str, Any]] = (),
    companions: Sequence[str] = (),
    visited_at: dt.datetime | None = None,
    created_at: dt.datetime | None = None,
) -> Checkin:
    """A typed check-in from plain inputs. Coarse precisions round the coordinates (and pick a
    coarse H3 cell) here, so exact coordinates never leave the device for such a check-in."""
    level = _precision(precision)
    try:
        point = Coordinates.from_degrees(lat, lon)
    except CheckinError as exc:  # name the field where the record will hold it
        raise CheckinError(f"record/locations/0/{exc.path}", exc.reason) from None
    published = point.rounded(level.max_decimals)
    locations: list[Location] = [GeoLocation(published, altitude)]
    if address is not None:
        locations.append(address)
    if fsq_place_id is not None:
        locations.append(FsqLocation(fsq_place_id, point))
    if with_h3:
        resolution = level.default_h3_resolution if h3_resolution is None else h3_resolution
        locations.append(H3Location(published.h3_cell(resolution), resolution))
    return Checkin(
        place=Place(place, category, venue_uri),
        locations=tuple(locations),
        created_at=Datetime.from_datetime(created_at or dt.datetime.now(dt.UTC)),
        precision=level,
        text=text,
        facets=tuple(facets),
        langs=tuple(langs),
        photos=tuple(photos),
        companions=tuple(companions),
        visited_at=None if visited_at is None else Datetime.from_datetime(visited_at),
    )


def build_checkin_writes(did: str, checkin: Checkin, *, rkey: str | None = None) -> CheckinWrites:
    """Both records under one record key (a TID at `createdAt` unless given), checked locally."""
    key = rkey if rkey is not None else checkin_rkey(checkin.created_at)
    # The same rules the PDS enforces, before anything is uploaded or written (and before the
    # post is composed from fields that might be malformed).
    parse_checkin(checkin_to_data(checkin), author=did, rkey=key)
    post_uri = AtUri.make(did, nsids.BSKY_FEED_POST, key)
    checkin_uri = AtUri.make(did, nsids.SKYSPOT_CHECKIN, key)
    post_record = compose_post(checkin, checkin_uri=checkin_uri)
    post_cid, _block = dagcbor.cid_of(json_to_data(post_record))
    linked = dataclasses.replace(checkin, post=StrongRef(post_uri, post_cid))
    data = checkin_to_data(linked)
    parse_checkin(data, author=did, rkey=key)  # and the post reference, now that it is set
    checkin_cid, _block = dagcbor.cid_of(data)
    return CheckinWrites(
        did=did,
        rkey=key,
        checkin=linked,
        checkin_record=checkin_to_json(linked),
        checkin_cid=checkin_cid,
        post_record=post_record,
        post_cid=post_cid,
    )


def checkin_rkey(created_at: Datetime) -> str:
    """A TID at the check-in's creation time, with a random clock id."""
    return str(tid_from_parts(created_at.epoch_us, secrets.randbelow(MAX_CLOCK_ID + 1)))


def _precision(value: Precision | str) -> Precision:
    try:
        return Precision(value)
    except ValueError:
        known = ", ".join(p.value for p in Precision)
        raise CheckinError("record/precision", f"must be one of {known}") from None
