"""Synthetic check-in indexes for the feed benchmark: SQLite files and PostgreSQL databases.

Check-ins sit around world cities, weighted by population and spread a few kilometres around
each centre (2% anywhere between 60°S and 70°N); they are up to 33 days old (the feed's window
is 30 days), by one author in twenty. Rows are exactly what the consumer writes (cells from
`atcore.index.geo.cells_for_point`), generated from a fixed seed, so every run and both
backends see the same data. The schema comes from the index's own Alembic migrations; rows are
then bulk-loaded (sqlite3 `executemany` in one transaction; PostgreSQL `COPY`).

Building a million rows takes a minute, so `cached_sqlite` keeps SQLite indexes in a cache
directory between runs. A cached file is reused while it is younger than `max_age_s` (its rows
age with the clock: a day changes which check-ins fall in the 30-day window by ~3%) and while its
name matches `DATA_VERSION` and the head of the index's migrations (a schema change rebuilds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from atcore.index import create_index_engine, migrate
from atcore.index.engine import MIGRATIONS_DIR
from atcore.index.geo import MICRO, cells_for_point

DAY_MS: Final = 86_400_000
AGE_DAYS: Final = 33
CHECKINS_PER_AUTHOR: Final = 20
BATCH: Final = 20_000
DATA_VERSION: Final = 1  # bump when `rows` changes, so cached indexes are rebuilt

# (name, latitude, longitude, population in millions): the weights of the synthetic world.
CITIES: Final = (
    ("tokyo", 35.6762, 139.6503, 37.4), ("delhi", 28.7041, 77.1025, 31.0),
    ("shanghai", 31.2304, 121.4737, 27.1), ("sao-paulo", -23.5505, -46.6333, 22.0),
    ("mexico-city", 19.4326, -99.1332, 21.8), ("cairo", 30.0444, 31.2357, 20.9),
    ("mumbai", 19.0760, 72.8777, 20.4), ("beijing", 39.9042, 116.4074, 20.4),
    ("dhaka", 23.8103, 90.4125, 21.0), ("osaka", 34.6937, 135.5023, 19.2),
    ("new-york", 40.7128, -74.0060, 18.8), ("karachi", 24.8607, 67.0011, 16.1),
    ("buenos-aires", -34.6037, -58.3816, 15.2), ("istanbul", 41.0082, 28.9784, 15.2),
    ("kolkata", 22.5726, 88.3639, 14.8), ("manila", 14.5995, 120.9842, 13.9),
    ("lagos", 6.5244, 3.3792, 13.9), ("rio", -22.9068, -43.1729, 13.4),
    ("los-angeles", 34.0522, -118.2437, 12.5), ("moscow", 55.7558, 37.6173, 12.5),
    ("paris", 48.8566, 2.3522, 11.0), ("jakarta", -6.2088, 106.8456, 10.6),
    ("london", 51.5074, -0.1278, 9.3), ("lima", -12.0464, -77.0428, 10.4),
    ("bangkok", 13.7563, 100.5018, 10.5), ("seoul", 37.5665, 126.9780, 9.9),
    ("chicago", 41.8781, -87.6298, 8.9), ("bogota", 4.7110, -74.0721, 10.8),
    ("tehran", 35.6892, 51.3890, 9.1), ("hong-kong", 22.3193, 114.1694, 7.5),
    ("madrid", 40.4168, -3.7038, 6.6), ("toronto", 43.6532, -79.3832, 6.2),
    ("berlin", 52.5200, 13.4050, 3.6), ("sydney", -33.8688, 151.2093, 5.3),
    ("nairobi", -1.2921, 36.8219, 4.7), ("san-francisco", 37.7749, -122.4194, 4.7),
    ("lyon", 45.7640, 4.8357, 1.7), ("reykjavik", 64.1466, -21.9426, 0.2),
)  # fmt: skip
SPREAD_DEGREES: Final = 0.06  # ~7 km standard deviation around a city centre
ANYWHERE_SHARE: Final = 0.02

COLUMNS: Final = (
    "author_did", "collection", "rkey", "cid", "rev", "lat_e6", "lon_e6", "h3_r7", "h3_r5",
    "h3_r3", "place_name", "post_uri", "post_exists", "created_at", "indexed_at", "sort_at",
    "visible",
)  # fmt: skip


def _point(rng: random.Random) -> tuple[int, int]:
    if rng.random() < ANYWHERE_SHARE:
        return round(rng.uniform(-60, 70) * MICRO), round(rng.uniform(-180, 180) * MICRO)
    _name, lat, lon, _pop = rng.choices(CITIES, weights=[c[3] for c in CITIES])[0]
    lat = max(-89.9, min(89.9, rng.gauss(lat, SPREAD_DEGREES)))
    lon = (rng.gauss(lon, SPREAD_DEGREES) + 180) % 360 - 180
    return round(lat * MICRO), round(lon * MICRO)


def rows(count: int, now_ms: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """`count` index rows in `COLUMNS` order."""
    rng = random.Random(seed)
    for number in range(count):
        did = f"did:plc:bench{number // CHECKINS_PER_AUTHOR:012d}"
        rkey = f"3k{number:011d}"
        lat_e6, lon_e6 = _point(rng)
        cells = cells_for_point(lat_e6, lon_e6)
        at = now_ms - rng.randrange(AGE_DAYS * DAY_MS)
        yield (
            did, "app.skyspot.checkin", rkey, "bafyreibench", "3kbenchrev222", lat_e6, lon_e6,
            cells.r7, cells.r5, cells.r3, "bench place",
            f"at://{did}/app.bsky.feed.post/{rkey}", True, at, at, at, True,
        )  # fmt: skip


def anchors(count: int, seed: int = 11) -> list[tuple[str, int, int]]:
    """Fixed anchors for region feeds: city centres, nudged, `count` of them (rkey, lat, lon)."""
    rng = random.Random(seed)
    chosen = []
    for number in range(count):
        name, lat, lon, _pop = CITIES[number % len(CITIES)]
        chosen.append(
            (
                f"{name}-{number}",
                round((lat + rng.uniform(-0.03, 0.03)) * MICRO),
                round(lon * MICRO),
            )
        )
    return chosen


async def _migrate(url: str) -> None:
    engine = create_index_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def cached_sqlite(directory: Path, count: int, *, max_age_s: float) -> tuple[Path, float | None]:
    """A SQLite index of `count` rows from `directory`, built when missing or stale.

    Returns the file and the seconds spent building it (None when a cached file was reused).
    Built under a temporary name and renamed, so an interrupted build never leaves a bad file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"index-v{DATA_VERSION}-{migration_head()}-{count}.sqlite"
    with contextlib.suppress(FileNotFoundError):
        if time.time() - path.stat().st_mtime < max_age_s:
            return path, None
    partial = path.with_suffix(".partial")
    seconds = build_sqlite(partial, count)
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.replace(path)
    return path, seconds


def migration_head() -> str:
    """The newest migration's revision id of the index schema (part of a cached file's name)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


def build_sqlite(path: Path, count: int) -> float:
    """A fresh SQLite index of `count` rows at `path`; returns the seconds it took."""
    started = time.perf_counter()
    path.unlink(missing_ok=True)
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    placeholders = ", ".join("?" * len(COLUMNS))
    statement = f"INSERT INTO checkin ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executemany(statement, rows(count, time.time_ns() // 1_000_000))
        connection.execute("ANALYZE")
    finally:
        connection.close()
    return time.perf_counter() - started


async def build_postgres(url: str, count: int) -> float:
    """Load `count` rows into the empty PostgreSQL database at `url` (asyncpg SQLAlchemy URL)."""
    started = time.perf_counter()
    await _migrate(url)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        batch: list[tuple[Any, ...]] = []
        for row in rows(count, time.time_ns() // 1_000_000):
            batch.append(row)
            if len(batch) == BATCH:
                await connection.copy_records_to_table("checkin", records=batch, columns=COLUMNS)
                batch = []
        if batch:
            await connection.copy_records_to_table("checkin", records=batch, columns=COLUMNS)
        # Set hint bits and the visibility map now, so the benchmark never measures that.
        await connection.execute("VACUUM (ANALYZE) checkin")
    finally:
        await connection.close()
    return time.perf_counter() - started
