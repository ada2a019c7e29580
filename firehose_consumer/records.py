"""Check-in records to index rows: decode, validate (lexicon + Skyspot rules), flatten.

Validation is `atcore.checkin.validate_checkin` with the author and rkey known, so the companion
post reference is checked too (same repository, same record key). A record that fails is an
`InvalidRecord` (a `ValueError`): the consumer counts it and does not index it; it never stops
the pipeline.

Rows follow `atcore.index.schema.checkin`: microdegrees, H3 cells at the band resolutions (blank
below the record's precision), `sort_at = min(created_at, indexed_at)` so a back- or future-dated
`createdAt` cannot jump the newest-first order.
"""

from __future__ import annotations

from typing import Any, Final

from atcore import dagcbor, nsids
from atcore.checkin import Checkin, CheckinError, Precision, validate_checkin
from atcore.index.geo import cells_for_point
from atcore.lexicon import Catalog

CHECKIN: Final = nsids.SKYSPOT_CHECKIN
POST: Final = nsids.BSKY_FEED_POST
MAX_RECORD_BYTES: Final = 1_000_000


class InvalidRecord(ValueError):
    """A check-in record the index refuses (not DAG-CBOR, too big, or not a valid check-in)."""


def decode_checkin(catalog: Catalog, block: bytes, *, did: str, rkey: str) -> Checkin:
    if len(block) > MAX_RECORD_BYTES:
        raise InvalidRecord(f"record is {len(block)} bytes")
    try:
        record = dagcbor.decode(block)
    except dagcbor.DagCborError as exc:
        raise InvalidRecord(f"record is not DAG-CBOR: {exc}") from exc
    if not isinstance(record, dict):
        raise InvalidRecord("record is not a map")
    try:
        return validate_checkin(catalog, record, author=did, rkey=rkey)
    except CheckinError as exc:
        raise InvalidRecord(str(exc)) from exc


def checkin_row(
    checkin: Checkin,
    *,
    did: str,
    rkey: str,
    cid: str,
    rev: str,
    indexed_at: int,
    visible: bool,
    post_exists: bool,
) -> dict[str, Any]:
    """The `checkin` table row for a validated record."""
    point = checkin.coordinates
    resolution = (
        None if checkin.precision is Precision.EXACT else (checkin.precision.max_h3_resolution)
    )
    cells = cells_for_point(point.latitude_e6, point.longitude_e6, precision=resolution)
    address = checkin.address
    created_at = checkin.created_at.epoch_ms
    return {
        "author_did": did,
        "collection": CHECKIN,
        "rkey": rkey,
        "cid": cid,
        "rev": rev,
        "lat_e6": point.latitude_e6,
        "lon_e6": point.longitude_e6,
        "h3_r7": cells.r7,
        "h3_r5": cells.r5,
        "h3_r3": cells.r3,
        "place_name": checkin.place.name,
        "place_category": checkin.place.category,
        "place_uri": checkin.place.uri,
        "place_locality": None if address is None else address.locality,
        "place_country": None if address is None else address.country,
        "post_uri": None if checkin.post is None else str(checkin.post.uri),
        "post_cid": None if checkin.post is None else str(checkin.post.cid),
        "post_exists": post_exists,
        "created_at": created_at,
        "visited_at": None if checkin.visited_at is None else checkin.visited_at.epoch_ms,
        "indexed_at": indexed_at,
        "sort_at": min(created_at, indexed_at),
        "visible": visible,
    }


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST}/{rkey}"
