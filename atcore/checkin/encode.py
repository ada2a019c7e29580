"""`Checkin` → record, in the data-model form (for DAG-CBOR) or the JSON form (for XRPC).

The inverse of `parse_checkin`: parsing an encoded check-in gives the same `Checkin` back.
Optional fields that are unset are left out (an exact precision too, since absent means exact);
coordinates are written in their shortest exact decimal form.
"""

from __future__ import annotations

from typing import Any

from atcore import nsids
from atcore.checkin.coords import Coordinates, Precision
from atcore.checkin.model import (
    AddressLocation,
    Checkin,
    FsqLocation,
    GeoLocation,
    H3Location,
    Location,
    OtherLocation,
    Photo,
    Place,
    StrongRef,
)
from atcore.datajson import data_to_json


def checkin_to_data(checkin: Checkin) -> dict[str, Any]:
    """The record as data-model values (`CID` blob refs), ready for `atcore.dagcbor.encode`."""
    record: dict[str, Any] = {
        "$type": nsids.SKYSPOT_CHECKIN,
        "place": place_to_data(checkin.place),
        "locations": [location_to_data(location) for location in checkin.locations],
    }
    if checkin.precision is not Precision.EXACT:
        record["precision"] = checkin.precision.value
    if checkin.text is not None:
        record["text"] = checkin.text
    if checkin.facets:
        record["facets"] = [dict(facet) for facet in checkin.facets]
    if checkin.langs:
        record["langs"] = list(checkin.langs)
    if checkin.photos:
        record["photos"] = [photo_to_data(photo) for photo in checkin.photos]
    if checkin.companions:
        record["companions"] = list(checkin.companions)
    if checkin.visited_at is not None:
        record["visitedAt"] = str(checkin.visited_at)
    record["createdAt"] = str(checkin.created_at)
    if checkin.post is not None:
        record["post"] = strong_ref_to_data(checkin.post)
    return record


def checkin_to_json(checkin: Checkin) -> dict[str, Any]:
    """The record in the atproto JSON form (`$link` blob refs), as XRPC writes take it."""
    encoded: dict[str, Any] = data_to_json(checkin_to_data(checkin))
    return encoded


def place_to_data(place: Place) -> dict[str, Any]:
    data: dict[str, Any] = {"name": place.name}
    if place.category is not None:
        data["category"] = place.category
    if place.uri is not None:
        data["uri"] = place.uri
    return data


def location_to_data(location: Location) -> dict[str, Any]:
    match location:
        case GeoLocation(coordinates, altitude, name):
            data = {"$type": nsids.LOCATION_GEO, **_degrees(coordinates)}
            if altitude is not None:
                data["altitude"] = f"{altitude:f}"
            return _named(data, name)
        case H3Location(cell, _resolution, name):
            return _named({"$type": nsids.LOCATION_HTHREE, "value": cell}, name)
        case AddressLocation(country, postal_code, region, locality, street, name):
            data = {"$type": nsids.LOCATION_ADDRESS, "country": country}
            optional = {
                "postalCode": postal_code,
                "region": region,
                "locality": locality,
                "street": street,
            }
            data.update((key, value) for key, value in optional.items() if value is not None)
            return _named(data, name)
        case FsqLocation(place_id, coordinates, name):
            data = {"$type": nsids.LOCATION_FSQ, "fsq_place_id": place_id}
            if coordinates is not None:
                data.update(_degrees(coordinates))
            return _named(data, name)
        case OtherLocation(_kind, other):
            return dict(other)
    raise TypeError(f"not a location: {location!r}")  # pragma: no cover - exhaustive above


def photo_to_data(photo: Photo) -> dict[str, Any]:
    data: dict[str, Any] = {"image": photo.image.to_data(), "alt": photo.alt}
    if photo.aspect_ratio is not None:
        ratio = photo.aspect_ratio
        data["aspectRatio"] = {"width": ratio.width, "height": ratio.height}
    return data


def strong_ref_to_data(ref: StrongRef) -> dict[str, str]:
    return {"uri": str(ref.uri), "cid": str(ref.cid)}


def _degrees(coordinates: Coordinates) -> dict[str, str]:
    return {"latitude": coordinates.latitude_text, "longitude": coordinates.longitude_text}


def _named(data: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name is not None:
        data["name"] = name
    return data
