"""The typed check-in: frozen dataclasses every service shares.

A `Checkin` is what `parse_checkin` returns for a record that passed the lexicon and Skyspot's
semantic rules, and what writers (the `skyspot_client` helper, the seed script) build before
encoding with `checkin_to_json`. Coordinates are integer microdegrees (`Coordinates`), datetimes
are the exact strings written (`Datetime`), blobs are `BlobRef`s and the post reference a `CID`.

Facets are kept as their data-model maps: they are the `app.bsky.richtext.facet` vocabulary,
passed through to the companion post unchanged, and Skyspot reads nothing inside them beyond the
byte ranges it checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from atcore.checkin.coords import Coordinates, Precision
from atcore.cid import CID
from atcore.datajson import BlobRef
from atcore.syntax import AtUri, Datetime


@dataclass(frozen=True, slots=True)
class GeoLocation:
    """`community.lexicon.location.geo`: the check-in's point."""

    coordinates: Coordinates
    altitude: Decimal | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class AddressLocation:
    """`community.lexicon.location.address`."""

    country: str
    postal_code: str | None = None
    region: str | None = None
    locality: str | None = None
    street: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class FsqLocation:
    """`community.lexicon.location.fsq`: a Foursquare Open Source Places venue."""

    place_id: str
    coordinates: Coordinates | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class H3Location:
    """`community.lexicon.location.hthree`: an H3 cell and its resolution."""

    cell: str
    resolution: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class OtherLocation:
    """A location type Skyspot does not know (the union is open): kept as its data-model map."""

    type: str
    data: Mapping[str, Any] = field(hash=False)


Location = GeoLocation | AddressLocation | FsqLocation | H3Location | OtherLocation


@dataclass(frozen=True, slots=True)
class Place:
    """The venue or area checked in at."""

    name: str
    category: str | None = None
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class AspectRatio:
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Photo:
    """One photo: an `app.bsky.embed.images#image`."""

    image: BlobRef
    alt: str
    aspect_ratio: AspectRatio | None = None


@dataclass(frozen=True, slots=True)
class StrongRef:
    """A `com.atproto.repo.strongRef`: one exact version of a record."""

    uri: AtUri
    cid: CID


@dataclass(frozen=True, slots=True)
class Checkin:
    """An `app.skyspot.checkin` record, parsed and checked."""

    place: Place
    locations: tuple[Location, ...]
    created_at: Datetime
    precision: Precision = Precision.EXACT
    text: str | None = None
    facets: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    langs: tuple[str, ...] = ()
    photos: tuple[Photo, ...] = ()
    companions: tuple[str, ...] = ()
    visited_at: Datetime | None = None
    post: StrongRef | None = None

    @property
    def geo(self) -> GeoLocation:
        """The check-in's one geo location (parsing guarantees there is exactly one)."""
        for location in self.locations:
            if isinstance(location, GeoLocation):
                return location
        raise LookupError("a check-in without a geo location was constructed by hand")

    @property
    def coordinates(self) -> Coordinates:
        return self.geo.coordinates

    @property
    def h3(self) -> H3Location | None:
        """The first H3 cell published, if any."""
        return next((loc for loc in self.locations if isinstance(loc, H3Location)), None)

    @property
    def address(self) -> AddressLocation | None:
        """The first address published, if any."""
        return next((loc for loc in self.locations if isinstance(loc, AddressLocation)), None)

    @property
    def visited(self) -> Datetime:
        """When the visit happened: `visitedAt`, else `createdAt`."""
        return self.visited_at if self.visited_at is not None else self.created_at
