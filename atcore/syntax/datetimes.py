"""atproto datetimes: the intersection of RFC 3339 and ISO 8601, always with a timezone.

Three levels, matching the interop fixtures:

- `is_valid_datetime_syntax` — the spec's reference regex only (`datetime_syntax_*`): four-digit
  year, `T`, seconds required, optional fraction, `Z` or `±HH:MM` (never `-00:00`), <= 64 chars.
- `parse_datetime` / `is_valid_datetime` — syntax plus calendar semantics (no month 13, no Feb 30,
  no hour 25, no second 61) and the instant, normalized to UTC, must not fall before year 0
  (`datetime_parse_invalid`). This is what Lexicon's `datetime` format means.
- `parse_datetime_lenient` — for reading other people's data: also accepts a missing timezone
  (taken as UTC), `-00:00`, `±HHMM`/`±HH` offsets, lowercase `t`/`z` and a space separator, and
  returns the value re-rendered in the preferred form (`YYYY-MM-DDTHH:MM:SS.mmmZ`).

Calendar arithmetic is done here rather than with `datetime` because atproto allows year 0000,
which Python's `datetime` cannot represent; `Datetime.to_datetime()` raises `InvalidDatetime` for
such values. Errors: `InvalidDatetime`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final, NamedTuple, Self

from atcore.syntax._common import shown
from atcore.syntax.errors import InvalidDatetime

DATETIME_MAX_LENGTH: Final = 64
# The spec's reference regex, with capture groups so one match also yields the fields.
_STRICT_MATCH: Final = re.compile(
    r"([0-9]{4})-([01][0-9])-([0-3][0-9])T([0-2][0-9]):([0-6][0-9]):([0-6][0-9])"
    r"(?:\.([0-9]{1,20}))?(?:Z|([+-])([0-2][0-9]):([0-5][0-9]))"
).fullmatch
_LENIENT_MATCH: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,20}))?(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
).fullmatch
_SECONDS_PER_DAY: Final = 86_400
_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Fields(NamedTuple):
    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    fraction: str  # the digits after the decimal point, possibly empty
    offset_minutes: int


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (valid for year 0 too)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


_YEAR_ZERO_EPOCH_SECONDS: Final = _days_from_civil(0, 1, 1) * _SECONDS_PER_DAY


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and _is_leap(year) else _MONTH_DAYS[month - 1]


def _strict_fields(value: str) -> _Fields | None:
    """The fields of a datetime that passes the strict syntax check; None when it does not."""
    match = _STRICT_MATCH(value) if len(value) <= DATETIME_MAX_LENGTH else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    offset = 0
    if sign is not None:
        offset = int(off_h) * 60 + int(off_m)
        if sign == "-":
            if offset == 0:  # "-00:00" means "offset unknown" in RFC 3339: not allowed
                return None
            offset = -offset
    return _Fields(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        fraction or "",
        offset,
    )


def _fields(value: str) -> _Fields:
    """The fields of a value already known to be valid (a `Datetime`)."""
    fields = _strict_fields(value)
    if fields is None:  # pragma: no cover - a Datetime was validated on construction
        raise InvalidDatetime(f"invalid datetime syntax: {shown(value)}")
    return fields


def _epoch_seconds(f: _Fields) -> int:
    """Whole seconds since the Unix epoch of the instant, normalized to UTC."""
    days = _days_from_civil(f.year, f.month, f.day)
    local = days * _SECONDS_PER_DAY + f.hour * 3600 + f.minute * 60 + f.second
    return local - f.offset_minutes * 60


def _semantic_error(f: _Fields) -> str | None:
    if not 1 <= f.month <= 12:
        return "month out of range"
    if not 1 <= f.day <= _days_in_month(f.year, f.month):
        return "day out of range"
    if f.hour > 23 or f.minute > 59 or f.second > 59:
        return "time of day out of range"
    if abs(f.offset_minutes) >= 24 * 60:
        return "timezone offset out of range"
    # Only a year-0 value with a positive offset can normalize to before year 0.
    if f.year == 0 and _epoch_seconds(f) < _YEAR_ZERO_EPOCH_SECONDS:
        return "normalizes to a time before year 0"
    return None


def is_valid_datetime_syntax(value: str) -> bool:
    """The spec's syntax check alone (no calendar semantics)."""
    return _strict_fields(value) is not None


class Datetime(str):
    """A valid atproto datetime string, kept exactly as written (it is hashed into records)."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        fields = _strict_fields(value)
        if fields is None:
            raise InvalidDatetime(f"invalid datetime syntax: {shown(value)}")
        problem = _semantic_error(fields)
        if problem is not None:
            raise InvalidDatetime(f"invalid datetime ({problem}): {shown(value)}")
        return super().__new__(cls, value)

    @classmethod
    def from_datetime(cls, moment: dt.datetime) -> Datetime:
        """Render an aware datetime in the preferred form: UTC, millisecond precision, `Z`."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidDatetime("a naive datetime has no timezone; atproto requires one")
        utc = moment.astimezone(dt.UTC)
        # Formatted by hand: strftime("%Y") does not zero-pad years before 1000 on glibc.
        return cls(
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
        )

    @classmethod
    def now(cls) -> Datetime:
        return cls.from_datetime(dt.datetime.now(dt.UTC))

    @property
    def epoch_ms(self) -> int:
        """Milliseconds since the Unix epoch (fraction truncated; negative before 1970)."""
        fields = _fields(self)
        return _epoch_seconds(fields) * 1000 + int((fields.fraction + "000")[:3])

    @property
    def epoch_us(self) -> int:
        """Microseconds since the Unix epoch (fraction truncated; negative before 1970)."""
        fields = _fields(self)
        return _epoch_seconds(fields) * 1_000_000 + int((fields.fraction + "000000")[:6])

    def to_datetime(self) -> dt.datetime:
        """An aware `datetime` in the written offset (fraction truncated to microseconds)."""
        f = _fields(self)
        tz = dt.UTC if self.endswith("Z") else dt.timezone(dt.timedelta(minutes=f.offset_minutes))
        micros = int((f.fraction + "000000")[:6])
        try:
            return dt.datetime(f.year, f.month, f.day, f.hour, f.minute, f.second, micros, tz)
        except ValueError as err:
            raise InvalidDatetime(f"{self} is outside the range of Python's datetime") from err


def parse_datetime(value: str) -> Datetime:
    return value if type(value) is Datetime else Datetime(value)


def is_valid_datetime(value: str) -> bool:
    fields = _strict_fields(value)
    return fields is not None and _semantic_error(fields) is None


def parse_datetime_lenient(value: str) -> Datetime:
    """Accept common near-misses and return a strict `Datetime`; strict input comes back as is."""
    if is_valid_datetime(value):
        return parse_datetime(value)
    match = _LENIENT_MATCH(value) if len(value) <= DATETIME_MAX_LENGTH else None
    if match is None:
        raise InvalidDatetime(f"not a datetime, even leniently: {shown(value)}")
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    offset = int(off_h or 0) * 60 + int(off_m or 0)
    fields = _Fields(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        fraction or "",
        -offset if sign == "-" else offset,
    )
    problem = _semantic_error(fields)
    if problem is not None:
        raise InvalidDatetime(f"invalid datetime ({problem}): {shown(value)}")
    return _render_utc_ms(_epoch_seconds(fields), int((fields.fraction + "000")[:3]))


def _render_utc_ms(epoch_seconds: int, millis: int) -> Datetime:
    days, second_of_day = divmod(epoch_seconds, _SECONDS_PER_DAY)
    year, month, day = _civil_from_days(days)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
    return Datetime(text)


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of `_days_from_civil`."""
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + (3 if month_index < 10 else -9)
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day
