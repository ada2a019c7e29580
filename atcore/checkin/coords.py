"""Coordinates as exact integers, precision levels, and H3 cells.

The atproto data model has no floats, so the community location vocabulary writes degrees as
decimal strings. Skyspot's rule for those strings is `-?[0-9]{1,3}(.[0-9]{1,6})?`: no exponent, no
`+`, at most six decimals (0.000001° is about 11 cm, finer than any phone's GPS), latitude within
[-90, 90] and longitude within [-180, 180]. Parsed values are kept as integer microdegrees, so
comparisons, rounding and re-encoding are exact; `Decimal` views are available for arithmetic.

`Precision` is how precisely a check-in pins its author down. Coarse levels publish fewer
decimals and coarser H3 cells (see docs/lexicons.md for the table and the reasoning).

Errors: `CheckinError` (see `errors`) naming the field; `from_degrees` raises it with an empty path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

import h3

from atcore.checkin.errors import CheckinError

MICRO: Final = 1_000_000
MAX_DECIMALS: Final = 6
LATITUDE_LIMIT: Final = 90
LONGITUDE_LIMIT: Final = 180

# ASCII digits only: `\d` would also match other scripts' digits.
_DEGREES: Final = re.compile(r"(-?)([0-9]{1,3})(?:\.([0-9]{1,6}))?")
_TOO_PRECISE: Final = re.compile(r"-?[0-9]{1,3}\.[0-9]{7,}")
_ALTITUDE: Final = re.compile(r"-?[0-9]{1,5}(?:\.[0-9]{1,3})?")
_H3_CELL: Final = re.compile(r"[0-9a-f]{15}")


class Precision(StrEnum):
    """How precisely a check-in's published locations pin the author down."""

    EXACT = "exact"
    NEIGHBORHOOD = "neighborhood"
    CITY = "city"

    @property
    def max_decimals(self) -> int:
        """Most decimals a published coordinate may carry (2 ≈ 1.1 km, 1 ≈ 11 km of latitude)."""
        return _MAX_DECIMALS[self]

    @property
    def max_h3_resolution(self) -> int:
        """Finest H3 resolution a published cell may have (7: edge ≈ 1.4 km, 5: ≈ 9 km)."""
        return _MAX_H3_RESOLUTION[self]

    @property
    def default_h3_resolution(self) -> int:
        """The resolution writers publish by default (9: edge ≈ 200 m, for exact check-ins)."""
        return 9 if self is Precision.EXACT else self.max_h3_resolution

    @property
    def is_coarse(self) -> bool:
        return self is not Precision.EXACT


_MAX_DECIMALS: Final = {Precision.EXACT: 6, Precision.NEIGHBORHOOD: 2, Precision.CITY: 1}
_MAX_H3_RESOLUTION: Final = {Precision.EXACT: 15, Precision.NEIGHBORHOOD: 7, Precision.CITY: 5}


def parse_degrees(value: object, limit: int, path: str) -> int:
    """A decimal-degrees string → microdegrees; `limit` is 90 (latitude) or 180 (longitude)."""
    if type(value) is not str:
        raise CheckinError(path, "must be a string")
    match = _DEGREES.fullmatch(value)
    if match is None:
        if _TOO_PRECISE.fullmatch(value):
            raise CheckinError(path, f"must have at most {MAX_DECIMALS} decimal places")
        raise CheckinError(path, 'must be decimal degrees such as "-33.868820"')
    sign, whole, fraction = match.groups()
    micro = int(whole) * MICRO + (int(fraction.ljust(MAX_DECIMALS, "0")) if fraction else 0)
    if micro > limit * MICRO:
        raise CheckinError(path, f"must be between -{limit} and {limit}")
    return -micro if sign else micro


def format_degrees(micro: int) -> str:
    """Microdegrees → the shortest decimal string that says it exactly (`0`, `-12.5`)."""
    whole, fraction = divmod(abs(micro), MICRO)
    digits = f"{fraction:06d}".rstrip("0")
    sign = "-" if micro < 0 else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def decimals_of(micro: int) -> int:
    """How many decimals the shortest exact decimal form of `micro` microdegrees has."""
    if micro % MICRO == 0:
        return 0
    return MAX_DECIMALS - (len(str(abs(micro))) - len(str(abs(micro)).rstrip("0")))


def round_micro(micro: int, decimals: int) -> int:
    """Round microdegrees to `decimals` decimals, halves away from zero."""
    step: int = 10 ** (MAX_DECIMALS - decimals)
    quotient, remainder = divmod(abs(micro), step)
    if remainder * 2 >= step:
        quotient += 1
    return quotient * step if micro >= 0 else -quotient * step


def parse_altitude(value: object, path: str) -> Decimal:
    """Meters above mean sea level: a decimal string with at most 3 decimals and 5 digits."""
    if type(value) is not str or _ALTITUDE.fullmatch(value) is None:
        raise CheckinError(path, 'must be meters as a decimal string such as "35.5"')
    return Decimal(value)


def parse_h3_cell(value: object, path: str) -> int:
    """Check an H3 cell index (lowercase hex, as H3 writes it); returns its resolution."""
    if type(value) is not str or _H3_CELL.fullmatch(value) is None or not h3.is_valid_cell(value):
        raise CheckinError(path, "must be a valid H3 cell index in lowercase hexadecimal")
    return int(h3.get_resolution(value))


@dataclass(frozen=True, slots=True)
class Coordinates:
    """A WGS84 point in integer microdegrees (exact; no float ever touches it)."""

    latitude_e6: int
    longitude_e6: int

    def __post_init__(self) -> None:
        if not -LATITUDE_LIMIT * MICRO <= self.latitude_e6 <= LATITUDE_LIMIT * MICRO:
            raise CheckinError(
                "latitude", f"must be between -{LATITUDE_LIMIT} and {LATITUDE_LIMIT}"
            )
        if not -LONGITUDE_LIMIT * MICRO <= self.longitude_e6 <= LONGITUDE_LIMIT * MICRO:
            raise CheckinError(
                "longitude", f"must be between -{LONGITUDE_LIMIT} and {LONGITUDE_LIMIT}"
            )

    @classmethod
    def parse(cls, latitude: object, longitude: object, path: str = "") -> Coordinates:
        """Strictly parse the two strings of a location record (`path` prefixes error paths)."""
        prefix = f"{path}/" if path else ""
        return cls(
            parse_degrees(latitude, LATITUDE_LIMIT, f"{prefix}latitude"),
            parse_degrees(longitude, LONGITUDE_LIMIT, f"{prefix}longitude"),
        )

    @classmethod
    def from_degrees(
        cls, latitude: Decimal | str | int | float, longitude: Decimal | str | int | float
    ) -> Coordinates:
        """Any numeric input (a GPS float included), rounded half-even to 6 decimals."""
        return cls(_to_micro(latitude, "latitude"), _to_micro(longitude, "longitude"))

    @property
    def latitude(self) -> Decimal:
        return Decimal(self.latitude_e6).scaleb(-MAX_DECIMALS)

    @property
    def longitude(self) -> Decimal:
        return Decimal(self.longitude_e6).scaleb(-MAX_DECIMALS)

    @property
    def latitude_text(self) -> str:
        return format_degrees(self.latitude_e6)

    @property
    def longitude_text(self) -> str:
        return format_degrees(self.longitude_e6)

    @property
    def decimals(self) -> int:
        """Decimals needed to write both coordinates exactly."""
        return max(decimals_of(self.latitude_e6), decimals_of(self.longitude_e6))

    def rounded(self, decimals: int) -> Coordinates:
        return Coordinates(
            round_micro(self.latitude_e6, decimals), round_micro(self.longitude_e6, decimals)
        )

    def h3_cell(self, resolution: int) -> str:
        """The H3 cell holding this point (floats only inside the H3 library's indexing)."""
        return str(
            h3.latlng_to_cell(self.latitude_e6 / MICRO, self.longitude_e6 / MICRO, resolution)
        )


def _to_micro(value: Decimal | str | int | float, field: str) -> int:
    try:
        # A float goes through its shortest repr, so 48.8566 means 48.8566, not its binary value.
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        micro = number.scaleb(MAX_DECIMALS).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    except (InvalidOperation, ValueError):
        raise CheckinError(field, f"must be a number, not {value!r}") from None
    if not micro.is_finite():
        raise CheckinError(field, "must be a finite number")
    return int(micro)
