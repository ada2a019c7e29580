"""The seed's offline parts: identities and record keys from the seed, places, photos, pacing."""

from __future__ import annotations

import datetime as dt
import io
import math
import random
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from atcore.checkin import AspectRatio, Photo, Precision
from atcore.cid import CID
from atcore.datajson import BlobRef
from atcore.syntax import is_valid_tid
from atcore.tid import tid_to_parts
from skyspot_client.compose import build_checkin_writes, compose_checkin
from skyspot_client.seed.images import generated_photo
from skyspot_client.seed.places import City, CityPicker, jitter
from skyspot_client.seed.plan import (
    MAX_CHECKINS,
    SeedPlanError,
    plan_checkin,
    seed_accounts,
    seed_clock_id,
    seed_rkey,
    seeded_index,
)
from skyspot_client.seed.runner import RateLimiter

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
moments = st.datetimes(
    min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)


@pytest.fixture(scope="module")
def picker() -> CityPicker:
    return CityPicker()


# -- identities ----------------------------------------------------------------------------------
def test_accounts_are_derived_from_the_seed_and_secret() -> None:
    first = seed_accounts(seed=3, count=3, prefix="spot", domain=".test", secret="s")
    again = seed_accounts(seed=3, count=3, prefix="spot", domain=".test", secret="s")
    other = seed_accounts(seed=3, count=3, prefix="spot", domain=".test", secret="t")
    assert first == again
    assert [a.handle for a in first] == ["spot-3-0.test", "spot-3-1.test", "spot-3-2.test"]
    assert len({a.password for a in first}) == 3
    assert all(a.password != b.password for a, b in zip(first, other, strict=True))


def test_overlong_handles_are_refused() -> None:
    with pytest.raises(SeedPlanError, match="handle-prefix"):
        seed_accounts(seed=1, count=1, prefix="averyveryverylongprefix", domain=".test", secret="s")


@given(seed=st.integers(0, 10**6), index=st.integers(0, MAX_CHECKINS - 1), when=moments)
def test_record_keys_encode_the_checkin_number(seed: int, index: int, when: dt.datetime) -> None:
    rkey = seed_rkey(seed, index, when)
    assert is_valid_tid(rkey)
    assert seeded_index(seed, rkey) == index
    micros, clock_id = tid_to_parts(rkey)
    assert clock_id == seed_clock_id(seed)
    assert abs(micros - when.timestamp() * 1_000_000) < 2**20 + 1


def test_other_seeds_and_foreign_keys_are_not_counted() -> None:
    rkey = seed_rkey(1, 5, NOW)
    other = next(seed for seed in range(2, 5000) if seed_clock_id(seed) != seed_clock_id(1))
    assert seeded_index(other, rkey) is None
    assert seeded_index(1, "self") is None
    with pytest.raises(SeedPlanError):
        seed_rkey(1, MAX_CHECKINS, NOW)


# -- places ----------------------------------------------------------------------------------------
def _distance_km(city: City, lat: float, lon: float) -> float:
    phi1, phi2 = math.radians(city.latitude), math.radians(lat)
    dphi, dlambda = phi2 - phi1, math.radians(lon - city.longitude)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


@given(seed=st.integers(0, 2**32))
def test_points_fall_within_their_city(picker: CityPicker, seed: int) -> None:
    rng = random.Random(seed)
    city = picker.pick(rng)
    point = jitter(city, rng)
    lat, lon = point.latitude_e6 / 1e6, point.longitude_e6 / 1e6
    assert _distance_km(city, lat, lon) <= city.radius_km * 1.01 + 0.01


def test_cities_are_drawn_by_population(picker: CityPicker) -> None:
    rng = random.Random(42)
    draws = Counter(picker.pick(rng) for _ in range(20_000))
    biggest = max(draws, key=lambda city: city.population)
    assert len(picker) > 20_000
    # The most-drawn cities are big ones, and big cities come up far more than small ones.
    assert draws.most_common(1)[0][0].population > 5_000_000
    assert draws[biggest] > 20
    small = sum(n for city, n in draws.items() if city.population < 20_000)
    assert small / 20_000 < 0.15


# -- plans ---------------------------------------------------------------------------------------
def _plan(picker: CityPicker, index: int, accounts: int = 20, **extra: float) -> object:
    options = {"days": 14.0, "photo_ratio": 0.6, **extra}
    return plan_checkin(seed=9, index=index, accounts=accounts, picker=picker, now=NOW, **options)


def test_plans_are_reproducible(picker: CityPicker) -> None:
    assert _plan(picker, 17) == _plan(picker, 17)
    assert _plan(picker, 17) != _plan(picker, 18)


def test_every_planned_checkin_is_valid(picker: CityPicker) -> None:
    blob = BlobRef(CID.for_raw(b"x"), "image/jpeg", 1)
    precisions: Counter[Precision] = Counter()
    for index in range(300):
        planned = plan_checkin(
            seed=9, index=index, accounts=5, picker=picker, now=NOW, days=14.0, photo_ratio=0.6
        )
        assert 0 <= planned.account < 5
        assert NOW - dt.timedelta(days=14) <= planned.created_at <= NOW
        assert 0 <= planned.photo_count <= 4
        precisions[planned.precision] += 1
        photos = [Photo(blob, "a photo", AspectRatio(4, 3))] * planned.photo_count
        checkin = compose_checkin(
            lat=planned.venue.point.latitude,
            lon=planned.venue.point.longitude,
            place=planned.place_name,
            text=planned.text,
            photos=photos,
            precision=planned.precision,
            address=planned.address,
            created_at=planned.created_at,
        )
        writes = build_checkin_writes(DID, checkin, rkey=planned.rkey())
        assert seeded_index(9, writes.rkey) == index
        if planned.precision is not Precision.EXACT:
            assert planned.place_name == planned.venue.city.name
    assert set(precisions) == set(Precision)


def test_photo_ratio_zero_means_no_photos(picker: CityPicker) -> None:
    plans = [
        plan_checkin(seed=1, index=i, accounts=3, picker=picker, now=NOW, days=1, photo_ratio=0)
        for i in range(50)
    ]
    assert all(plan.photo_count == 0 for plan in plans)


def test_generated_photos_are_jpegs_with_honest_alt_text() -> None:
    data, alt = generated_photo(random.Random(1), "Café Aurora")
    assert (data, alt) == generated_photo(random.Random(1), "Café Aurora")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.size in {(400, 300), (300, 400), (400, 400), (480, 270)}
    assert "Café Aurora" in alt
    assert "placeholder" in alt
    assert len(data) < 100_000


# -- pacing ----------------------------------------------------------------------------------------
def test_rate_limiter_spaces_acquisitions() -> None:
    limiter = RateLimiter(40.0)
    started = time.monotonic()
    for _ in range(9):
        limiter.acquire()
    assert time.monotonic() - started >= 8 / 40 - 0.01


def test_unlimited_rate_does_not_wait() -> None:
    limiter = RateLimiter(0)
    started = time.monotonic()
    for _ in range(1000):
        limiter.acquire()
    assert time.monotonic() - started < 0.5
