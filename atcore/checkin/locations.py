"""The `locations` array: community location vocabulary → typed locations, with Skyspot's rules.

Rules beyond the lexicon (each failure names its field):

* exactly one `community.lexicon.location.geo` (the check-in's point); others may accompany it;
* degrees as `-?[0-9]{1,3}(.[0-9]{1,6})?` within range (see `coords`), at most as many decimals
  as the precision allows; an altitude is meters with at most 3 decimals;
* H3 cells are valid lowercase indexes no finer than the precision allows;
* a coarse check-in carries nothing that pins a venue: no Foursquare id, no street, no postal code.

Location types Skyspot does not know are kept (`OtherLocation`): the union is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atcore import nsids
from atcore.checkin.coords import Coordinates, Precision, parse_altitude, parse_h3_cell
from atcore.checkin.errors import CheckinError
from atcore.checkin.model import (
    AddressLocation,
    FsqLocation,
    GeoLocation,
    H3Location,
    Location,
    OtherLocation,
)

MAX_LOCATIONS = 8


def parse_locations(value: object, precision: Precision, path: str) -> tuple[Location, ...]:
    if type(value) is not list or not value:
        raise CheckinError(path, "must be a non-empty array")
    if len(value) > MAX_LOCATIONS:
        raise CheckinError(path, f"must have at most {MAX_LOCATIONS} entries")
    locations = tuple(
        _location(item, precision, f"{path}/{index}") for index, item in enumerate(value)
    )
    geo_count = sum(isinstance(location, GeoLocation) for location in locations)
    if geo_count != 1:
        raise CheckinError(
            path, f"must contain exactly one {nsids.LOCATION_GEO} entry (found {geo_count})"
        )
    return locations


def _location(value: object, precision: Precision, path: str) -> Location:
    if not isinstance(value, Mapping):
        raise CheckinError(path, "must be an object")
    kind = value.get("$type")
    if type(kind) is not str or not kind:
        raise CheckinError(path, "must have a $type")
    if kind == nsids.LOCATION_GEO:
        return _geo(value, precision, path)
    if kind == nsids.LOCATION_HTHREE:
        return _hthree(value, precision, path)
    if kind == nsids.LOCATION_ADDRESS:
        return _address(value, precision, path)
    if kind == nsids.LOCATION_FSQ:
        return _fsq(value, precision, path)
    return OtherLocation(kind, value)


def _geo(value: Mapping[str, Any], precision: Precision, path: str) -> GeoLocation:
    coordinates = Coordinates.parse(value.get("latitude"), value.get("longitude"), path)
    _check_decimals(value, coordinates, precision, path)
    altitude = value.get("altitude")
    return GeoLocation(
        coordinates,
        altitude=None if altitude is None else parse_altitude(altitude, f"{path}/altitude"),
        name=optional_str(value, "name", path),
    )


def _hthree(value: Mapping[str, Any], precision: Precision, path: str) -> H3Location:
    cell = value.get("value")
    resolution = parse_h3_cell(cell, f"{path}/value")
    if resolution > precision.max_h3_resolution:
        raise CheckinError(
            f"{path}/value",
            f"must have H3 resolution at most {precision.max_h3_resolution} for "
            f"{precision} precision (this cell has {resolution})",
        )
    assert type(cell) is str  # parse_h3_cell checked it
    return H3Location(cell, resolution, optional_str(value, "name", path))


def _address(value: Mapping[str, Any], precision: Precision, path: str) -> AddressLocation:
    country = value.get("country")
    if type(country) is not str:
        raise CheckinError(f"{path}/country", "must be a string")
    if precision.is_coarse:
        for key in ("street", "postalCode"):
            if key in value:
                raise CheckinError(f"{path}/{key}", f"must be absent for {precision} precision")
    return AddressLocation(
        country,
        postal_code=optional_str(value, "postalCode", path),
        region=optional_str(value, "region", path),
        locality=optional_str(value, "locality", path),
        street=optional_str(value, "street", path),
        name=optional_str(value, "name", path),
    )


def _fsq(value: Mapping[str, Any], precision: Precision, path: str) -> FsqLocation:
    if precision.is_coarse:
        raise CheckinError(path, f"a Foursquare venue must not be given for {precision} precision")
    place_id = value.get("fsq_place_id")
    if type(place_id) is not str or not place_id.strip():
        raise CheckinError(f"{path}/fsq_place_id", "must be a non-empty string")
    latitude, longitude = value.get("latitude"), value.get("longitude")
    if (latitude is None) != (longitude is None):
        missing = "latitude" if latitude is None else "longitude"
        raise CheckinError(f"{path}/{missing}", "must be given together with the other coordinate")
    coordinates = None if latitude is None else Coordinates.parse(latitude, longitude, path)
    return FsqLocation(place_id, coordinates, optional_str(value, "name", path))


def _check_decimals(
    value: Mapping[str, Any], coordinates: Coordinates, precision: Precision, path: str
) -> None:
    """Coarse precisions publish fewer decimals; judged on the value, so `48.80` counts as 1."""
    allowed = precision.max_decimals
    if coordinates.decimals <= allowed:
        return
    rounded = coordinates.rounded(allowed)
    field = "latitude" if rounded.latitude_e6 != coordinates.latitude_e6 else "longitude"
    raise CheckinError(
        f"{path}/{field}",
        f"must have at most {allowed} decimal places for {precision} precision "
        f"(got {value.get(field)!r})",
    )


def optional_str(value: Mapping[str, Any], key: str, path: str) -> str | None:
    item = value.get(key)
    if item is not None and type(item) is not str:
        raise CheckinError(f"{path}/{key}", "must be a string")
    return item
