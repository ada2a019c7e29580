"""The companion `app.bsky.feed.post` of a check-in (the convention is in docs/lexicons.md).

The post's text is the check-in's text (cut to fit, with its facets kept when they still fit),
a blank line, then `📍 <place name>` with a link facet on the name. The link goes to the venue's
own web page when the check-in has one, else to OpenStreetMap at the published coordinates (no
marker and a wide zoom for coarse precisions). Photos become an `app.bsky.embed.images` embed with
the very same image objects; a check-in without photos gets an `app.bsky.embed.external` card for
the link instead. The post points back at its check-in in an extra field named after the check-in
NSID (records are open objects: extra fields survive every hop), and tags itself `skyspot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import regex

from atcore import nsids
from atcore.checkin import Checkin, Precision
from atcore.checkin.encode import photo_to_data
from atcore.datajson import data_to_json

PIN: Final = "📍"
POST_TAG: Final = "skyspot"
CHECKIN_FIELD: Final = nsids.SKYSPOT_CHECKIN  # the post's back-reference: the check-in's at-uri
MAX_POST_GRAPHEMES: Final = 300
MAX_POST_BYTES: Final = 3000
ELLIPSIS: Final = "…"
_OSM_ZOOM: Final = {Precision.EXACT: 17, Precision.NEIGHBORHOOD: 14, Precision.CITY: 11}
_GRAPHEME: Final = regex.compile(r"\X")


def venue_link(checkin: Checkin) -> str:
    """Where the venue name in the post links to."""
    uri = checkin.place.uri
    if uri is not None and uri.startswith(("https://", "http://")):
        return uri
    point = checkin.coordinates
    lat, lon = point.latitude_text, point.longitude_text
    zoom = _OSM_ZOOM[checkin.precision]
    if checkin.precision is Precision.EXACT:
        return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map={zoom}/{lat}/{lon}"
    return f"https://www.openstreetmap.org/#map={zoom}/{lat}/{lon}"


def compose_post(checkin: Checkin, *, checkin_uri: str) -> dict[str, Any]:
    """The companion post record, in the JSON form (as XRPC writes take it)."""
    link = venue_link(checkin)
    venue = f"{PIN} {checkin.place.name}"
    body, facets = _fit(checkin.text or "", checkin.facets, venue)
    text = f"{body}\n\n{venue}" if body else venue
    name_start = len(text.encode("utf-8")) - len(checkin.place.name.encode("utf-8"))
    facets.append(
        {
            "$type": nsids.BSKY_RICHTEXT_FACET,
            "index": {"byteStart": name_start, "byteEnd": len(text.encode("utf-8"))},
            "features": [{"$type": f"{nsids.BSKY_RICHTEXT_FACET}#link", "uri": link}],
        }
    )
    post: dict[str, Any] = {
        "$type": nsids.BSKY_FEED_POST,
        "text": text,
        "facets": facets,
        "embed": _embed(checkin, link),
        "createdAt": str(checkin.created_at),
        "tags": [POST_TAG],
        CHECKIN_FIELD: str(checkin_uri),
    }
    if checkin.langs:
        post["langs"] = list(checkin.langs)
    encoded: dict[str, Any] = data_to_json(post)
    return encoded


def _fit(
    text: str, facets: Sequence[Mapping[str, Any]], venue: str
) -> tuple[str, list[dict[str, Any]]]:
    """The check-in text cut so `text + blank line + venue` fits a post; facets that survive."""
    separator = 2  # "\n\n": two graphemes, two bytes
    grapheme_budget = MAX_POST_GRAPHEMES - grapheme_count(venue) - separator
    byte_budget = MAX_POST_BYTES - len(venue.encode("utf-8")) - separator
    graphemes = _GRAPHEME.findall(text)
    if len(graphemes) <= grapheme_budget and len(text.encode("utf-8")) <= byte_budget:
        return text, [dict(facet) for facet in facets]
    kept: list[str] = []
    used = len(ELLIPSIS.encode("utf-8"))
    for grapheme in graphemes[: max(0, grapheme_budget - 1)]:
        size = len(grapheme.encode("utf-8"))
        if used + size > byte_budget:
            break
        kept.append(grapheme)
        used += size
    cut = "".join(kept).rstrip()
    limit = len(cut.encode("utf-8"))
    surviving = [dict(facet) for facet in facets if facet["index"]["byteEnd"] <= limit]
    return (cut + ELLIPSIS if cut else ""), surviving


def grapheme_count(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def _embed(checkin: Checkin, link: str) -> dict[str, Any]:
    if checkin.photos:
        return {
            "$type": nsids.BSKY_EMBED_IMAGES,
            "images": [photo_to_data(photo) for photo in checkin.photos],
        }
    description = f"Check-in at {checkin.place.name}"
    address = checkin.address
    if address is not None and address.locality:
        description += f", {address.locality}"
    return {
        "$type": nsids.BSKY_EMBED_EXTERNAL,
        "external": {"uri": link, "title": checkin.place.name, "description": description},
    }


__all__ = [
    "CHECKIN_FIELD",
    "PIN",
    "POST_TAG",
    "compose_post",
    "grapheme_count",
    "venue_link",
]
