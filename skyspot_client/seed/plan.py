"""What a seed run writes, derived from the seed alone: accounts, and check-ins with their keys.

Re-running with the same `--seed` must add nothing, even days later, so nothing here may depend
on the clock except the `createdAt` of check-ins not yet written. The trick is the record key:

* accounts are `<prefix>-<seed>-<n>` on the PDS's handle domain, with a password derived from a
  secret (HMAC-SHA256), so a re-run logs back into the accounts it made;
* check-in number `i` gets the TID whose clock id is the seed's tag (10 bits of a hash of the
  seed) and whose low 20 timestamp bits are `i` (the rest is the creation time, so keys still
  sort by time to within about a second). Listing an account's check-ins and decoding their keys
  therefore says exactly which numbers exist, whichever account, process or day wrote them.

Each check-in's content comes from `random.Random(f"{seed}:{i}")`, independent of the others, so
any subset can be written in any order by any number of workers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import random
import re
from dataclasses import dataclass
from typing import Final

from atcore.checkin import AddressLocation, Precision
from atcore.syntax import InvalidSyntax
from atcore.tid import MAX_CLOCK_ID, tid_from_parts, tid_to_parts
from skyspot_client.seed.images import generated_photo
from skyspot_client.seed.places import CityPicker, Venue, venue

INDEX_BITS: Final = 20
MAX_CHECKINS: Final = 1 << INDEX_BITS
_INDEX_MASK: Final = MAX_CHECKINS - 1
_LABEL: Final = re.compile(r"[a-z][a-z0-9-]{1,16}[a-z0-9]")
_PRECISIONS: Final = ((Precision.EXACT, 85), (Precision.NEIGHBORHOOD, 10), (Precision.CITY, 5))
_TEXTS: Final = (
    "Back at {venue}!",
    "First time at {venue}. Not the last.",
    "{city} never gets old ✨",
    "Quick stop at {venue}",
    "Sunday well spent in {city}",
    "Recommend {venue} to anyone visiting {city}",
    "Checking in 📍",
)


class SeedPlanError(ValueError):
    """The seed options cannot make valid handles or record keys."""


@dataclass(frozen=True, slots=True)
class SeedAccount:
    index: int
    handle: str
    email: str
    password: str
    display_name: str


@dataclass(frozen=True, slots=True)
class PlannedCheckin:
    index: int
    account: int
    venue: Venue
    precision: Precision
    text: str | None
    photo_count: int
    created_at: dt.datetime
    seed: int

    @property
    def place_name(self) -> str:
        if self.precision is Precision.EXACT:
            return self.venue.name
        return self.venue.city.name

    @property
    def address(self) -> AddressLocation:
        city = self.venue.city
        return AddressLocation(city.country, locality=city.name)

    def rkey(self) -> str:
        return seed_rkey(self.seed, self.index, self.created_at)

    def photos(self) -> list[tuple[bytes, str]]:
        """The generated photos (JPEG bytes, alt text), made on demand: they are the bulk."""
        rng = random.Random(f"{self.seed}:{self.index}:photos")  # noqa: S311 - reproducible, not secret
        return [generated_photo(rng, self.place_name) for _ in range(self.photo_count)]


def seed_accounts(
    *, seed: int, count: int, prefix: str, domain: str, secret: str
) -> list[SeedAccount]:
    accounts = []
    for index in range(count):
        label = f"{prefix}-{seed}-{index}"
        if _LABEL.fullmatch(label) is None:
            raise SeedPlanError(
                f"handle label {label!r} is not 3-18 lowercase letters, digits or hyphens; "
                "use a shorter --handle-prefix"
            )
        handle = f"{label}{domain}"
        digest = hmac.new(secret.encode(), handle.encode(), hashlib.sha256).digest()
        password = base64.b32encode(digest).decode("ascii")[:24].lower()
        accounts.append(
            SeedAccount(
                index, handle, f"{label}@example.com", password, f"Spot Seeder {seed}-{index}"
            )
        )
    return accounts


def seed_clock_id(seed: int) -> int:
    digest = hashlib.sha256(f"skyspot-seed/{seed}".encode()).digest()
    return int.from_bytes(digest[:2], "big") & MAX_CLOCK_ID


def seed_rkey(seed: int, index: int, created_at: dt.datetime) -> str:
    if not 0 <= index < MAX_CHECKINS:
        raise SeedPlanError(f"check-in number {index} is beyond {MAX_CHECKINS - 1}")
    micros = int(created_at.timestamp() * 1_000_000)
    return str(tid_from_parts((micros & ~_INDEX_MASK) | index, seed_clock_id(seed)))


def seeded_index(seed: int, rkey: str) -> int | None:
    """The check-in number a record key encodes, or None when another seed (or nobody) made it."""
    try:
        micros, clock_id = tid_to_parts(rkey)
    except InvalidSyntax:
        return None
    return micros & _INDEX_MASK if clock_id == seed_clock_id(seed) else None


def plan_checkin(
    *,
    seed: int,
    index: int,
    accounts: int,
    picker: CityPicker,
    now: dt.datetime,
    days: float,
    photo_ratio: float,
) -> PlannedCheckin:
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - reproducible content, not a secret
    # Some accounts are much busier than others, as on any real network.
    account = rng.choices(range(accounts), weights=[1 / (n + 1) ** 0.6 for n in range(accounts)])
    spot = venue(picker, rng)
    precision = rng.choices([p for p, _ in _PRECISIONS], weights=[w for _, w in _PRECISIONS])[0]
    place = spot.name if precision is Precision.EXACT else spot.city.name
    text = (
        rng.choice(_TEXTS).format(venue=place, city=spot.city.name) if rng.random() < 0.7 else None
    )
    photo_count = rng.choices((1, 2, 3, 4), weights=(5, 3, 1, 1))[0]
    return PlannedCheckin(
        index=index,
        account=account[0],
        venue=spot,
        precision=precision,
        text=text,
        photo_count=photo_count if rng.random() < photo_ratio else 0,
        created_at=now - dt.timedelta(days=rng.random() * days),
        seed=seed,
    )
